"""Where images come from: cameras, video files, URLs, the test pattern, or your code.

Every :class:`Source` is blocking and single-threaded: ``open()``, then ``read()``
in a loop until it returns ``None`` (a clean end), then ``close()``. The capture
thread in :mod:`camstream.capture` is the one owner that drives it. Failures
raise :class:`~camstream.errors.SourceError` with a message that names both the
problem and the fix.

Sources that pace themselves (the test pattern, files, paced iterables) sleep on
an event, so :meth:`Source.interrupt` lets a stopping owner cut a wait short.
"""

from __future__ import annotations

import abc
import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from .errors import ConfigError, SourceError
from .pattern import render_test_pattern

__all__ = [
    "CallableSource",
    "CameraSource",
    "FileSource",
    "IterableSource",
    "Source",
    "SourceSpec",
    "TestPatternSource",
    "UrlSource",
    "open_default_source",
    "open_source",
]

_URL_TIMEOUT_MS = 5000


class Source(abc.ABC):
    """A blocking producer of BGR ``uint8`` images (hxwx3)."""

    description: str = "source"
    nominal_fps: float | None = None  # None: unknown or set by the device

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


class _Pacer:
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


_log_lock = threading.Lock()


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    # OpenCV prints warnings to stderr for every failed open; our SourceError
    # already says what went wrong, so hush them for the duration of the call.
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:
        yield
        return
    with _log_lock:
        previous = log.getLogLevel()
        log.setLogLevel(log.LOG_LEVEL_SILENT)
        try:
            yield
        finally:
            log.setLogLevel(previous)


class _CaptureSource(Source):
    """The sources backed by ``cv2.VideoCapture``: subclasses say how to open it."""

    _lost = "stopped delivering frames"

    def __init__(self) -> None:
        super().__init__()
        self._cap: Any = None

    @abc.abstractmethod
    def _open_capture(self) -> Any:
        """Return an opened ``cv2.VideoCapture`` or raise SourceError."""

    def open(self) -> None:
        if self._cap is None:
            self._wake.clear()
            self._cap = self._open_capture()

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def _grab(self) -> np.ndarray | None:
        if self._cap is None:
            raise SourceError(f"{self.description} is not open; call open() first")
        ok, image = self._cap.read()
        return as_image(image, self.description) if ok and image is not None else None

    def read(self) -> np.ndarray | None:
        image = self._grab()
        if image is None:
            raise SourceError(f"{self.description} {self._lost}")
        return image


def _video_capture(target: str | int, *args: Any) -> Any:
    with _quiet_opencv():
        cap = cv2.VideoCapture(target, *args)
    if cap.isOpened():
        return cap
    cap.release()
    return None


class CameraSource(_CaptureSource):
    """A local camera by index (``0``) or device path (``"/dev/video0"``)."""

    _lost = "stopped delivering frames (unplugged?)"

    def __init__(
        self,
        index_or_device: int | str,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
    ) -> None:
        super().__init__()
        self.device = index_or_device
        self.width, self.height, self.fps = width, height, fps
        self.description = f"camera {index_or_device}"
        self.nominal_fps = fps or None

    def _device_problem(self) -> str | None:
        # Checking the device node is instant and silent; a failed VideoCapture is neither.
        if not sys.platform.startswith("linux"):
            return None
        path = f"/dev/video{self.device}" if isinstance(self.device, int) else self.device
        if not os.path.exists(path):
            return f"no such device ({path} does not exist)"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"permission denied on {path}"
        return None

    def _open_capture(self) -> Any:
        problem = self._device_problem()
        cap = None if problem else _video_capture(self.device)
        if cap is None:
            problem = problem or "the device did not respond (in use by another program?)"
            raise SourceError(
                f"{self.description} could not be opened: {problem}. Check the cable and "
                "permissions (the 'video' group), or use --source test"
            )
        # One buffered image: read() then returns the newest picture, not a stale one.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        wanted = [(cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height)]
        for prop, value in [*wanted, (cv2.CAP_PROP_FPS, self.fps)]:
            if value:
                cap.set(prop, value)
        self.nominal_fps = self.fps or float(cap.get(cv2.CAP_PROP_FPS)) or None
        return cap


class FileSource(_CaptureSource):
    """A video file, played at its own frame rate (``fps`` overrides; 0 = unpaced)."""

    def __init__(
        self, path: str | os.PathLike[str], loop: bool = False, fps: float | None = None
    ) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.loop, self.fps = loop, fps
        self.description = f"file {self.path}"
        self._pacer = _Pacer(None, self._wake)

    def _open_capture(self) -> Any:
        if not os.path.isfile(self.path):
            raise SourceError(f"video file not found: {self.path}")
        cap = _video_capture(self.path)
        if cap is None:
            raise SourceError(
                f"video file {self.path} could not be opened: not a format OpenCV can decode. "
                "Convert it, e.g. ffmpeg -i IN -c:v mjpeg OUT.avi"
            )
        file_fps = float(cap.get(cv2.CAP_PROP_FPS))
        pace_fps = self.fps if self.fps is not None else (file_fps if file_fps > 0 else 30.0)
        self.nominal_fps = pace_fps or None
        self._pacer = _Pacer(pace_fps, self._wake)
        return cap

    def read(self) -> np.ndarray | None:
        self._pacer.wait()
        image = self._grab()
        if image is None and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            image = self._grab()
            if image is None:  # some containers cannot seek; start over instead
                self.close()
                self.open()
                image = self._grab()
            if image is None:
                raise SourceError(f"video file {self.path} has no readable frames to loop")
        return image


class UrlSource(_CaptureSource):
    """An RTSP or HTTP stream (or any URL FFmpeg understands); live, so not paced."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.description = "URL " + re.sub(r"//[^/@]*@", "//***@", url)  # hide credentials

    def _open_capture(self) -> Any:
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, _URL_TIMEOUT_MS]
        timeouts += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, _URL_TIMEOUT_MS]
        cap = _video_capture(self.url, cv2.CAP_FFMPEG, timeouts)
        if cap is None:
            raise SourceError(
                f"{self.description} could not be opened: unreachable, refused, or not a video "
                "stream. Check the address and credentials, e.g. with ffprobe URL"
            )
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self.nominal_fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
        return cap


class TestPatternSource(Source):
    """The built-in moving test pattern, paced to ``fps`` (0 = as fast as possible)."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, width: int = 1280, height: int = 720, fps: float = 30.0) -> None:
        super().__init__()
        if fps < 0:
            raise ConfigError(f"test pattern fps must be positive (or 0 for unpaced), got {fps!r}")
        for name, value in (("width", width), ("height", height)):
            if not 16 <= value <= 16384:
                raise ConfigError(f"test pattern {name} must be between 16 and 16384, got {value}")
        self.width, self.height, self.fps = width, height, fps
        self.description = f"test pattern {width}x{height}@{fps:g}"
        self.nominal_fps = fps or None
        self._index = 0
        self._pacer = _Pacer(fps, self._wake)
        self._open = False

    def open(self) -> None:
        self._wake.clear()
        self._open = True

    def read(self) -> np.ndarray | None:
        if not self._open:
            raise SourceError(f"{self.description} is not open; call open() first")
        self._pacer.wait()
        image = render_test_pattern(self._index, self.width, self.height)
        self._index += 1
        return image

    def close(self) -> None:
        self._open = False


class CallableSource(Source):
    """Images from calling ``fn()``; a ``None`` result is the end of the stream.

    The image is encoded on another thread after ``fn`` returns, so return a
    fresh array each time rather than refilling one buffer in place.
    """

    def __init__(self, fn: Callable[[], np.ndarray | None], fps: float | None = None) -> None:
        super().__init__()
        self._fn = fn
        self.description = f"callable {getattr(fn, '__name__', type(fn).__name__)}"
        self.nominal_fps = fps or None
        self._pacer = _Pacer(fps, self._wake)

    def open(self) -> None:
        self._wake.clear()

    def read(self) -> np.ndarray | None:
        self._pacer.wait()
        item = self._fn()
        return None if item is None else as_image(item, self.description)

    def close(self) -> None:
        pass  # nothing held; a generator cannot restart, so reopening continues it


class IterableSource(CallableSource):
    """Images from an iterable or iterator; exhaustion is the end of the stream."""

    def __init__(self, iterable: Iterable[np.ndarray], fps: float | None = None) -> None:
        self._iterable = iterable
        self._iterator: Iterator[np.ndarray] | None = None
        super().__init__(self._next, fps)
        self.description = f"iterable {type(iterable).__name__}"

    def open(self) -> None:
        super().open()
        if self._iterator is None:
            self._iterator = iter(self._iterable)

    def _next(self) -> np.ndarray | None:
        if self._iterator is None:
            raise SourceError(f"{self.description} is not open; call open() first")
        return next(self._iterator, None)


#: Anything :func:`open_source` understands.
SourceSpec = (
    Source | int | str | os.PathLike[str] | Iterable[np.ndarray] | Callable[[], np.ndarray | None]
)


def open_source(  # noqa: PLR0911 - one return per kind of spec
    spec: SourceSpec,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    loop: bool = False,
) -> Source:
    """Build (but do not open) the source ``spec`` names; a bad spec fails here, early."""
    if isinstance(spec, Source):
        return spec
    if isinstance(spec, int) and not isinstance(spec, bool):
        return CameraSource(spec, width, height, fps)
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if text == "test":
            return TestPatternSource(width or 1280, height or 720, 30.0 if fps is None else fps)
        if text.isdigit():
            return CameraSource(int(text), width, height, fps)
        if text.startswith("/dev/video"):
            return CameraSource(text, width, height, fps)
        if "://" in text:
            return UrlSource(text)
        if os.path.isfile(text):
            return FileSource(text, loop=loop, fps=fps)
        raise SourceError(
            f"no such source {text!r}: give a camera index like 0, a device like /dev/video0, "
            "a video file, an rtsp:// or http:// URL, or 'test'"
        )
    if callable(spec):
        return CallableSource(spec, fps)
    if isinstance(spec, Iterable):
        return IterableSource(spec, fps)
    raise SourceError(f"cannot stream from a {type(spec).__name__}; see open_source() for options")


def open_default_source(
    width: int | None = None, height: int | None = None, fps: float | None = None
) -> tuple[Source, str | None]:
    """Camera 0 if it opens, else the test pattern plus a one-line note saying so.

    The camera is probed (opened and closed again) and returned closed, so the
    device is not held before anyone starts capturing.
    """
    camera = CameraSource(0, width, height, fps)
    try:
        camera.open()
    except SourceError:
        pattern = TestPatternSource(width or 1280, height or 720, 30.0 if fps is None else fps)
        note = (
            "no camera found (camera 0 could not be opened); "
            "streaming the built-in test pattern instead"
        )
        return pattern, note
    camera.close()
    return camera, None
