"""Synthetic camera frames with chosen capture times, for the recording tests."""

from __future__ import annotations

import dataclasses
import errno
import io
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

import cv2
import numpy as np

from camstream.frame import Codec, Frame

# 2026-12-02T18:00:00Z plus a sub-millisecond part, so rounding is exercised.
T0_NS = 1_796_234_400_000_000_000 + 123_456


def jpeg_bytes(seq: int, width: int = 160, height: int = 120) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :] = ((seq * 37) % 256, (seq * 91) % 256, 128)
    cv2.putText(image, str(seq), (5, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 1, (255,) * 3, 2)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return bytes(data.tobytes())


def frame_at(
    seq: int, captured_at_ns: int, *, width: int = 160, height: int = 120, data: bytes | None = None
) -> Frame:
    payload = jpeg_bytes(seq, width, height) if data is None else data
    return Frame(seq, captured_at_ns, width, height, Codec.JPEG, payload)


def frames(count: int, fps: float, *, t0_ns: int = T0_NS, jitter_ns: int = 0) -> list[Frame]:
    """``count`` frames at ``fps``; ``jitter_ns`` moves odd frames later (variable rate)."""
    period_ns = int(1e9 / fps)
    return [frame_at(i, t0_ns + i * period_ns + (jitter_ns if i % 2 else 0)) for i in range(count)]


def restamp(frame: Frame, captured_at_ns: int) -> Frame:
    return dataclasses.replace(frame, captured_at_ns=captured_at_ns)


class ManualClock:
    """An injected clock the test moves by hand (wall ns and monotonic s)."""

    def __init__(self, wall_ns: int = T0_NS, mono_s: float = 1000.0) -> None:
        self.wall_ns = wall_ns
        self.mono_s = mono_s

    def ns(self) -> int:
        return self.wall_ns

    def mono(self) -> float:
        return self.mono_s


class FaultyFile(io.RawIOBase):
    """A file whose writes can sleep (a slow disk) or fail with ENOSPC (a full disk)."""

    def __init__(self, path: str, control: DiskControl) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._control = control

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._control.before_write()
        return self._file.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        super().close()


class DiskControl:
    """Shared switches for every FaultyFile a test's recorder opens."""

    def __init__(self) -> None:
        self.write_delay_s = 0.0
        self.full = False
        self.writes = 0
        self.lock = threading.Lock()

    def before_write(self) -> None:
        with self.lock:
            self.writes += 1
            full = self.full
        if full:
            raise OSError(errno.ENOSPC, "No space left on device")
        if self.write_delay_s:
            time.sleep(self.write_delay_s)

    def opener(self) -> Callable[[str], BinaryIO]:
        def open_file(path: str) -> BinaryIO:
            if self.full:
                raise OSError(errno.ENOSPC, "No space left on device", path)
            return FaultyFile(path, self)  # type: ignore[return-value]

        return open_file
