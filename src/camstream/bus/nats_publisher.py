"""Publish each encoded frame of each camera once to NATS, never slowing the stream.

``publish(camera, frame)`` is called by the server's producer (any thread). It
only overwrites that camera's one-frame slot and, if no wake-up is pending
already, wakes the sender task on the publisher's loop; so it costs a lock and a
dict store, and memory stays bounded by one frame per camera whatever NATS does.

The sender publishes with plain core NATS publishes (no acknowledgement to wait
for); the JetStream memory stream captures the subjects and keeps the newest
frame per camera for pull-latest readers. A frame is dropped, and counted, when
NATS is not connected, when the client's write buffer already holds
``max_pending_bytes`` (a slow link to NATS), or when it exceeds the server's
``max_payload``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..frame import Codec, Frame
from ._client import connect_forever, load_nats
from .loop_thread import LoopThread
from .options import NatsOptions
from .wire import frame_headers, new_epoch

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient

__all__ = ["NatsPublisher", "PublisherStats", "ensure_stream"]

_STREAM_RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class PublisherStats:
    connected: bool
    server: str | None
    stream_ready: bool
    frames_published: int
    bytes_published: int
    dropped_superseded: int  # a newer frame of the camera came before this one was sent
    dropped_disconnected: int
    dropped_backpressure: int
    dropped_too_big: int
    dropped_errors: int
    reconnects: int
    last_error: str | None


async def ensure_stream(nc: NatsClient, options: NatsOptions) -> None:
    """Create (or align) the memory stream that keeps the newest frame per camera."""
    from nats.js.api import DiscardPolicy, StorageType  # noqa: PLC0415 - optional dependency
    from nats.js.errors import BadRequestError  # noqa: PLC0415 - optional dependency

    replicas = options.stream_replicas or min(3, max(1, len(nc.servers)))
    js = nc.jetstream(timeout=options.connect_timeout_s * 2)
    config: dict[str, Any] = {
        "name": options.stream,
        "subjects": [options.subjects_wildcard],
        "storage": StorageType.MEMORY,
        "max_msgs_per_subject": 1,
        "discard": DiscardPolicy.OLD,
        "allow_direct": True,
        "num_replicas": replicas,
    }
    try:
        await js.add_stream(**config)
    except BadRequestError:
        # It exists with another configuration (an older camstream, other replicas).
        await js.update_stream(**config)


class NatsPublisher:
    """Publishes frames of named cameras to ``<prefix>.<camera>.<codec>``.

    Run it on a loop you own (``await start()`` ... ``await close()``, or
    ``async with``) or on a private thread (``with NatsPublisher(...) as pub:``).
    """

    def __init__(
        self,
        options: NatsOptions,
        *,
        max_pending_bytes: int = 2 * 1024 * 1024,
    ) -> None:
        load_nats()  # fail now, with the install hint, not on the first frame
        if max_pending_bytes <= 0:
            raise ConfigError("max_pending_bytes must be positive")
        self.options = options
        self.epoch = new_epoch()
        self._max_pending_bytes = max_pending_bytes
        self._lock = threading.Lock()
        self._slots: dict[str, Frame] = {}
        self._subjects: dict[tuple[str, Codec], str] = {}
        self._wake_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ensure_task: asyncio.Task[None] | None = None
        self._nc: NatsClient | None = None
        self._thread: LoopThread | None = None
        self._stream_ready = False
        self._counts = dict.fromkeys(
            (
                "frames_published",
                "bytes_published",
                "dropped_superseded",
                "dropped_disconnected",
                "dropped_backpressure",
                "dropped_too_big",
                "dropped_errors",
                "reconnects",
            ),
            0,
        )
        self._last_error: str | None = None

    # -- any thread ------------------------------------------------------------

    def publish(self, camera: str, frame: Frame) -> None:
        """Hand over the newest frame of ``camera``; never blocks, never queues.

        Safe from any thread. A camera name that cannot be a subject token
        raises :class:`~camstream.errors.ConfigError` (on its first frame).
        """
        if (camera, frame.codec) not in self._subjects:  # validates the name once
            self._subjects[camera, frame.codec] = self.options.subject(camera, frame.codec)
        with self._lock:
            if camera in self._slots:
                self._counts["dropped_superseded"] += 1
            self._slots[camera] = frame
            if self._wake_pending:
                return
            self._wake_pending = True
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return  # not started: the slot keeps the newest frame for the start
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(wake.set)

    def stats(self) -> PublisherStats:
        nc = self._nc
        connected = nc is not None and nc.is_connected
        url = nc.connected_url if connected and nc is not None else None
        with self._lock:
            counts = dict(self._counts)
        return PublisherStats(
            connected=connected,
            server=url.netloc if url is not None else None,
            stream_ready=self._stream_ready,
            last_error=self._last_error,
            **counts,
        )

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Start on the running loop; returns at once (NATS may still be down)."""
        if self._loop is not None:
            raise RuntimeError("NatsPublisher already started")
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        with self._lock:
            if self._slots:
                self._wake.set()
        self._tasks = [
            asyncio.create_task(self._connect(), name="nats-publisher-connect"),
            asyncio.create_task(self._send_loop(), name="nats-publisher-send"),
        ]

    async def close(self) -> None:
        if self._ensure_task is not None:
            self._tasks.append(self._ensure_task)
            self._ensure_task = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):  # closing a dead link must not raise
                await nc.close()
        self._wake = None

    async def __aenter__(self) -> NatsPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __enter__(self) -> NatsPublisher:
        self._thread = LoopThread("camstream-nats-publisher")
        self._thread.start()
        self._thread.call(self.start())
        return self

    def __exit__(self, *exc_info: object) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            try:
                thread.call(self.close())
            finally:
                thread.stop()

    async def wait_connected(self, timeout_s: float) -> None:
        """For tests and start-up banners: until connected and the stream exists."""
        deadline = time.monotonic() + timeout_s
        while not (self._stream_ready and self._nc is not None and self._nc.is_connected):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not connected to NATS after {timeout_s} s: {self._last_error}")
            await asyncio.sleep(0.02)

    # -- the loop --------------------------------------------------------------

    async def _on_error(self, error: Exception) -> None:
        self._last_error = f"{type(error).__name__}: {error}"

    async def _on_disconnected(self) -> None:
        pass  # frames are dropped (and counted) until nats-py has reconnected

    async def _on_reconnected(self) -> None:
        with self._lock:
            self._counts["reconnects"] += 1
        # The whole cluster may have restarted, losing the memory stream.
        if self._ensure_task is None or self._ensure_task.done():
            self._ensure_task = asyncio.create_task(self._ensure_stream())

    async def _connect(self) -> None:
        self._nc = await connect_forever(
            self.options,
            on_error=self._on_error,
            on_disconnected=self._on_disconnected,
            on_reconnected=self._on_reconnected,
            pending_size=self._max_pending_bytes * 4,
        )
        await self._ensure_stream()

    async def _ensure_stream(self) -> None:
        while self._nc is not None:
            try:
                await ensure_stream(self._nc, self.options)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._stream_ready = False
                await self._on_error(exc)
                await asyncio.sleep(_STREAM_RETRY_S)
                continue
            self._stream_ready = True
            return

    async def _send_loop(self) -> None:
        assert self._wake is not None
        wake = self._wake
        while True:
            await wake.wait()
            wake.clear()
            with self._lock:
                batch, self._slots = self._slots, {}
                self._wake_pending = False
            for camera, frame in batch.items():
                await self._send(self._subjects[camera, frame.codec], frame)

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    async def _send(self, subject: str, frame: Frame) -> None:
        from nats.errors import MaxPayloadError  # noqa: PLC0415 - optional dependency

        nc = self._nc
        if nc is None or not nc.is_connected:
            self._count("dropped_disconnected")
            return
        if nc.pending_data_size > self._max_pending_bytes:
            self._count("dropped_backpressure")
            return
        try:
            await nc.publish(subject, frame.data, headers=frame_headers(frame, self.epoch))
        except MaxPayloadError:
            self._count("dropped_too_big")
            self._last_error = f"frame of {len(frame.data)} bytes exceeds NATS max_payload"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # disconnected between the check and the write
            self._count("dropped_errors")
            await self._on_error(exc)
        else:
            with self._lock:
                self._counts["frames_published"] += 1
                self._counts["bytes_published"] += len(frame.data)
