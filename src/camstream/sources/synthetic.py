"""Sources whose images are made in this process: the test pattern, or your own code.

The test pattern, paced iterables and paced callables sleep on an event, so
:meth:`Source.interrupt` lets a stopping owner cut a wait short.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from ..errors import ConfigError, SourceError
from .base import Pacer, Source, as_image
from .pattern import render_test_pattern

__all__ = ["CallableSource", "IterableSource", "TestPatternSource"]


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
        self._pacer = Pacer(fps, self._wake)
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
        self._pacer = Pacer(fps, self._wake)

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
