"""Frames of cameras on NATS, newest only, for a relay.

Per followed camera one task runs in one of two modes (see :mod:`.mode`):

* **push**: a core subscription whose callback only overwrites the camera's
  newest-frame slot. nats-py's queue for it is small, so a relay that cannot
  keep up is told (slow consumer) instead of buffering seconds of video.
* **pull-latest**: one JetStream direct get at a time. The first asks for the
  last message of the subject; the next ones ask for the next message after
  the stream sequence already seen, which in a ``max_msgs_per_subject=1``
  stream is the newest frame or a tiny "404" when nothing is new. So an
  unchanged frame is never sent twice, and no backlog can form anywhere.

Each item a watcher gets is a live :class:`~camstream.frame.Frame` (renumbered
so that its seq only increases, see :mod:`.track`) or :class:`NoSignal` when
the publisher is gone or its last frame is older than ``stale_after_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ConfigError, ConnectError, RemoteProtocolError
from ..frame import Codec
from ._client import connect_forever, load_nats
from .camera_state import CameraState, CameraStats
from .feed import CameraFeed, FeedItem, NoSignal
from .mode import Mode, ModeDecider, ModePolicy
from .options import NatsOptions, check_camera_name
from .track import CameraTrack, Verdict
from .wire import frame_from_message

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg

__all__ = ["CameraStats", "NatsFrameSource"]

_RETRY_S = 0.2
_MIN_POLL_S = 0.002
_MAX_POLL_S = 0.05


class NatsFrameSource:
    """Follows cameras on NATS and hands out their newest frames.

    Use on one asyncio loop: ``async with NatsFrameSource(options) as source:``,
    then ``async for item in source.watch("cam1"): ...`` or an ``on_item``
    callback (called on the loop for every item of every followed camera).
    """

    def __init__(
        self,
        options: NatsOptions,
        *,
        stale_after_s: float = 3.0,
        policy: ModePolicy | None = None,
        codec: Codec = Codec.JPEG,
        on_item: Callable[[str, FeedItem], None] | None = None,
        pending_msgs_limit: int = 8,
        request_timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        load_nats()
        if stale_after_s <= 0 or request_timeout_s <= 0 or pending_msgs_limit < 1:
            raise ConfigError("stale_after_s, request_timeout_s, pending_msgs_limit: positive")
        self.options = options
        self.stale_after_s = stale_after_s
        self.policy = policy or ModePolicy()
        self.codec = codec
        self._on_item = on_item
        self._pending_msgs_limit = pending_msgs_limit
        self._request_timeout_s = request_timeout_s
        self._clock = clock
        self._wall_clock_ns = wall_clock_ns
        self._tick_s = min(0.25, stale_after_s / 4)
        self._cameras: dict[str, CameraState] = {}
        self._nc: NatsClient | None = None
        self._connected = asyncio.Event()
        self._connect_task: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self.reconnects = 0

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background; returns at once."""
        if self._connect_task is None:
            self._connect_task = asyncio.create_task(self._connect(), name="nats-source-connect")

    async def close(self) -> None:
        tasks = [cam.task for cam in self._cameras.values() if cam.task is not None]
        if self._connect_task is not None:
            tasks.append(self._connect_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for cam in self._cameras.values():
            for feed in list(cam.feeds):
                feed.close()
        self._cameras.clear()
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await nc.close()

    async def __aenter__(self) -> NatsFrameSource:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def wait_connected(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except asyncio.TimeoutError:  # not yet the builtin one on Python 3.10
            raise ConnectError(f"no NATS server answered: {self.last_error}") from None

    async def _connect(self) -> None:
        self._nc = await connect_forever(
            self.options,
            on_error=self._on_error,
            on_disconnected=self._on_disconnected,
            on_reconnected=self._on_reconnected,
            pending_size=1024 * 1024,
        )
        self._connected.set()

    async def _on_error(self, error: Exception) -> None:
        from nats.errors import SlowConsumerError  # noqa: PLC0415 - optional dependency

        if isinstance(error, SlowConsumerError):
            for cam in self._cameras.values():
                if cam.sub is not None and cam.sub is error.sub:
                    cam.decider.on_slow_consumer(self._clock())
                    cam.switch.set()
            return
        self.last_error = f"{type(error).__name__}: {error}"

    async def _on_disconnected(self) -> None:
        pass  # the camera tasks keep judging staleness; nats-py reconnects

    async def _on_reconnected(self) -> None:
        self.reconnects += 1

    # -- public ----------------------------------------------------------------

    @property
    def connected_server(self) -> str | None:
        """``host:port`` of the NATS server in use, None while disconnected."""
        nc = self._nc
        if nc is None or not nc.is_connected or nc.connected_url is None:
            return None
        return str(nc.connected_url.netloc)

    def watch(self, camera: str) -> CameraFeed:
        """A newest-item iterator for ``camera``; starts following it if needed."""
        cam = self._follow(camera)
        feed = CameraFeed(camera, self._unwatch)
        cam.feeds.add(feed)
        if cam.latest is not None and cam.track.live:
            feed.offer(cam.latest)
        elif cam.no_signal_sent:
            feed.offer(NoSignal(camera, "no live frame"))
        return feed

    def _unwatch(self, feed: CameraFeed) -> None:
        cam = self._cameras.get(feed.camera)
        if cam is not None:
            cam.feeds.discard(feed)

    async def unfollow(self, camera: str) -> None:
        """Stop following ``camera`` (no viewer left): its task ends, its feeds close."""
        cam = self._cameras.pop(camera, None)
        if cam is None:
            return
        if cam.task is not None:
            cam.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cam.task
        for feed in list(cam.feeds):
            feed.close()

    def follow(self, camera: str) -> None:
        """Follow ``camera`` for the ``on_item`` callback (``watch`` does it too)."""
        self._follow(camera)

    def _follow(self, camera: str) -> CameraState:
        cam = self._cameras.get(camera)
        if cam is None:
            check_camera_name(camera)
            cam = CameraState(
                camera,
                self.options.subject(camera, self.codec),
                CameraTrack(self.stale_after_s),
                ModeDecider(self.policy, now_s=self._clock()),
            )
            cam.started_s = self._clock()
            self._cameras[camera] = cam
            cam.task = asyncio.create_task(self._run(cam), name=f"nats-source-{camera}")
        return cam

    async def list_cameras(self, timeout_s: float = 5.0) -> list[str]:
        """Cameras with a frame in the stream (live or not), from its subjects."""
        from nats.js.errors import NotFoundError  # noqa: PLC0415 - optional dependency

        await self.wait_connected(timeout_s)
        assert self._nc is not None
        js = self._nc.jetstream(timeout=timeout_s)
        prefix = self.options.subject_prefix
        try:
            info = await js.stream_info(self.options.stream, subjects_filter=f"{prefix}.>")
        except NotFoundError:
            return []
        except Exception as exc:
            raise ConnectError(f"cannot read the camera list from NATS: {exc}") from exc
        names = set()
        for subject in info.state.subjects or {}:
            parts = subject[len(prefix) + 1 :].split(".")
            if len(parts) == 2:
                names.add(parts[0])
        return sorted(names)

    def stats(self) -> dict[str, CameraStats]:
        return {name: cam.stats() for name, cam in self._cameras.items()}

    # -- per camera ------------------------------------------------------------

    def _deliver(self, cam: CameraState, item: FeedItem) -> None:
        for feed in cam.feeds:
            feed.offer(item)
        if self._on_item is not None:
            self._on_item(cam.name, item)

    def _no_signal(self, cam: CameraState, reason: str) -> None:
        if not cam.no_signal_sent:
            cam.no_signal_sent = True
            self._deliver(cam, NoSignal(cam.name, reason))

    def _check_signal(self, cam: CameraState) -> None:
        now_s = self._clock()
        if cam.track.check(now_s):
            return
        if cam.latest is not None:
            self._no_signal(cam, f"no new frame for {self.stale_after_s:g} s")
        elif cam.track.silent_for_s(now_s, cam.started_s) > self.stale_after_s:
            self._no_signal(cam, "no frame yet")

    def _accept(self, cam: CameraState, msg: Msg, *, by_pull: bool) -> Verdict | None:
        """Judge one message; deliver it if it is live. None: malformed."""
        try:
            bus = frame_from_message(msg.headers, msg.data)
        except RemoteProtocolError:
            cam.counts["malformed"] += 1
            return None
        if bus.stream_seq is not None:
            cam.stream_seq = bus.stream_seq
        now_s, now_ns = self._clock(), self._wall_clock_ns()
        previous = cam.latest
        verdict, frame = cam.track.observe(bus.frame, bus.epoch, now_s=now_s, now_ns=now_ns)
        if verdict is Verdict.OLD:
            cam.counts["duplicates"] += 1
        elif verdict is Verdict.STALE:
            cam.counts["stale"] += 1
            self._no_signal(cam, "the newest frame is too old (publisher gone?)")
        else:
            if previous is not None and frame.captured_at_ns > previous.captured_at_ns:
                interval_s = (frame.captured_at_ns - previous.captured_at_ns) / 1e9
                cam.frame_interval_s = interval_s / (cam.track.skipped + 1)
            cam.latest = frame
            cam.no_signal_sent = False
            cam.counts["live"] += 1
            cam.counts["pull" if by_pull else "push"] += 1
            self._deliver(cam, frame)
            age_s = (now_ns - frame.captured_at_ns) / 1e9
            if by_pull:
                cam.decider.on_pull_frame(now_s, age_s, cam.track.skipped)
            else:
                pending = cam.sub.pending_msgs if cam.sub is not None else 0
                if cam.decider.on_push_frame(now_s, age_s, pending) is Mode.PULL:
                    cam.switch.set()
        return verdict

    async def _run(self, cam: CameraState) -> None:
        while not self._connected.is_set():  # NATS unreachable: still say NO SIGNAL
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._connected.wait(), self._tick_s)
            self._check_signal(cam)
        while True:
            cam.switch.clear()
            if cam.decider.mode is Mode.PUSH:
                await self._push_phase(cam)
            else:
                await self._pull_phase(cam)

    async def _push_phase(self, cam: CameraState) -> None:
        assert self._nc is not None

        async def on_message(msg: Msg) -> None:
            if cam.decider.mode is Mode.PUSH:
                self._accept(cam, msg, by_pull=False)

        cam.sub = await self._nc.subscribe(
            cam.subject,
            cb=on_message,
            pending_msgs_limit=self._pending_msgs_limit,
            pending_bytes_limit=64 * 1024 * 1024,
        )
        try:
            # The current picture at once, not at the publisher's next frame.
            with contextlib.suppress(Exception):
                await self._pull_once(cam)
            while cam.decider.mode is Mode.PUSH:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(cam.switch.wait(), self._tick_s)
                self._check_signal(cam)
        finally:
            sub, cam.sub = cam.sub, None
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def _pull_idle(self, cam: CameraState) -> None:
        if cam.latest is not None:
            now_s = self._clock()
            idle_s = cam.track.silent_for_s(now_s, cam.started_s)
            cam.decider.on_pull_idle(now_s, idle_s, cam.frame_interval_s)

    async def _pull_phase(self, cam: CameraState) -> None:
        while cam.decider.mode is Mode.PULL:
            if self._nc is None or not self._nc.is_connected:
                self._check_signal(cam)  # nats-py is reconnecting; no request would go out
                await asyncio.sleep(self._tick_s / 5)
                continue
            try:
                got = await self._pull_once(cam)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # timeout, no responders, reconnecting
                cam.counts["pull_errors"] += 1
                self.last_error = f"direct get {cam.subject}: {type(exc).__name__}: {exc}"
                self._check_signal(cam)
                self._pull_idle(cam)
                await asyncio.sleep(_RETRY_S)
                continue
            self._check_signal(cam)
            if not got:
                self._pull_idle(cam)
                delay_s = min(max(cam.frame_interval_s / 4, _MIN_POLL_S), _MAX_POLL_S)
                await asyncio.sleep(delay_s)

    async def _pull_once(self, cam: CameraState) -> bool:
        """One direct get; True if it brought a frame we did not have."""
        assert self._nc is not None
        stream = self.options.stream
        if (
            cam.stream_seq is not None
            and cam.track.silent_for_s(self._clock(), cam.started_s) > self.stale_after_s / 2
            and cam.counts["pulls"] % 20 == 0
        ):
            # The stream may have been recreated (its sequence restarted): ask for
            # the last message again now and then while nothing new arrives.
            cam.stream_seq = None
        cam.counts["pulls"] += 1
        if cam.stream_seq is None:
            subject, payload = f"$JS.API.DIRECT.GET.{stream}.{cam.subject}", b""
        else:
            subject = f"$JS.API.DIRECT.GET.{stream}"
            request = {"seq": cam.stream_seq + 1, "next_by_subj": cam.subject}
            payload = json.dumps(request).encode()
        msg = await self._nc.request(subject, payload, timeout=self._request_timeout_s)
        status = msg.headers.get("Status") if msg.headers else None
        if status == "404":
            return False
        if status is not None:
            raise ConnectError(f"direct get answered {status}: {msg.headers}")
        return self._accept(cam, msg, by_pull=True) is Verdict.LIVE
