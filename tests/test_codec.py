"""codec: JPEG/PNG round trips, argument validation, and decode failures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from camstream.codec import JpegEncoder, PngEncoder, decode, make_encoder
from camstream.errors import ConfigError, DecodeError
from camstream.frame import Codec
from camstream.sources.pattern import render_test_pattern
from imaging import psnr


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return render_test_pattern(7, 320, 240, now=0.0)


def test_jpeg_q80_round_trip_is_close(image: np.ndarray) -> None:
    data = JpegEncoder(80).encode(image)
    assert data[:2] == b"\xff\xd8"
    back = decode(data, Codec.JPEG)
    assert back.shape == image.shape and back.dtype == np.uint8
    assert psnr(image, back) > 30


def test_png_round_trip_is_bit_exact(image: np.ndarray) -> None:
    data = PngEncoder(1).encode(image)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(decode(data, Codec.PNG), image)


def test_decode_accepts_memoryview(image: np.ndarray) -> None:
    data = PngEncoder().encode(image)
    assert np.array_equal(decode(memoryview(data), Codec.PNG), image)


def test_grayscale_image_decodes_as_bgr() -> None:
    gray = np.tile(np.arange(64, dtype=np.uint8), (32, 1))
    back = decode(PngEncoder().encode(gray), Codec.PNG)
    assert back.shape == (32, 64, 3)
    assert np.array_equal(back[:, :, 0], gray)


def test_lower_quality_gives_smaller_frames(image: np.ndarray) -> None:
    sizes = [len(JpegEncoder(q).encode(image)) for q in (30, 60, 90)]
    assert sizes[0] < sizes[1] < sizes[2]
    assert psnr(image, decode(JpegEncoder(30).encode(image))) < psnr(
        image, decode(JpegEncoder(90).encode(image))
    )


@pytest.mark.parametrize("quality", [0, 101, -5, 80.0, True, "80"])
def test_bad_jpeg_quality_is_a_config_error(quality: object) -> None:
    with pytest.raises(ConfigError, match="quality"):
        JpegEncoder(quality)  # type: ignore[arg-type]


@pytest.mark.parametrize("compression", [-1, 10])
def test_bad_png_compression_is_a_config_error(compression: int) -> None:
    with pytest.raises(ConfigError, match="compression"):
        PngEncoder(compression)


def test_make_encoder_picks_the_codec() -> None:
    jpeg = make_encoder(Codec.JPEG, quality=55)
    png = make_encoder(Codec.PNG, png_compression=3)
    assert isinstance(jpeg, JpegEncoder) and jpeg.codec is Codec.JPEG and jpeg.quality == 55
    assert isinstance(png, PngEncoder) and png.codec is Codec.PNG and png.compression == 3
    with pytest.raises(ConfigError):
        make_encoder(Codec.JPEG, quality=0)


def test_encoder_rejects_non_uint8_images() -> None:
    with pytest.raises(ValueError, match="uint8"):
        JpegEncoder().encode(np.zeros((8, 8, 3), np.float32))


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage, not an image", b"\xff\xd8\xff\xe0" + b"\x00" * 40, bytes(range(256)) * 4],
    ids=["empty", "text", "jpeg-header-only", "noise"],
)
def test_decode_of_invalid_bytes_raises(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data)


@pytest.mark.parametrize("codec", [Codec.JPEG, Codec.PNG])
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_decode_of_truncated_frame_raises(image: np.ndarray, codec: Codec, keep: float) -> None:
    data = make_encoder(codec).encode(image)
    with pytest.raises(DecodeError, match=codec.name):
        decode(data[: int(len(data) * keep)], codec)


def test_psnr() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    assert psnr(a, b) == math.inf
    b[0, 0, 0] = 255  # MSE = 255² / 48
    assert psnr(a, b) == pytest.approx(10 * math.log10(48))
    with pytest.raises(ValueError, match="shape"):
        psnr(a, np.zeros((4, 5, 3), np.uint8))
