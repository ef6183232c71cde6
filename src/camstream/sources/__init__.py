"""Where images come from: cameras, video files, URLs, the test pattern, or your code.

Every :class:`Source` is blocking and single-threaded: ``open()``, then ``read()``
in a loop until it returns ``None`` (a clean end), then ``close()``. The capture
thread in :mod:`camstream.server.capture` is the one owner that drives it. Failures
raise :class:`~camstream.errors.SourceError` with a message that names both the
problem and the fix.

Sources that pace themselves (the test pattern, files, paced iterables) sleep on
an event, so :meth:`Source.interrupt` lets a stopping owner cut a wait short.

This module picks a source from a spec (:func:`open_source`); the sources live in
:mod:`camstream.sources.base` (the contract), :mod:`camstream.sources.opencv`
(OpenCV capture) and :mod:`camstream.sources.synthetic` (pattern, iterables,
callables), and are all importable from here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import numpy as np

from ..errors import SourceError
from .base import Source

# Callers import this from here too; the alias marks it as a deliberate
# re-export for type checkers, since it is not in __all__.
from .base import as_image as as_image
from .opencv import CameraSource, FileSource, UrlSource
from .synthetic import CallableSource, IterableSource, TestPatternSource

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
        if os.path.isdir(text) or text.lower().endswith(".mkv"):
            # A camstream recording replays at its own timing, without OpenCV.
            from ..recording.replay import ReplaySource, is_recording  # noqa: PLC0415 - needs PyAV

            if is_recording(text):
                return ReplaySource(text)
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
