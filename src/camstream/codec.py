"""JPEG and PNG encoding and decoding of images (BGR ``uint8`` arrays, hxwx3).

Chosen on measurements (``python benchmarks/run.py``, see the README):

* **Encoding: OpenCV.** ``cv2.imencode`` is libjpeg-turbo (1.85 ms for 720p q80
  here), releases the GIL, and is already a dependency. simplejpeg was no faster
  at 4:2:0 and slower at its default 4:4:4.
* **JPEG decoding: simplejpeg** (also libjpeg-turbo, GIL released, wheels for
  Linux x86-64/ARM, macOS and Windows). In isolation it is only ~10 % faster, but
  while streaming ``cv2.imdecode`` put every image in fresh memory: ~1,300 page
  faults and 5.3 ms of CPU per 720p frame against 1.7 ms for simplejpeg, which
  more than doubled what a client core could show. OpenCV stays the fallback
  (PNG, or if simplejpeg is missing or refuses the data).
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

try:
    import simplejpeg
except ImportError:  # pragma: no cover - a platform without its wheel still works
    simplejpeg = None

from .errors import ConfigError, DecodeError
from .frame import Codec

__all__ = ["Encoder", "JpegEncoder", "PngEncoder", "decode", "make_encoder"]


class Encoder(Protocol):
    """Turns one image into the bytes of one frame."""

    codec: Codec

    def encode(self, image: np.ndarray) -> bytes: ...


def _check_image(image: np.ndarray) -> None:
    # imencode would silently accept float or 16-bit input and produce something
    # the decoder reads back differently; fail loudly at the source of the bug.
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        kind = getattr(image, "dtype", type(image).__name__)
        shape = getattr(image, "shape", "?")
        raise ValueError(f"expected a uint8 image (hxwx3), got {kind} with shape {shape}")


class JpegEncoder:
    """Lossy JPEG; ``quality`` 1..100 (80 keeps text crisp at a fraction of the size)."""

    codec: Codec = Codec.JPEG

    def __init__(self, quality: int = 80) -> None:
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ConfigError(f"JPEG quality must be an integer between 1 and 100, got {quality!r}")
        self.quality = quality
        self._params = [cv2.IMWRITE_JPEG_QUALITY, quality]

    def encode(self, image: np.ndarray) -> bytes:
        _check_image(image)
        ok, buf = cv2.imencode(".jpg", image, self._params)
        if not ok:
            raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
        return buf.tobytes()

    def __repr__(self) -> str:
        return f"JpegEncoder(quality={self.quality})"


class PngEncoder:
    """Lossless PNG; ``compression`` 0..9 (1 is fast and still shrinks flat areas well)."""

    codec: Codec = Codec.PNG

    def __init__(self, compression: int = 1) -> None:
        if (
            isinstance(compression, bool)
            or not isinstance(compression, int)
            or not 0 <= compression <= 9
        ):
            raise ConfigError(
                f"PNG compression must be an integer between 0 and 9, got {compression!r}"
            )
        self.compression = compression
        self._params = [cv2.IMWRITE_PNG_COMPRESSION, compression]

    def encode(self, image: np.ndarray) -> bytes:
        _check_image(image)
        ok, buf = cv2.imencode(".png", image, self._params)
        if not ok:
            raise ValueError(f"PNG encoding failed for an image of shape {image.shape}")
        return buf.tobytes()

    def __repr__(self) -> str:
        return f"PngEncoder(compression={self.compression})"


def make_encoder(codec: Codec, *, quality: int = 80, png_compression: int = 1) -> Encoder:
    """The encoder for ``codec``; the option of the other codec is ignored."""
    if codec is Codec.JPEG:
        return JpegEncoder(quality)
    if codec is Codec.PNG:
        return PngEncoder(png_compression)
    raise ConfigError(f"unknown codec {codec!r}; choose Codec.JPEG or Codec.PNG")


def decode(data: bytes | bytearray | memoryview, codec: Codec = Codec.JPEG) -> np.ndarray:
    """Decode one frame's bytes into a BGR ``uint8`` image (hxwx3).

    ``codec`` documents intent only: OpenCV recognises the format from its magic
    bytes, so a PNG labelled JPEG still decodes. Corrupt, truncated or empty data
    raises :class:`~camstream.errors.DecodeError`; ``None`` is never returned.
    """
    name = Codec(codec).name
    if len(data) == 0:
        raise DecodeError(f"cannot decode an empty {name} frame")
    if _is_truncated_jpeg(data):
        raise DecodeError(f"truncated JPEG frame of {len(data)} bytes (no end-of-image marker)")
    if simplejpeg is not None and bytes(data[:2]) == b"\xff\xd8":
        try:
            decoded: np.ndarray = simplejpeg.decode_jpeg(data, colorspace="BGR")
            return decoded
        except ValueError:
            pass  # OpenCV decides, and words the error
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise DecodeError(f"corrupt {name} frame of {len(data)} bytes: {exc}") from None
    if image is None or image.size == 0:
        raise DecodeError(f"corrupt or truncated {name} frame of {len(data)} bytes")
    if image.ndim == 2:  # pragma: no cover - IMREAD_COLOR always yields 3 channels
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


def _is_truncated_jpeg(data: bytes | bytearray | memoryview) -> bool:
    # OpenCV 4.x returns a half-grey image for a cut-off JPEG instead of failing.
    # Entropy-coded data escapes 0xFF as FF00, so FFD9 near the end can only be the
    # end-of-image marker; the window tolerates the padding some cameras append.
    if bytes(data[:2]) != b"\xff\xd8":
        return False
    return b"\xff\xd9" not in bytes(data[-1024:])
