"""Encode once per tier: every tier of a frame at most once, shared by its viewers.

The capture path encodes each frame once at full size (the hub's frame). When a
viewer on a smaller tier takes that frame, :meth:`Renditions.get` produces the
tier's version: it resizes the source image with ``cv2.INTER_AREA`` (the
right filter for shrinking: it averages instead of aliasing) and encodes it
with ``cv2.imencode``, then keeps it for every other viewer on that tier. A
tier nobody watches is never encoded; a throttled viewer costs the others
nothing but that one extra encode per frame it actually takes.

Only the newest frame is cached: viewers always take the newest frame, so an
older one is never asked for again. If the source image is not at hand (the
caller did not keep it), the full frame is decoded once per seq and shared by
all tiers.

Lossless PNG frames, and any frame already at or below the tier's size and
quality, are returned as they are: lossless mode stays lossless.

Thread-safe: a lock serialises the work, so two viewers asking for the same
tier at once still cost one encode. Call it from an executor thread when the
event loop must not spend the ~1 ms an encode takes.
"""

from __future__ import annotations

import threading
from collections import Counter

import cv2
import numpy as np

from ..errors import CamstreamError, DecodeError
from ..frame import Codec, Frame
from .tiers import Tier

__all__ = ["Renditions"]


class Renditions:
    """Per-(seq, tier) encoded frames for the newest frame, plus counters."""

    def __init__(self, *, source_quality: int = 80) -> None:
        self.source_quality = source_quality
        self._lock = threading.Lock()
        self._seq: int | None = None
        self._image: np.ndarray | None = None
        self._cache: dict[tuple[int, int, int], Frame] = {}
        #: encodes per tier name since start (the ``/status`` counter)
        self.encodes: Counter[str] = Counter()
        self.decodes = 0
        self.frames_seen = 0

    def publish(self, frame: Frame, image: np.ndarray | None = None) -> None:
        """Announce the newest frame, with its source image when the caller has it."""
        with self._lock:
            self._start(frame, image)

    def get(self, frame: Frame, tier: Tier, image: np.ndarray | None = None) -> Frame:
        """``frame`` as served at ``tier``; encoded at most once per (seq, tier)."""
        if frame.codec is not Codec.JPEG:
            return frame  # lossless stays lossless
        size = tier.size_for(frame.width, frame.height)
        if size == (frame.width, frame.height) and tier.quality >= self.source_quality:
            return frame
        key = (size[0], size[1], tier.quality)
        with self._lock:
            if frame.seq != self._seq:
                if self._seq is not None and frame.seq < self._seq:
                    # An older frame than the newest: serve it uncached, do not evict.
                    return self._encode(frame, tier, size, self._decode(frame, image))
                self._start(frame, image)
            cached = self._cache.get(key)
            if cached is not None:
                return cached
            if self._image is None:
                self._image = self._decode(frame, image)
            result = self._encode(frame, tier, size, self._image)
            self._cache[key] = result
            return result

    def cached(self, frame: Frame, tier: Tier) -> Frame | None:
        """``frame`` at ``tier`` if that needs no encoding now (the frame itself, or cached)."""
        if frame.codec is not Codec.JPEG:
            return frame
        size = tier.size_for(frame.width, frame.height)
        if size == (frame.width, frame.height) and tier.quality >= self.source_quality:
            return frame
        with self._lock:
            if frame.seq != self._seq:
                return None
            return self._cache.get((size[0], size[1], tier.quality))

    @property
    def cached_tiers(self) -> int:
        """Renditions held for the newest frame (tiers in use right now)."""
        return len(self._cache)

    def encodes_per_frame(self) -> float:
        """Average encodes per frame seen (≤ the number of tiers in use)."""
        return sum(self.encodes.values()) / self.frames_seen if self.frames_seen else 0.0

    def _start(self, frame: Frame, image: np.ndarray | None) -> None:
        if frame.seq == self._seq:
            if image is not None and self._image is None:
                self._image = image
            return
        self._seq = frame.seq
        self._image = image
        self._cache.clear()
        self.frames_seen += 1

    def _decode(self, frame: Frame, image: np.ndarray | None) -> np.ndarray:
        if image is not None:
            return image
        buf = np.frombuffer(frame.data, dtype=np.uint8)
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if decoded is None or decoded.size == 0:
            raise DecodeError(f"frame {frame.seq}: cannot decode {len(frame.data)} bytes to adapt")
        self.decodes += 1
        result: np.ndarray = decoded
        return result

    def _encode(self, frame: Frame, tier: Tier, size: tuple[int, int], image: np.ndarray) -> Frame:
        if (image.shape[1], image.shape[0]) != size:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, tier.quality])
        if not ok:
            raise CamstreamError(f"frame {frame.seq}: JPEG encoding failed at tier {tier.name!r}")
        self.encodes[tier.name] += 1
        return Frame(
            seq=frame.seq,
            captured_at_ns=frame.captured_at_ns,
            width=size[0],
            height=size[1],
            codec=Codec.JPEG,
            data=buf.tobytes(),
            placeholder=frame.placeholder,
        )
