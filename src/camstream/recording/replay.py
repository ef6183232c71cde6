"""Play a recording back at its original timing: a :class:`camstream.Source` for the server.

``ReplaySource`` reads one segment file (``.mkv``) or a camera's recording
directory (every segment in time order, through the index) from an optional
start time, and paces frames by their recorded capture times, so a variable
frame rate replays as it was captured. Gaps longer than ``max_gap_s`` (the
recorder was paused, or between segments) are shortened to ``max_gap_s``.

``read()`` returns BGR images, so ``camstream.Server(source=ReplaySource(...))``
streams a recording today (the server re-encodes each image).
``read_frame()`` returns the recorded JPEG bytes untouched as a
:class:`~camstream.frame.Frame`, for a pass-through path that skips re-encoding.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Generator

import cv2
import numpy as np

# The public Source contract. camstream.recording does not import this module
# eagerly, so the server can import the recorder without an import cycle.
from .. import Source
from ..errors import ConfigError, SourceError
from ..frame import Codec, Frame
from ._av import load_av
from .index import rebuild_index
from .naming import parse_segment_name, parse_time_ns
from .segments import START_TAG, iter_segment, probe_segment

__all__ = ["ReplaySource", "is_recording", "iter_recording"]


def _segment_paths(recording: str, start_ns: int | None) -> list[str]:
    if os.path.isdir(recording):
        index = rebuild_index(recording, probe_segment)
        segments = list(index) if start_ns is None else index.from_time(start_ns)
        return [s.path for s in segments]
    if os.path.isfile(recording):
        return [recording]
    raise SourceError(
        f"no recording at {recording!r}: give a segment file (.mkv) or a camera's recording "
        "directory"
    )


def is_recording(path: str | os.PathLike[str]) -> bool:
    """True for a camstream recording: a camera's segment directory, or a segment file.

    ``open_source`` can use it to send ``--source x.mkv`` here instead of to
    OpenCV: a segment is recognised by its name or by its ``CAMSTREAM_START_NS``
    tag (a renamed copy), so other Matroska files still play through OpenCV.
    """
    text = os.fspath(path)
    if os.path.isdir(text):
        return any(parse_segment_name(name) is not None for name in os.listdir(text))
    if not (os.path.isfile(text) and text.lower().endswith(".mkv")):
        return False
    if parse_segment_name(os.path.basename(text)) is not None:
        return True
    av = load_av()
    try:
        with av.open(text, "r") as container:
            return START_TAG in container.metadata
    except (OSError, av.error.FFmpegError):
        return False


def iter_recording(
    recording: str, start: str | dt.datetime | int | None = None
) -> Generator[tuple[int, bytes], None, None]:
    """``(captured_at_ns, jpeg_bytes)`` from ``start`` on, unpaced, across segments.

    A missing recording raises SourceError here, not at the first frame.
    """
    load_av()
    start_ns = None if start is None else _start_ns(start)
    return _frames_of(_segment_paths(recording, start_ns), start_ns)


def _frames_of(paths: list[str], start_ns: int | None) -> Generator[tuple[int, bytes], None, None]:
    last_ns = -1
    for path in paths:
        try:
            for captured_at_ns, data in iter_segment(path, start_ns):
                if captured_at_ns >= last_ns:  # overlapping segments never go back in time
                    last_ns = captured_at_ns
                    yield captured_at_ns, data
        except OSError as exc:
            raise SourceError(f"cannot read recording {path!r}: {exc}") from exc
        except Exception as exc:  # PyAV's FFmpegError is not an OSError
            if type(exc).__module__.startswith("av"):
                raise SourceError(f"cannot read recording {path!r}: {exc}") from exc
            raise


def _start_ns(start: str | dt.datetime | int) -> int:
    try:
        return parse_time_ns(start)
    except ValueError as exc:
        raise ConfigError(
            f"replay start {start!r} is not an ISO 8601 time such as 2026-12-02T18:29:00Z"
        ) from exc


class ReplaySource(Source):
    """A recording replayed at its original timing (``speed`` 2.0 plays twice as fast)."""

    def __init__(
        self,
        recording: str | os.PathLike[str],
        *,
        start: str | dt.datetime | int | None = None,
        speed: float = 1.0,
        max_gap_s: float = 1.0,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if speed <= 0:
            raise ConfigError(f"replay speed must be positive, got {speed!r}")
        if max_gap_s < 0:
            raise ConfigError(f"replay max gap must not be negative, got {max_gap_s!r}")
        load_av()
        self.recording = os.fspath(recording)
        self.start_ns = None if start is None else _start_ns(start)
        self.speed = speed
        self.max_gap_ns = int(max_gap_s * 1e9)
        self.description = f"recording {self.recording}"
        self._monotonic_s = monotonic_s
        self._frames: Generator[tuple[int, bytes], None, None] | None = None
        self._seq = 0
        self._anchor: tuple[float, int] | None = None  # (monotonic s, recorded ns) of "now"
        self._previous_ns: int | None = None

    def open(self) -> None:
        self._wake.clear()
        if self._frames is None:
            self._frames = iter_recording(self.recording, self.start_ns)

    def close(self) -> None:
        frames, self._frames = self._frames, None
        if frames is not None:
            frames.close()  # releases the open segment file
        self._anchor = None
        self._previous_ns = None

    def read_frame(self) -> Frame | None:
        """The next recorded frame (original JPEG bytes and capture time), when it is due."""
        if self._frames is None:
            raise SourceError(f"{self.description} is not open; call open() first")
        item = next(self._frames, None)
        if item is None:
            return None
        captured_at_ns, data = item
        self._wait_until_due(captured_at_ns)
        if self._wake.is_set():
            return None  # interrupted: the owner is stopping
        width, height = _jpeg_size(data)
        frame = Frame(
            seq=self._seq,
            captured_at_ns=captured_at_ns,
            width=width,
            height=height,
            codec=Codec.JPEG,
            data=data,
        )
        self._seq += 1
        return frame

    def read(self) -> np.ndarray | None:
        frame = self.read_frame()
        if frame is None:
            return None
        image = cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"{self.description}: frame {frame.seq} is not a valid JPEG")
        return np.asarray(image)

    def _wait_until_due(self, captured_at_ns: int) -> None:
        now_s = self._monotonic_s()
        previous = self._previous_ns
        self._previous_ns = captured_at_ns
        if self._anchor is None or previous is None:
            self._anchor = (now_s, captured_at_ns)
            return
        gap_ns = captured_at_ns - previous
        if gap_ns > self.max_gap_ns:
            # Shift the timeline so this frame is due max_gap_s after the previous one.
            anchor_s, anchor_ns = self._anchor
            self._anchor = (anchor_s, anchor_ns + gap_ns - self.max_gap_ns)
        anchor_s, anchor_ns = self._anchor
        due_s = anchor_s + (captured_at_ns - anchor_ns) / 1e9 / self.speed
        if due_s < now_s - 1.0:
            self._anchor = (now_s, captured_at_ns)  # fell far behind: restart, do not burst
        elif due_s > now_s:
            self._wake.wait(due_s - now_s)


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame marker, without decoding it."""
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[at + 5 : at + 7], "big")
            width = int.from_bytes(data[at + 7 : at + 9], "big")
            return width, height
        at += 2 + length
    return 0, 0
