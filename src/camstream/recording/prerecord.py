"""The last N seconds of frames, kept in memory to become the start of a recording.

Pure: frames carry their capture times, so no clock is needed. Bounded twice:
by the time span (newest capture time minus oldest) and by bytes, so a burst of
large frames cannot grow memory beyond ``max_bytes``.
"""

from __future__ import annotations

import collections

from ..errors import ConfigError
from ..frame import Frame

__all__ = ["PreRecordBuffer"]


class PreRecordBuffer:
    """A ring of recent frames; ``push`` evicts the oldest, ``drain`` hands them all over."""

    def __init__(self, *, duration_s: float, max_bytes: int) -> None:
        if duration_s < 0:
            raise ConfigError(f"pre-record seconds must not be negative, got {duration_s!r}")
        if max_bytes <= 0:
            raise ConfigError(f"pre-record max bytes must be positive, got {max_bytes!r}")
        self.duration_ns = int(duration_s * 1e9)
        self.max_bytes = max_bytes
        self._frames: collections.deque[Frame] = collections.deque()
        self._bytes = 0
        self.frames_evicted = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def bytes(self) -> int:
        return self._bytes

    def push(self, frame: Frame) -> None:
        if self.duration_ns == 0 or len(frame.data) > self.max_bytes:
            return  # pre-record off, or a frame that alone would break the bound
        if self._frames and frame.captured_at_ns < self._frames[-1].captured_at_ns:
            return  # out of order: a recording must start with increasing times
        self._frames.append(frame)
        self._bytes += len(frame.data)
        horizon_ns = frame.captured_at_ns - self.duration_ns
        while self._frames and (
            self._frames[0].captured_at_ns < horizon_ns or self._bytes > self.max_bytes
        ):
            self._bytes -= len(self._frames.popleft().data)
            self.frames_evicted += 1

    def drain(self) -> list[Frame]:
        """Every buffered frame, oldest first; the buffer is empty afterwards."""
        frames = list(self._frames)
        self._frames.clear()
        self._bytes = 0
        return frames
