"""One camera's recorder: a writer thread behind a bounded queue that never blocks capture.

:meth:`Recorder.offer` runs on the server's encoder thread for every frame. It
takes a lock for a few list operations and returns: the frame joins the
writer's queue, or, when the queue is full by count or bytes (the disk is slower
than the camera), it is dropped and counted. While not recording it goes into
the pre-record ring instead. The writer thread alone touches the files.

A full disk (ENOSPC, EDQUOT) or another write error pauses recording: one
warning through ``on_notice``, frames dropped (counted) while paused, a retry
every ``retry_interval_s`` (after applying retention, which may free space),
and a notice when recording resumes. Streaming is never affected.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..frame import Codec, Frame
from ._av import load_av
from .config import RecorderConfig, camera_directory
from .index import SegmentIndex, SegmentInfo, rebuild_index
from .prerecord import PreRecordBuffer
from .retention import select_for_deletion
from .segments import SegmentWriter, open_segment_file, probe_segment

__all__ = ["Recorder", "RecorderState"]

logger = logging.getLogger(__name__)

_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class RecorderState(str, enum.Enum):
    IDLE = "idle"  # not recording (on demand, or stopped); pre-record fills
    RECORDING = "recording"
    DISK_FULL = "disk_full"  # paused until space returns
    WRITE_ERROR = "write_error"  # paused after another OSError; retried the same way
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class _Start:
    prerecorded: list[Frame] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Stop:
    pass


_Item = Frame | _Start | _Stop


class Recorder:
    """Records one camera's frames into segments under ``config.root_dir/camera``.

    ``open()`` starts the writer thread (and, if ``config.continuous``,
    recording); ``close()`` finishes the open segment and joins the thread.
    ``start()``/``stop()`` switch on-demand recording. Every method is safe
    from any thread; ``offer()`` never blocks on I/O.
    """

    def __init__(
        self,
        camera: str,
        config: RecorderConfig,
        *,
        on_notice: Callable[[int, str], None] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        monotonic_s: Callable[[], float] = time.monotonic,
        open_file: Callable[[str], BinaryIO] = open_segment_file,
    ) -> None:
        load_av()  # fail at construction, with the install hint, not on the writer thread
        self.camera = camera
        self.config = config
        self.directory = camera_directory(config.root_dir, camera)
        self._notice = on_notice or logger.log
        self._clock_ns = clock_ns
        self._monotonic_s = monotonic_s
        self._open_file = open_file
        self._segment_ns = int(config.segment_s * 1e9)

        self._cond = threading.Condition()  # guards everything below up to the writer's own
        self._items: deque[_Item] = deque()
        self._queue_frames = 0
        self._queue_bytes = 0
        self._prerecord = PreRecordBuffer(
            duration_s=config.prerecord_s, max_bytes=config.prerecord_max_bytes
        )
        self._wanted = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._state = RecorderState.IDLE
        self._index = SegmentIndex()
        self._current: SegmentInfo | None = None
        self._last_error: str | None = None
        self._counts = dict.fromkeys(
            ("frames_offered", "frames_written", "frames_dropped", "frames_dropped_unwritable",
             "frames_skipped", "frames_out_of_order", "bytes_written", "segments_written",
             "segments_deleted", "bytes_deleted", "queue_peak_frames", "queue_peak_bytes"), 0,
        )  # fmt: skip

        # Owned by the writer thread only.
        self._segment: SegmentWriter | None = None
        self._last_written_ns = -1
        self._retry_at_s = 0.0
        self._last_frame_s = 0.0
        self._next_retention_s = 0.0

    # -- lifecycle -----------------------------------------------------------

    def open(self) -> None:
        """Create the directory and start the writer thread; no-op if already open."""
        with self._cond:
            if self._thread is not None:
                return
            if self._closing:
                raise RuntimeError("a closed Recorder cannot be reopened; make a new one")
            os.makedirs(self.directory, exist_ok=True)
            self._thread = threading.Thread(
                target=self._run, name=f"camstream-record-{self.camera}", daemon=True
            )
            self._thread.start()
        if self.config.continuous:
            self.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, finish the open segment and stop the thread."""
        with self._cond:
            self._closing = True
            self._wanted = False
            self._items.append(_Stop())
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                logger.warning(
                    "recorder %s: writer still busy after %.1f s", self.camera, timeout_s
                )

    def __enter__(self) -> Recorder:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- control (any thread) -------------------------------------------------

    @property
    def recording(self) -> bool:
        """True between start() and stop() (even while paused by a full disk)."""
        return self._wanted

    def start(self) -> None:
        """Begin recording, starting with the pre-recorded frames; no-op if recording."""
        with self._cond:
            if self._wanted or self._closing:
                return
            self._wanted = True
            self._items.append(_Start(self._prerecord.drain()))
            self._cond.notify_all()

    def stop(self) -> None:
        """Stop recording after the frames already queued; the segment is finished."""
        with self._cond:
            if not self._wanted:
                return
            self._wanted = False
            self._items.append(_Stop())
            self._cond.notify_all()

    def offer(self, frame: Frame) -> bool:
        """Hand over a frame (any thread, never blocks); True if it was queued to be written."""
        with self._cond:
            counts = self._counts
            counts["frames_offered"] += 1
            if frame.placeholder or frame.codec is not Codec.JPEG or self._closing:
                counts["frames_skipped"] += 1  # "NO SIGNAL" is not footage; PNG has no track
                return False
            if not self._wanted:
                self._prerecord.push(frame)
                return False
            size = len(frame.data)
            if (
                self._queue_frames >= self.config.queue_max_frames
                or self._queue_bytes + size > self.config.queue_max_bytes
            ):
                counts["frames_dropped"] += 1
                return False
            self._items.append(frame)
            self._queue_frames += 1
            self._queue_bytes += size
            counts["queue_peak_frames"] = max(counts["queue_peak_frames"], self._queue_frames)
            counts["queue_peak_bytes"] = max(counts["queue_peak_bytes"], self._queue_bytes)
            self._cond.notify()
            return True

    # -- reading back (any thread) ----------------------------------------------

    def segments(self) -> list[SegmentInfo]:
        """Every segment on disk, oldest first, including the one being written."""
        with self._cond:
            listed = list(self._index)
            if self._current is not None:
                listed.append(self._current)
        return listed

    def find(self, t_ns: int) -> SegmentInfo | None:
        """The segment holding wall-clock time ``t_ns`` (ns since the epoch), if any."""
        with self._cond:
            found = self._index.find(t_ns)
            current = self._current
        if found is None and current is not None and current.start_ns <= t_ns <= current.end_ns:
            return current
        return found

    def segment_path(self, name: str) -> str | None:
        """The path of the segment called ``name`` (a download), or None: never a free path."""
        for info in self.segments():
            if info.name == name:
                return info.path
        return None

    def stats(self) -> dict[str, Any]:
        """A JSON-ready snapshot for ``/status``."""
        with self._cond:
            segments = [*self._index, *([self._current] if self._current else [])]
            return {
                "state": self._state.value,
                "recording": self._wanted,
                "directory": self.directory,
                **self._counts,
                "queue_frames": self._queue_frames,
                "queue_bytes": self._queue_bytes,
                "prerecord_frames": len(self._prerecord),
                "prerecord_bytes": self._prerecord.bytes,
                "current_segment": self._current.name if self._current else None,
                "segments": len(segments),
                "total_bytes": sum(s.size_bytes for s in segments),
                "last_error": self._last_error,
            }

    # -- writer thread ------------------------------------------------------------

    def _run(self) -> None:
        index = rebuild_index(self.directory, probe_segment)
        with self._cond:
            self._index = index
        self._apply_retention()
        while True:
            with self._cond:
                if not self._items:
                    if self._closing:
                        break
                    self._cond.wait(self._wait_s())
                item = self._items.popleft() if self._items else None
                if isinstance(item, Frame):
                    self._queue_frames -= 1
                    self._queue_bytes -= len(item.data)
            try:
                self._handle(item)
            except Exception:  # a bug must not kill the thread silently and fill the queue
                logger.exception("recorder %s: unexpected error", self.camera)
                self._finish_segment()
        self._finish_segment()
        with self._cond:
            self._state = RecorderState.CLOSED

    def _wait_s(self) -> float:
        now = self._monotonic_s()
        deadline = self._next_retention_s
        if self._segment is not None:
            deadline = min(deadline, self._last_frame_s + self.config.idle_close_s)
        return max(0.01, deadline - now)

    def _handle(self, item: _Item | None) -> None:
        if isinstance(item, Frame):
            self._write(item)
        elif isinstance(item, _Start):
            self._set_state(RecorderState.RECORDING)
            for frame in item.prerecorded:
                self._write(frame)
        elif isinstance(item, _Stop):
            self._finish_segment()
            if self._state is not RecorderState.CLOSED:
                self._set_state(RecorderState.IDLE)
        now = self._monotonic_s()
        if self._segment is not None and now - self._last_frame_s >= self.config.idle_close_s:
            self._finish_segment()  # capture stopped: leave a complete file with cues
        if now >= self._next_retention_s:
            self._apply_retention()

    def _write(self, frame: Frame) -> None:
        now = self._monotonic_s()
        self._last_frame_s = now
        paused = self._state in (RecorderState.DISK_FULL, RecorderState.WRITE_ERROR)
        if paused and now < self._retry_at_s:
            self._count("frames_dropped_unwritable")
            return
        if frame.captured_at_ns < self._last_written_ns:
            self._count("frames_out_of_order")
            return
        if paused:
            self._apply_retention()  # may be what frees the space
        try:
            segment = self._segment
            if (
                segment is None
                or not segment.accepts(frame)
                or frame.captured_at_ns - segment.start_ns >= self._segment_ns
            ):
                self._finish_segment(raise_errors=True)
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
        with self._cond:
            self._counts["frames_written"] += 1
            self._counts["bytes_written"] += segment.size_bytes - before
            self._current = segment.info()
        if paused:
            self._notice(logging.INFO, f"recording {self.camera}: resumed in {self.directory}")
            self._set_state(RecorderState.RECORDING if self._wanted else RecorderState.IDLE)

    def _failed(self, exc: OSError) -> None:
        """Pause recording: one warning per episode, then retries."""
        self._abandon_segment()
        disk_full = exc.errno in _DISK_FULL_ERRNOS
        already = self._state in (RecorderState.DISK_FULL, RecorderState.WRITE_ERROR)
        with self._cond:
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

    def _finish_segment(self, *, raise_errors: bool = False) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        try:
            info = segment.close()
        except OSError:
            info = segment.abandon()
            self._keep(info)
            if raise_errors:
                raise
            return
        self._keep(info)
        self._count("segments_written")
        self._apply_retention()

    def _abandon_segment(self) -> None:
        segment, self._segment = self._segment, None
        if segment is not None:
            self._keep(segment.abandon())

    def _keep(self, info: SegmentInfo) -> None:
        """Move a finished segment into the index (or drop an empty file) and save it."""
        with self._cond:
            self._current = None
            if info.frames > 0:
                self._index.put(info)
        if info.frames == 0:
            with contextlib.suppress(OSError):
                os.remove(info.path)
        with contextlib.suppress(OSError):  # a full disk must not stop recording later
            with self._cond:
                index = SegmentIndex(self._index)
            index.save(self.directory)

    def _apply_retention(self) -> None:
        self._next_retention_s = self._monotonic_s() + self.config.retention_interval_s
        with self._cond:
            listed = list(self._index)
            current = self._current
        if current is not None:
            listed.append(current)
        doomed = select_for_deletion(
            listed,
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
            with self._cond:
                self._index.remove(info.path)
                self._counts["segments_deleted"] += 1
                self._counts["bytes_deleted"] += info.size_bytes
        if doomed:
            with contextlib.suppress(OSError):
                with self._cond:
                    index = SegmentIndex(self._index)
                index.save(self.directory)

    def _set_state(self, state: RecorderState) -> None:
        with self._cond:
            self._state = state

    def _count(self, name: str) -> None:
        with self._cond:
            self._counts[name] += 1
