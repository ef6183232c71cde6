"""Sources read through ``cv2.VideoCapture``: local cameras, video files and stream URLs."""

from __future__ import annotations

import abc
import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from ..errors import SourceError
from .base import Pacer, Source, as_image

__all__ = ["CameraSource", "FileSource", "UrlSource"]

_URL_TIMEOUT_MS = 5000

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
    probe_on_start = True

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

    live = True
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
        self._pacer = Pacer(None, self._wake)

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
        self._pacer = Pacer(pace_fps, self._wake)
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

    live = True

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
