"""One camera's recorder: a writer thread behind a bounded queue that never blocks capture.

:meth:`Recorder.offer` runs on the server's encoder thread for every frame. It
takes a lock for a few list operations and returns: the frame joins the
writer's queue, or, when the queue is full by count or bytes (the disk is slower
than the camera), it is dropped and counted. While not recording it goes into
the pre-record ring instead. The writer thread alone touches the files
(:class:`~camstream.recording.writer.SegmentSink`).

A full disk (ENOSPC, EDQUOT) or another write error pauses recording: one
warning through ``on_notice``, frames dropped (counted) while paused, a retry
every ``retry_interval_s`` (after applying retention, which may free space),
and a notice when recording resumes. Streaming is never affected.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..errors import ConfigError
from ..frame import Codec, Frame
from ._av import load_av
from .config import RecorderConfig, camera_directory
from .index import SegmentInfo
from .prerecord import PreRecordBuffer
from .segments import open_segment_file
from .writer import RecorderState, SegmentSink

__all__ = ["Recorder", "RecorderState"]

logger = logging.getLogger(__name__)


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
    recording); ``close()`` writes what is queued, finishes the open segment and
    joins the thread. ``start()``/``stop()`` switch on-demand recording. Every
    method is safe from any thread; ``offer()`` never waits for the disk.

    ``on_notice(level, message)`` (a :mod:`logging` level) hears "paused: the disk
    is full" (WARNING, once per episode) and "resumed" (INFO), on the writer
    thread; by default they go to this module's logger.
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
        self._sink = SegmentSink(
            camera,
            self.directory,
            config,
            notice=on_notice or logger.log,
            clock_ns=clock_ns,
            monotonic_s=monotonic_s,
            open_file=open_file,
        )
        self._cond = threading.Condition()  # guards the queue and the flags below
        self._items: deque[_Item] = deque()
        self._queue_frames = 0
        self._queue_bytes = 0
        self._prerecord = PreRecordBuffer(
            duration_s=config.prerecord_s, max_bytes=config.prerecord_max_bytes
        )
        self._wanted = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._counts = dict.fromkeys(
            ("frames_offered", "frames_dropped", "frames_skipped", "queue_peak_frames",
             "queue_peak_bytes"), 0,
        )  # fmt: skip

    # -- lifecycle -----------------------------------------------------------

    def open(self) -> None:
        """Create the directory and start the writer thread; no-op if already open."""
        with self._cond:
            if self._thread is not None:
                return
            if self._closing:
                raise RuntimeError("a closed Recorder cannot be reopened; make a new one")
            try:
                os.makedirs(self.directory, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create the recording directory {self.directory!r}: {exc.strerror}"
                ) from exc
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
        return self._sink.segments()

    def find(self, t_ns: int) -> SegmentInfo | None:
        """The segment holding wall-clock time ``t_ns`` (ns since the epoch), if any."""
        return self._sink.find(t_ns)

    def segment_path(self, name: str) -> str | None:
        """The path of the segment called ``name`` (a download), or None: never a free path."""
        for info in self.segments():
            if info.name == name:
                return info.path
        return None

    def stats(self) -> dict[str, Any]:
        """A JSON-ready snapshot for ``/status``.

        ``frames_dropped``: the queue was full (the disk is too slow);
        ``frames_dropped_unwritable``: recording was paused by a full disk or a
        write error; ``frames_skipped``: placeholders and non-JPEG frames.
        """
        sink = self._sink.snapshot()
        with self._cond:
            return {
                "state": sink.pop("state"),
                "recording": self._wanted,
                "directory": self.directory,
                **self._counts,
                **sink,
                "queue_frames": self._queue_frames,
                "queue_bytes": self._queue_bytes,
                "prerecord_frames": len(self._prerecord),
                "prerecord_bytes": self._prerecord.bytes,
            }

    # -- writer thread ------------------------------------------------------------

    def _run(self) -> None:
        sink = self._sink
        sink.load()
        while True:
            with self._cond:
                if not self._items:
                    if self._closing:
                        break
                    self._cond.wait(sink.wait_s())
                item = self._items.popleft() if self._items else None
                if isinstance(item, Frame):
                    self._queue_frames -= 1
                    self._queue_bytes -= len(item.data)
            try:
                if isinstance(item, Frame):
                    sink.write(item)
                elif isinstance(item, _Start):
                    sink.start()
                    for frame in item.prerecorded:
                        sink.write(frame)
                elif isinstance(item, _Stop):
                    sink.stop()
                sink.tick()
            except Exception:  # a bug must not kill the thread silently and fill the queue
                logger.exception("recorder %s: unexpected error", self.camera)
                sink.finish_segment()
        sink.close()
