"""One camera's producer: its source, capture pipeline and hub, and on-demand capture.

A :class:`Producer` owns everything that exists once per camera. The server owns
the listener, the transports and the lifecycle, and asks its producers for
frames (through their hubs) and status. A server with many cameras is many
producers behind one port.

Threads and the loop meet here: the capture pipeline delivers frames on its own
threads, and :meth:`Producer._frame_from_thread` hands each one to the event
loop with ``call_soon_threadsafe``, so the hub is only ever touched on the loop
and needs no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ..codec import make_encoder
from ..config import ServerConfig
from ..delivery import Renditions
from ..errors import UsageError
from ..frame import Frame
from ..recording.recorder import Recorder
from ..sources import Source
from ..wire.protocol import StreamInfo
from .capture import CapturePipeline
from .hub import Hub
from .status import camera_status

__all__ = ["DEFAULT_CAMERA", "Producer"]

#: The name of the camera a one-source server (``--source``) serves.
DEFAULT_CAMERA = "main"

logger = logging.getLogger(__name__)


class Producer:
    """Captures and encodes one source while someone watches (or always)."""

    def __init__(self, name: str, source: Source, config: ServerConfig) -> None:
        self.name = name
        self.source = source
        self.config = config
        self.hub = Hub(on_demand=self._on_demand)
        # Smaller tiers of each frame for adaptive viewers, encoded once per tier.
        self.renditions = Renditions(source_quality=config.quality)
        self.pipeline = CapturePipeline(
            source,
            make_encoder(
                config.codec, quality=config.quality, png_compression=config.png_compression
            ),
            self._frame_from_thread,
            on_end=self._end_from_thread,
            on_image=self.renditions.publish,
            workers=config.encode_workers,
        )
        record = config.recorder_config
        self.recorder = None if record is None else Recorder(name, record, on_notice=logger.log)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._viewers_want = False
        self._capture_wanted = self._wants_capture()
        self._capture_task: asyncio.Task[None] | None = None

    # -- lifecycle (on the event loop) ---------------------------------------

    async def start(self) -> None:
        """Bind to the running loop; check the source; capture now if always wanted."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        if self.source.probe_on_start:
            await loop.run_in_executor(None, _probe, self.source)
        if self.recorder is not None:
            await loop.run_in_executor(None, self.recorder.open)

    def start_capture_if_wanted(self) -> None:
        """Called once the server accepts viewers: honours ``always_capture``."""
        if self._capture_wanted:
            self._on_demand(True)

    def end(self, reason: str) -> None:
        """Tell this camera's viewers that the stream is over."""
        self.hub.end(reason)

    async def stop(self) -> None:
        """Stop capturing and release the source (bounded by the pipeline's stop)."""
        if self._capture_task is not None:
            self._capture_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._capture_task
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.pipeline.stop)
        if self.recorder is not None:
            # After capture stopped: every frame offered is written, the segment closed.
            await loop.run_in_executor(None, self.recorder.close)

    @property
    def capturing(self) -> bool:
        return self.pipeline.running

    def stream_info(self) -> StreamInfo:
        latest = self.hub.latest
        width, height = (latest.width, latest.height) if latest else (0, 0)
        return StreamInfo(
            width=width,
            height=height,
            codec=self.config.codec,
            fps=self.source.nominal_fps or 0.0,
            server_name=self.config.server_name,
        )

    def status(self) -> dict[str, Any]:
        status = camera_status(
            config=self.config,
            source=self.source,
            pipeline=self.pipeline,
            hub=self.hub,
            capturing=self.capturing,
        )
        if self.recorder is not None:
            status["recording"] = self.recorder.stats()
        # Smaller tiers encoded for adaptive viewers: at most one per tier in use.
        status["renditions"] = {
            "encodes": dict(self.renditions.encodes),
            "encodes_per_frame": round(self.renditions.encodes_per_frame(), 3),
        }
        return status

    # -- recording (on the loop) ------------------------------------------------

    def set_recording(self, on: bool) -> None:
        """Start or stop on-demand recording; capture runs while it records."""
        if self.recorder is None:
            raise UsageError(f"camera {self.name} was not started with recording (--record DIR)")
        if on:
            self.recorder.start()
        else:
            self.recorder.stop()
        self._on_demand(self._viewers_want)

    def _wants_capture(self) -> bool:
        # A continuous recording or a pre-record buffer needs frames with nobody watching.
        recorder = self.recorder
        recording = recorder is not None and (recorder.recording or recorder.config.prerecord_s > 0)
        return self._viewers_want or self.config.always_capture or recording

    # -- hand-off from the capture threads ------------------------------------

    def _frame_from_thread(self, frame: Frame) -> None:
        if self.recorder is not None:
            self.recorder.offer(frame)  # never blocks: a slow disk drops (and counts) frames
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self.hub.publish, frame)

    def _end_from_thread(self, reason: str) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._source_ended, reason)

    def _source_ended(self, reason: str) -> None:
        # Even with always_capture, an ended file waits for the next viewer to replay it.
        self.hub.end(reason)
        self._capture_wanted = False

    # -- on-demand capture -----------------------------------------------------

    def _on_demand(self, wanted: bool) -> None:
        self._viewers_want = wanted
        self._capture_wanted = self._wants_capture()
        if self._loop is None:
            return  # not started yet; start_capture_if_wanted() honours it
        if self._capture_task is None or self._capture_task.done():
            self._capture_task = self._loop.create_task(self._reconcile_capture())

    async def _reconcile_capture(self) -> None:
        try:
            await self._reconcile_capture_once()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Never let a failing start/stop kill the loop or go unseen; the next
            # viewer arriving or leaving tries again.
            logger.exception("starting or stopping capture failed")

    async def _reconcile_capture_once(self) -> None:
        # The pipeline's own thread is the truth: a file that ended stopped it
        # without us, and the next viewer must be able to start it again.
        loop = asyncio.get_running_loop()
        while True:
            running = self.pipeline.running
            if self._capture_wanted and not running:
                await loop.run_in_executor(None, self.pipeline.start)
            elif not self._capture_wanted and running:
                await asyncio.sleep(self.config.capture_linger_s)
                if not self._capture_wanted:
                    await loop.run_in_executor(None, self.pipeline.stop)
            else:
                return


def _probe(source: Source) -> None:
    """Open and close the source once, so a bad camera or file fails at start-up."""
    source.open()
    source.close()
