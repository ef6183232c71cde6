"""The native camstream transport: one asyncio protocol per viewer connection.

It feeds received bytes to the sans-IO :class:`~camstream.wire.protocol.Connection`
and sends frames from the viewer's hub slot. Bytes in flight are bounded by the
credit window the client grants, so the kernel's send buffer never hides a
backlog: the server sends a frame only when the client has acknowledged enough
earlier ones, and then it sends the newest frame there is.

A peer that breaks the protocol, stalls the handshake or stops answering
heartbeats costs only its own connection. Everything such a peer controls is
bounded: its receive buffer by the protocol's per-type message limits (a client
message is at most about 1 KB), frames in flight by its credit, and control
replies (PONGs) queued behind a peer that stopped reading by
:data:`MAX_CONTROL_BACKLOG_BYTES`. An exception in this module's own code ends
only the session it happened in.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

from ...config import ServerConfig
from ...delivery import Overrides, Renditions
from ...errors import RemoteProtocolError
from ...frame import Codec, Frame
from ...wire.auth import new_nonce, verify_digest
from ...wire.protocol import (
    Auth,
    Challenge,
    Connection,
    Credit,
    Goodbye,
    GoodbyeCode,
    Hello,
    Ping,
    Pong,
    Role,
    StreamInfo,
)
from ..hub import Hub, Viewer
from .adaptive import POLL_S, ViewerDelivery
from .common import CLOSE_GRACE_S, peer_name, server_full_message
from .peer_log import BAD_PEERS

__all__ = ["MAX_CONTROL_BACKLOG_BYTES", "NativeSession", "SessionContext"]

logger = logging.getLogger(__name__)

#: Control bytes (PONG, PING) we queue for a peer whose socket is not draining
#: before we give up on it: a client that sends pings and never reads.
MAX_CONTROL_BACKLOG_BYTES: Final = 64 * 1024
#: How long a closing session may take to flush before its connection is cut.


class Stream(Protocol):
    """One camera as a native session sees it (a :class:`~camstream.server.producer.Producer`)."""

    name: str
    hub: Hub
    renditions: Renditions  # the camera's smaller tiers, shared by adaptive viewers

    def stream_info(self) -> StreamInfo: ...


@dataclass(frozen=True)
class SessionContext:
    """What a session needs from the server that owns it."""

    config: ServerConfig
    #: The camera a HELLO names ("" = the server's first), or None if there is none.
    find_stream: Callable[[str], Stream | None]
    #: Viewers of every camera and transport: the viewer limit is the server's.
    viewer_count: Callable[[], int]


class NativeSession(asyncio.Protocol):
    """Serves one native viewer from hello to goodbye."""

    _ping_tokens = itertools.count(1)

    def __init__(
        self,
        ctx: SessionContext,
        *,
        accepted_at: float | None = None,
        on_lost: Callable[[], None] | None = None,
        on_trusted: Callable[[], None] | None = None,
    ) -> None:
        self._ctx = ctx
        self._on_lost = on_lost
        self._on_trusted = on_trusted
        self._config = ctx.config
        # The bound caps frames, which only we send: a client's FRAME is refused at its header.
        self._conn = Connection(Role.SERVER, max_payload_bytes=ctx.config.max_payload_bytes)
        self._transport: asyncio.Transport | None = None
        self._viewer: Viewer | None = None
        self._stream: Stream | None = None
        self.hello: Hello | None = None  # the viewer's limits and camera, once it said hello
        self.delivery: ViewerDelivery | None = None  # adaptive delivery, once admitted
        self._announced: StreamInfo | None = None
        self._peer_eof = False
        self._nonce: bytes | None = None
        self._credits = 0
        self._credit_event = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_heard = time.monotonic()
        # The handshake deadline counts from the accept, not from the sniffing.
        self._accepted_at = self._last_heard if accepted_at is None else accepted_at
        self._control_backlog = 0
        self._abort_timer: asyncio.TimerHandle | None = None
        self._closing = False
        self.address = ""

    # -- asyncio.Protocol --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.address = peer_name(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._spawn(self._watchdog(), "watching the heartbeat")

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._last_heard = time.monotonic()
        try:
            events = self._conn.receive_data(data)
        except RemoteProtocolError as exc:
            logger.debug("%s: %s", self.address, exc)
            BAD_PEERS.note("native protocol error")
            self._fail(GoodbyeCode(exc.code), f"protocol error: {exc}")
            return
        try:
            for event in events:
                if self._closing:
                    return
                self._handle(event)
        except Exception:
            self._internal_error("handling a message")

    def eof_received(self) -> bool | None:
        logger.debug("%s: the client closed the connection", self.address)
        self._peer_eof = True
        try:
            self._conn.receive_eof()
        except RemoteProtocolError as exc:  # it stopped in the middle of a message
            self._fail(GoodbyeCode.PROTOCOL_ERROR, f"protocol error: {exc}")
            return None
        self._close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        try:
            if self._viewer is not None:
                self._detach()
                self._viewer = None
        finally:
            for task in self._tasks:
                task.cancel()
            self._credit_event.set()
            self._writable.set()
            if self._on_lost is not None:
                self._on_lost()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._control_backlog = 0
        self._writable.set()

    # -- protocol events ---------------------------------------------------

    def _handle(self, event: object) -> None:
        if isinstance(event, Hello):
            self._credits = min(event.credit_window, self._config.credit_window_max)
            self.hello = event
            self._stream = self._ctx.find_stream(event.stream)
            if self._stream is None:
                self._fail(
                    GoodbyeCode.NO_SUCH_STREAM,
                    f"no camera named {event.stream!r} on this server; "
                    "GET /api/cams lists the cameras",
                )
            elif self._ctx.viewer_count() >= self._config.max_viewers:
                self._fail(
                    GoodbyeCode.SERVER_FULL,
                    server_full_message(self._config.max_viewers),
                )
            elif self._config.token is not None:
                self._nonce = new_nonce()
                self._write(self._conn.send(Challenge(self._nonce)))
            else:
                self._admit()
        elif isinstance(event, Auth):
            assert self._nonce is not None and self._config.token is not None
            if verify_digest(self._config.token, self._nonce, event.digest):
                self._admit()
            else:
                self._fail(GoodbyeCode.AUTH_FAILED, "authentication failed: wrong token")
        elif isinstance(event, Credit):
            self._credits = min(self._credits + event.credits, self._config.credit_window_max)
            if self.delivery is not None and event.credits:
                self.delivery.acked(event.ack_seq)  # v2 clients ack each frame as it lands
            self._credit_event.set()
        elif isinstance(event, Ping):
            self._write(self._conn.send(Pong(event.token)))
        elif isinstance(event, Goodbye):
            self._close()

    def _admit(self) -> None:
        # Checked again: others may have been admitted while this one authenticated.
        stream = self._stream
        assert stream is not None
        if self._ctx.viewer_count() >= self._config.max_viewers:
            self._fail(
                GoodbyeCode.SERVER_FULL,
                server_full_message(self._config.max_viewers),
            )
            return
        info = stream.stream_info()
        self._announced = info
        self._write(self._conn.send(info))
        self.delivery = self._new_delivery(stream, info)
        self._viewer = stream.hub.attach("native", self.address)
        if self.delivery is not None:
            self._viewer.details = self.delivery.stats
        if self._on_trusted is not None:
            self._on_trusted()  # authenticated: the listener keeps its slot
        self._credit_event.set()
        self._spawn(self._send_frames(self._viewer), "sending frames")

    def _new_delivery(self, stream: Stream, info: StreamInfo) -> ViewerDelivery | None:
        """Adaptive delivery for this viewer, within the limits its HELLO asked for."""
        hello = self.hello
        assert hello is not None
        config = self._config
        if config.codec is not Codec.JPEG or not config.adaptive:
            # Lossless stays lossless, never adapted; --no-adaptive is the plain
            # credit window (every frame the client's credit allows, full size).
            return None
        overrides = Overrides(
            width=hello.max_width or None,
            quality=hello.quality or None,
            fps=hello.max_fps or None,
            adaptive=config.adaptive and hello.adaptive,
        )
        return ViewerDelivery(
            ladder=config.ladder_tiers,
            renditions=stream.renditions,
            source_fps=info.fps,
            overrides=overrides,
        )

    async def _send_frames(self, viewer: Viewer) -> None:
        while not self._closing:
            while self._credits <= 0:
                self._credit_event.clear()
                await self._credit_event.wait()
                if self._closing:
                    return
            delivery = self.delivery
            if delivery is not None:
                # Decide first, then take the newest frame: latest frame wins.
                latest = viewer.peek() or self._stream_latest()
                fallback = len(latest.data) if latest is not None else 64 * 1024
                while not delivery.ready(fallback):
                    self._credit_event.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._credit_event.wait(), POLL_S)
                    if self._closing:
                        return
            frame = await viewer.next_frame()
            if frame is None:
                reason = self._ended_reason()
                self._fail(GoodbyeCode.END_OF_STREAM, reason)
                return
            served = frame if delivery is None else await delivery.render(frame)
            await self._writable.wait()
            if self._closing:
                return
            self._send_frame(viewer, frame, served)

    def _stream_latest(self) -> Frame | None:
        return self._stream.hub.latest if self._stream is not None else None

    def _send_frame(self, viewer: Viewer, frame: Frame, served: Frame) -> None:
        """Send ``served`` (``frame`` at this viewer's tier); ``frame`` sizes the stream."""
        assert self._transport is not None
        announced = self._announced
        if announced is not None and (announced.width, announced.height) != (
            frame.width,
            frame.height,
        ):
            # Capture starts on demand, so the first STREAM_INFO may not know the
            # size yet (0x0); a file may also change it. Tell the client first.
            self._announced = replace(announced, width=frame.width, height=frame.height)
            self._write(self._conn.send(self._announced))
        header, payload = self._conn.send_frame(served)
        # writelines hands both buffers to the socket without concatenating them.
        self._transport.writelines([header, payload])
        self._credits -= 1
        nbytes = len(header) + len(payload)
        viewer.record_sent(served, nbytes)
        if self.delivery is not None:
            self.delivery.sent(served, nbytes)

    async def _watchdog(self) -> None:
        """Handshake deadline, then heartbeats: silence for too long closes the connection."""
        config = self._config
        deadline = self._accepted_at + config.handshake_timeout_s
        while not self._closing:
            await asyncio.sleep(min(config.heartbeat_interval_s, config.handshake_timeout_s))
            now = time.monotonic()
            if self._viewer is None and now >= deadline:
                if self._nonce is not None:  # challenged, no AUTH: say why, not just "timeout"
                    self._fail(GoodbyeCode.AUTH_FAILED, "authentication required: no AUTH in time")
                else:
                    self._fail(GoodbyeCode.TIMEOUT, "handshake timed out")
                return
            if now - self._last_heard > config.heartbeat_timeout_s:
                self._fail(GoodbyeCode.TIMEOUT, "no heartbeat from client")
                return
            if self._viewer is not None:
                self._write(self._conn.send(Ping(next(self._ping_tokens) & 0xFFFFFFFF)))

    # -- helpers -----------------------------------------------------------

    def _detach(self) -> None:
        if self._stream is not None and self._viewer is not None:
            self._stream.hub.detach(self._viewer)

    def _ended_reason(self) -> str:
        return (self._stream.hub.ended_reason if self._stream else None) or "server stopped"

    def goodbye(self, code: GoodbyeCode, reason: str) -> None:
        """Say goodbye and close; used by the server on shutdown."""
        self._fail(code, reason)

    def _fail(self, code: GoodbyeCode, reason: str) -> None:
        if self._closing:
            return
        logger.debug("%s: goodbye (%s): %s", self.address, code.name, reason)
        with contextlib.suppress(Exception):
            self._write(self._conn.send(Goodbye(code, reason)))
        self._close()

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if not self._writable.is_set():
            # Frames wait for the socket to drain; control replies do not, so a
            # peer that pings without ever reading could grow our buffer.
            self._control_backlog += len(data)
            if self._control_backlog > MAX_CONTROL_BACKLOG_BYTES:
                logger.debug("%s: not reading; dropping the connection", self.address)
                self._closing = True
                transport.abort()
                return
        transport.write(data)

    def _close(self) -> None:
        first = not self._closing
        self._closing = True
        self._credit_event.set()
        self._writable.set()
        if self._viewer is not None:
            # Leave the hub now, not when the half-closed socket is finally gone.
            self._detach()
            self._viewer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        # Either way, a peer that never reads or never closes is cut after the grace.
        self._abort_timer = asyncio.get_running_loop().call_later(CLOSE_GRACE_S, transport.abort)
        if first and not self._peer_eof and transport.can_write_eof():
            # Half-close and wait for the peer's FIN. Closing outright while its
            # credits are still arriving makes the kernel answer with RST, and an
            # RST can destroy our GOODBYE in the peer's receive buffer unread.
            try:
                transport.write_eof()
            except OSError as exc:
                # The peer vanished first (ENOTCONN, EPIPE, ECONNRESET): normal, not an error.
                logger.debug("%s: gone before our goodbye: %s", self.address, exc)
                transport.abort()
            return
        transport.close()

    def _internal_error(self, doing: str) -> None:
        logger.exception("%s: unexpected error while %s; closing this session", self.address, doing)
        self._fail(GoodbyeCode.PROTOCOL_ERROR, f"internal server error while {doing}")

    def _spawn(self, coro: Coroutine[Any, Any, None], doing: str) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(coro, doing))
        # A task cancelled before its first step never starts ``coro``: close it,
        # or Python warns that it was never awaited.
        task.add_done_callback(lambda _: coro.close())
        self._tasks.append(task)

    async def _guarded(self, coro: Coroutine[Any, Any, None], doing: str) -> None:
        """Run a session task; its exceptions close this session, nothing else."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            self._internal_error(doing)
