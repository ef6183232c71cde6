"""Encode once per tier: each (seq, tier) at most once, shared, counted; PNG never adapted."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from camstream.delivery import Renditions, Tier, default_ladder
from camstream.errors import DecodeError
from camstream.frame import Codec, Frame

FULL, HALF, _, QUARTER, QUARTER_LOW = default_ladder(80)


def _image(seed: int = 0, width: int = 640, height: int = 360) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _frame(seq: int, image: np.ndarray, codec: Codec = Codec.JPEG) -> Frame:
    ext, params = (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 80]) if codec is Codec.JPEG else (".png", [])
    ok, buf = cv2.imencode(ext, image, params)
    assert ok
    height, width = image.shape[:2]
    return Frame(seq, 1_000 + seq, width, height, codec, buf.tobytes())


def test_each_tier_of_a_frame_is_encoded_once_and_shared() -> None:
    renditions = Renditions(source_quality=80)
    image = _image()
    frame = _frame(1, image)
    renditions.publish(frame, image)
    half = renditions.get(frame, HALF)
    assert renditions.get(frame, HALF) is half  # a second viewer on the same tier
    quarter = renditions.get(frame, QUARTER)
    assert renditions.encodes == {HALF.name: 1, QUARTER.name: 1}
    assert renditions.cached_tiers == 2
    assert (half.width, half.height) == (320, 180)
    assert (quarter.width, quarter.height) == (160, 90)
    assert (half.seq, half.captured_at_ns) == (frame.seq, frame.captured_at_ns)
    assert half.codec is Codec.JPEG
    decoded = cv2.imdecode(np.frombuffer(half.data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (180, 320, 3)
    assert renditions.decodes == 0  # the source image was at hand


def test_the_full_tier_is_the_source_frame_itself() -> None:
    renditions = Renditions(source_quality=80)
    frame = _frame(1, _image())
    assert renditions.get(frame, FULL) is frame
    assert renditions.get(frame, Tier(name="full@90", quality=90)) is frame
    assert sum(renditions.encodes.values()) == 0


def test_only_the_newest_frame_is_kept_and_encodes_per_frame_count_tiers_in_use() -> None:
    renditions = Renditions(source_quality=80)
    for seq in range(5):
        image = _image(seq)
        frame = _frame(seq, image)
        renditions.publish(frame, image)
        for _viewer in range(3):  # three viewers on each of two tiers
            renditions.get(frame, HALF)
            renditions.get(frame, QUARTER_LOW)
        assert renditions.cached_tiers == 2
    assert renditions.frames_seen == 5
    assert renditions.encodes_per_frame() == 2


def test_without_the_source_image_the_frame_is_decoded_once_for_all_tiers() -> None:
    renditions = Renditions(source_quality=80)
    frame = _frame(7, _image())
    renditions.get(frame, HALF)
    renditions.get(frame, QUARTER)
    renditions.get(frame, QUARTER_LOW)
    assert renditions.decodes == 1
    assert sum(renditions.encodes.values()) == 3


def test_an_older_frame_is_served_without_evicting_the_newest() -> None:
    renditions = Renditions(source_quality=80)
    old, new = _frame(1, _image(1)), _frame(2, _image(2))
    newest_half = renditions.get(new, HALF)
    late = renditions.get(old, HALF)
    assert late.seq == 1
    assert renditions.get(new, HALF) is newest_half


def test_lossless_png_is_never_adapted() -> None:
    renditions = Renditions(source_quality=80)
    frame = _frame(1, _image(), Codec.PNG)
    assert renditions.get(frame, QUARTER) is frame
    assert sum(renditions.encodes.values()) == 0


def test_a_corrupt_frame_raises_decode_error() -> None:
    renditions = Renditions()
    frame = Frame(1, 0, 640, 360, Codec.JPEG, b"\xff\xd8 not a jpeg \xff\xd9")
    with pytest.raises(DecodeError):
        renditions.get(frame, HALF)


def test_concurrent_viewers_on_one_tier_cost_one_encode() -> None:
    renditions = Renditions(source_quality=80)
    image = _image(width=1280, height=720)
    frame = _frame(1, image)
    renditions.publish(frame, image)
    results: list[Frame] = []
    start = threading.Barrier(8)

    def viewer() -> None:
        start.wait(timeout=5)
        results.append(renditions.get(frame, HALF))

    threads = [threading.Thread(target=viewer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert len(results) == 8 and all(r is results[0] for r in results)
    assert renditions.encodes == {HALF.name: 1}
