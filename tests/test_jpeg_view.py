"""JpegView: PNG frames become JPEG for HTTP once per frame, however many viewers ask."""

from __future__ import annotations

import asyncio

import numpy as np

from camstream.codec import JpegEncoder, PngEncoder
from camstream.frame import Codec, Frame
from camstream.server.transports.jpeg_view import JpegView


def _png_frame(seq: int) -> tuple[Frame, np.ndarray]:
    rng = np.random.default_rng(seq)
    image = np.repeat(np.repeat(rng.integers(0, 255, (12, 16, 3), np.uint8), 8, 0), 8, 1)
    return Frame(seq, 0, 128, 96, Codec.PNG, PngEncoder(1).encode(image)), image


def test_jpeg_frames_pass_through_untouched() -> None:
    frame = Frame(1, 0, 4, 2, Codec.JPEG, b"\xff\xd8jpeg")
    view = JpegView(80)
    assert asyncio.run(view(frame)) is frame
    assert view.conversions == 0


def test_many_viewers_of_one_png_frame_cost_one_conversion() -> None:
    view = JpegView(90)
    first, image = _png_frame(1)
    second, _ = _png_frame(2)

    async def main() -> list[Frame]:
        results = await asyncio.gather(*(view(first) for _ in range(8)))
        results.append(await view(second))
        return list(results)

    results = asyncio.run(main())
    assert view.conversions == 2  # one per frame, not per viewer
    assert all(r.codec is Codec.JPEG and r.data[:2] == b"\xff\xd8" for r in results)
    assert {r.seq for r in results} == {1, 2}
    # Exactly what encoding the lossless image at the server's quality gives.
    assert results[0].data == JpegEncoder(90).encode(image)
