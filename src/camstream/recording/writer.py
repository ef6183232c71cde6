"""The writer thread's side of a recorder: segments, rotation, failures, retention.

:class:`SegmentSink` is driven by exactly one thread (the recorder's writer);
only what readers need (state, counters, the index, the open segment) sits
behind a small lock, so ``/status`` and listings never wait for the disk.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from ..frame import Frame
from .config import RecorderConfig
from .index import SegmentIndex, SegmentInfo, rebuild_index
from .retention import select_for_deletion
from .segments import SegmentWriter, probe_segment

__all__ = ["RecorderState", "SegmentSink"]

logger = logging.getLogger(__name__)

_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class RecorderState(str, enum.Enum):
    IDLE = "idle"  # not recording (on demand, or stopped); pre-record fills
    RECORDING = "recording"
    DISK_FULL = "disk_full"  # paused until space returns
    WRITE_ERROR = "write_error"  # paused after another OSError; retried the same way
    CLOSED = "closed"


class SegmentSink:
    """Writes frames into rotating segments of one camera's directory."""

    def __init__(
        self,
        camera: str,
        directory: str,
        config: RecorderConfig,
        *,
        notice: Callable[[int, str], None],
        clock_ns: Callable[[], int],
        monotonic_s: Callable[[], float],
        open_file: Callable[[str], BinaryIO],
    ) -> None:
        self.camera = camera
        self.directory = directory
        self.config = config
        self._notice = notice
        self._clock_ns = clock_ns
        self._monotonic_s = monotonic_s
        self._open_file = open_file
        self._segment_ns = int(config.segment_s * 1e9)

        self._lock = threading.Lock()  # guards what readers see, below
        self._state = RecorderState.IDLE
        self._index = SegmentIndex()
        self._current: SegmentInfo | None = None
        self._last_error: str | None = None
        self._counts = dict.fromkeys(
            ("frames_written", "frames_dropped_unwritable", "frames_out_of_order",
             "bytes_written", "segments_written", "segments_deleted", "bytes_deleted"), 0,
        )  # fmt: skip

        # The writer thread's own.
        self._segment: SegmentWriter | None = None
        self._last_written_ns = -1
        self._retry_at_s = 0.0
        self._last_frame_s = 0.0
        self._next_retention_s = 0.0

    # -- readers (any thread) ---------------------------------------------------

    def segments(self) -> list[SegmentInfo]:
        with self._lock:
            return [*self._index, *([self._current] if self._current else [])]

    def find(self, t_ns: int) -> SegmentInfo | None:
        with self._lock:
            found = self._index.find(t_ns)
            current = self._current
        if found is None and current is not None and current.start_ns <= t_ns <= current.end_ns:
            return current
        return found

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            segments = [*self._index, *([self._current] if self._current else [])]
            return {
                "state": self._state.value,
                **self._counts,
                "current_segment": self._current.name if self._current else None,
                "segments": len(segments),
                "total_bytes": sum(s.size_bytes for s in segments),
                "last_error": self._last_error,
            }

    # -- the writer thread ----------------------------------------------------------

    def load(self) -> None:
        """Read the directory's index (probing what a crash left) and apply retention."""
        try:
            index = rebuild_index(self.directory, probe_segment)
        except Exception:  # an unreadable directory must not kill the writer
            logger.exception("recorder %s: cannot read %s", self.camera, self.directory)
            index = SegmentIndex()
        with self._lock:
            self._index = index
        self.apply_retention()

    def start(self) -> None:
        if not self._paused():  # a full disk stays paused (and warned once) until it retries
            self._set_state(RecorderState.RECORDING)

    def stop(self) -> None:
        self.finish_segment()
        self._set_state(RecorderState.IDLE)

    def close(self) -> None:
        self.finish_segment()
        self._set_state(RecorderState.CLOSED)

    def wait_s(self) -> float:
        """How long the writer may sleep before :meth:`tick` has something to do."""
        deadline = self._next_retention_s
        if self._segment is not None:
            deadline = min(deadline, self._last_frame_s + self.config.idle_close_s)
        return max(0.01, deadline - self._monotonic_s())

    def tick(self) -> None:
        """Close a segment no frame came for (capture stopped); apply retention when due."""
        now = self._monotonic_s()
        if self._segment is not None and now - self._last_frame_s >= self.config.idle_close_s:
            self.finish_segment()  # leaves a complete file, with cues
        if now >= self._next_retention_s:
            self.apply_retention()

    def write(self, frame: Frame) -> None:
        now = self._monotonic_s()
        self._last_frame_s = now
        paused = self._paused()
        if paused and now < self._retry_at_s:
            self._count("frames_dropped_unwritable")
            return
        if frame.captured_at_ns < self._last_written_ns:
            self._count("frames_out_of_order")
            return
        if paused:
            self.apply_retention()  # may be what frees the space
        try:
            segment = self._segment
            if (
                segment is None
                or not segment.accepts(frame)
                or frame.captured_at_ns - segment.start_ns >= self._segment_ns
            ):
                self.finish_segment(raise_errors=True)
                segment = self._segment = SegmentWriter(
                    self.directory, frame, camera=self.camera, open_file=self._open_file
                )
            before = segment.size_bytes
            segment.write(frame)
        except OSError as exc:
            self._failed(exc)
            self._count("frames_dropped_unwritable")
            return
        self._last_written_ns = frame.captured_at_ns
        with self._lock:
            self._counts["frames_written"] += 1
            self._counts["bytes_written"] += segment.size_bytes - before
            self._current = segment.info()
        if paused:
            self._notice(logging.INFO, f"recording {self.camera}: resumed in {self.directory}")
            self._set_state(RecorderState.RECORDING)

    def finish_segment(self, *, raise_errors: bool = False) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        try:
            info = segment.close()
        except OSError:
            self._keep(segment.abandon())
            if raise_errors:
                raise
            return
        self._keep(info)
        self._count("segments_written")
        self.apply_retention()

    def apply_retention(self) -> None:
        self._next_retention_s = self._monotonic_s() + self.config.retention_interval_s
        doomed = select_for_deletion(
            self.segments(),
            self.config.retention,
            now_ns=self._clock_ns(),
            keep_path=None if self._segment is None else self._segment.path,
        )
        for info in doomed:
            try:
                os.remove(info.path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.warning("recorder %s: cannot delete %s: %s", self.camera, info.path, exc)
                continue
            with self._lock:
                self._index.remove(info.path)
                self._counts["segments_deleted"] += 1
                self._counts["bytes_deleted"] += info.size_bytes
        if doomed:
            self._save_index()

    # -- internals ------------------------------------------------------------------

    def _failed(self, exc: OSError) -> None:
        """Pause recording: one warning per episode, then retries."""
        segment, self._segment = self._segment, None
        if segment is not None:
            self._keep(segment.abandon())
        disk_full = exc.errno in _DISK_FULL_ERRNOS
        already = self._paused()
        with self._lock:
            self._last_error = f"{exc.strerror or exc}"
        self._set_state(RecorderState.DISK_FULL if disk_full else RecorderState.WRITE_ERROR)
        self._retry_at_s = self._monotonic_s() + self.config.retry_interval_s
        if not already:
            what = "the disk is full" if disk_full else f"writing failed ({exc})"
            self._notice(
                logging.WARNING,
                f"recording {self.camera} paused: {what} in {self.directory}; streaming "
                f"continues, frames are dropped, retrying every {self.config.retry_interval_s:g} s",
            )

    def _keep(self, info: SegmentInfo) -> None:
        """Move a finished segment into the index (or delete an empty file) and save it."""
        with self._lock:
            self._current = None
            if info.frames > 0:
                self._index.put(info)
        if info.frames == 0:
            with contextlib.suppress(OSError):
                os.remove(info.path)
        self._save_index()

    def _save_index(self) -> None:
        with self._lock:
            index = SegmentIndex(self._index)
        with contextlib.suppress(OSError):  # a full disk must not stop recording later
            index.save(self.directory)

    def _paused(self) -> bool:
        return self._state in (RecorderState.DISK_FULL, RecorderState.WRITE_ERROR)

    def _set_state(self, state: RecorderState) -> None:
        with self._lock:
            self._state = state

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1
