"""What every image source is: the :class:`Source` contract, its pacing and image checks.

Every :class:`Source` is blocking and single-threaded: ``open()``, then ``read()``
in a loop until it returns ``None`` (a clean end), then ``close()``. Failures
raise :class:`~camstream.errors.SourceError` with a message that names both the
problem and the fix.
"""

from __future__ import annotations

import abc
import threading
import time
from types import TracebackType

import cv2
import numpy as np

from ..errors import SourceError

__all__ = ["Pacer", "Source", "as_image"]


class Source(abc.ABC):
    """A blocking producer of BGR ``uint8`` images (hxwx3)."""

    description: str = "source"
    nominal_fps: float | None = None  # None: unknown or set by the device
    # A live source (camera, network stream) produces images on its own clock and
    # must be read continuously, or its driver hands out stale frames later. Any
    # other source makes an image when asked, so capture asks only when an
    # encoder is free: no image is rendered just to be dropped.
    live: bool = False
    # A source that can be missing or wrong (a device, a file, a URL) is opened and
    # closed once when the server starts, so a typo fails at start-up and not when
    # the first viewer arrives. In-process sources have nothing to check.
    probe_on_start: bool = False

    def __init__(self) -> None:
        self._wake = threading.Event()

    @abc.abstractmethod
    def open(self) -> None:
        """Acquire the device or file; a no-op if already open. Raises SourceError."""

    @abc.abstractmethod
    def read(self) -> np.ndarray | None:
        """Block for the next image; ``None`` means the stream ended cleanly."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device or file; safe to call twice."""

    def interrupt(self) -> None:
        """Cut short a pacing wait in :meth:`read` (from any thread); cleared by open()."""
        self._wake.set()

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


class Pacer:
    """Sleeps until the next tick of a fixed schedule, so the rate does not drift."""

    def __init__(self, fps: float | None, wake: threading.Event) -> None:
        self._period_s = 1.0 / fps if fps else 0.0
        self._wake = wake
        self._next_s: float | None = None

    def wait(self) -> None:
        if not self._period_s:
            return
        now = time.monotonic()
        if self._next_s is None or now - self._next_s > self._period_s:
            self._next_s = now  # first tick, or fell behind: restart rather than burst
        elif self._next_s > now:
            self._wake.wait(self._next_s - now)
        self._next_s += self._period_s


def as_image(obj: object, what: str) -> np.ndarray:
    """``obj`` as a BGR uint8 hxwx3 array (grayscale is expanded), else SourceError."""
    if not isinstance(obj, np.ndarray):
        raise SourceError(f"{what} gave a {type(obj).__name__}, expected a numpy BGR uint8 image")
    shape_ok = obj.ndim == 2 or (obj.ndim == 3 and obj.shape[2] in (1, 3))
    if obj.dtype != np.uint8 or not shape_ok or obj.size == 0:
        raise SourceError(
            f"{what} gave an array of dtype {obj.dtype} and shape {obj.shape}; "
            "expected uint8 with shape (height, width, 3) in BGR order, or (height, width)"
        )
    if obj.ndim == 2 or obj.shape[2] == 1:
        return cv2.cvtColor(obj, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(obj)
