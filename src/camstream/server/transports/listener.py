"""Accepting connections: one port, two protocols, optional TLS, every stage bounded.

Each accepted connection goes through up to three stages, and each has a deadline
of ``handshake_timeout_s`` so that a peer which connects and then says nothing,
or dribbles one byte a second, costs one socket for a few seconds at most:

1. **TLS** (with a certificate). Before the handshake the listener *peeks* at
   the first byte without consuming it. ``0x16`` starts a TLS ClientHello, so
   the handshake proceeds (``ssl_handshake_timeout``). Anything else is a
   client speaking plaintext to a TLS port: it gets a plaintext answer it can
   show the user (a camstream GOODBYE, or an HTTP 400, saying "use
   camstreams:// / https://") instead of a TLS alert nobody can explain.
2. **Sniffing** (:class:`_Sniffer`): ``CS`` is a native client, handed to a
   :class:`~camstream.server.transports.native.NativeSession` (which enforces its own
   handshake deadline and heartbeats); anything else goes to aiohttp.
3. **HTTP request heads** (:class:`_HttpGuard`, around aiohttp's protocol):
   aiohttp bounds line sizes and header counts, but has no deadline for a head
   that arrives one byte at a time. The guard gives every request head
   ``handshake_timeout_s`` and at most :data:`MAX_HTTP_HEAD_BYTES`.

Open connections, including those still in a handshake, are capped by
``max_connections``, and one peer address may hold at most
``max_connections_per_address`` of them (past it, its new connection is closed
at once). A connection is *trusted* once it has shown the token (a native
viewer admitted, an HTTP request that passed the token check; on a server
without a token, any request for the stream, a snapshot or the status).
Untrusted connections may fill at most :data:`UNTRUSTED_SHARE` of the slots:
when they have, or when every slot is taken, a new connection takes the slot of
the oldest untrusted one. So peers that connect and idle cannot keep a viewer
with the token out; only a flood faster than a handshake can. The listener
knows every connection it accepted, so :meth:`Listener.abort_all` can make sure
none outlives the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable
from typing import Final

from ...errors import AddressInUseError, ConfigError
from ...wire.protocol import MAGIC
from .admission import Decision, Limits, decide
from .common import sniff
from .guards import HttpGuard, PlaintextRefusal

__all__ = ["UNTRUSTED_SHARE", "Listener", "bind_listener", "max_connections_for"]

logger = logging.getLogger(__name__)

_TLS_HANDSHAKE_RECORD: Final = 0x16
#: The share of connection slots that connections without the token may fill.
UNTRUSTED_SHARE: Final = 0.75

NativeFactory = Callable[[float, Callable[[], None], Callable[[], None]], asyncio.Protocol]
HttpFactory = Callable[[], "asyncio.Protocol | None"]


def max_connections_for(max_viewers: int) -> int:
    """Open connections allowed: viewers plus room for page loads, status polls and handshakes."""
    return max(256, 4 * max_viewers)


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening socket with SO_REUSEADDR, so a restart never hits TIME_WAIT."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
            raise AddressInUseError(
                f"port {port} on {host} is already in use by another process; "
                "stop that process or choose another port with --port"
            ) from None
        if exc.errno == errno.EACCES:
            raise AddressInUseError(
                f"permission denied binding {host}:{port}; ports below 1024 need root, "
                "choose another port with --port"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


class _Slot:
    """One accepted connection, counted until whichever protocol owns it reports it lost."""

    def __init__(self, listener: Listener, address: str) -> None:
        self._listener = listener
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.accepted_at = time.monotonic()
        self.trusted = False

    def attach(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def trust(self) -> None:
        self.trusted = True

    def release(self) -> None:
        self._listener.release(self)


class Listener:
    """Accepts connections on ``sock`` and routes each to the native or the HTTP protocol."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        native: NativeFactory,
        http: HttpFactory,
        ssl_context: ssl.SSLContext | None,
        handshake_timeout_s: float,
        max_connections: int,
        max_per_address: int | None = None,
        write_timeout_s: float = 5.0,
        send_buffer_bytes: int | None = None,
    ) -> None:
        self._sock: socket.socket | None = sock
        self.native_factory = native
        self.http_factory = http
        self._ssl = ssl_context
        self.handshake_timeout_s = handshake_timeout_s
        self.max_connections = max_connections
        self.max_per_address = max_connections if max_per_address is None else max_per_address
        self.write_timeout_s = write_timeout_s
        self.send_buffer_bytes = send_buffer_bytes
        self._slots: set[_Slot] = set()
        self._per_address: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._accept_task: asyncio.Task[None] | None = None

    @property
    def connection_count(self) -> int:
        return len(self._slots)

    def release(self, slot: _Slot) -> None:
        if slot not in self._slots:
            return
        self._slots.discard(slot)
        left = self._per_address.get(slot.address, 1) - 1
        if left > 0:
            self._per_address[slot.address] = left
        else:
            self._per_address.pop(slot.address, None)

    def _admit(self, address: str) -> bool:
        """Room for a new connection from ``address``? Evicts an idle untrusted peer if needed."""
        untrusted = [slot for slot in self._slots if not slot.trusted]
        # Only a slot whose transport exists can be closed now; the others are
        # still in TLS or in this very burst of accepts.
        evictable = [slot for slot in untrusted if slot.transport is not None]
        decision = decide(
            Limits(self.max_connections, self.max_per_address, UNTRUSTED_SHARE),
            from_address=self._per_address.get(address, 0),
            total=len(self._slots),
            untrusted=len(untrusted),
            evictable=len(evictable),
        )
        if decision is Decision.EVICT_OLDEST_UNTRUSTED:
            # A peer that holds slots without showing the token cannot keep
            # everyone else out: the oldest of them gives way.
            victim = min(evictable, key=lambda slot: slot.accepted_at)
            logger.debug("connection slots full: dropping the oldest untrusted connection")
            assert victim.transport is not None
            victim.transport.abort()
            victim.release()  # counted free now; its connection_lost comes later
        return decision is not Decision.REFUSE

    def start(self) -> None:
        self._accept_task = asyncio.get_running_loop().create_task(self._accept_loop())

    async def stop_accepting(self) -> None:
        """Close the listening socket and drop connections still before their protocol."""
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
            self._accept_task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def abort_all(self, wait_s: float = 1.0) -> None:
        """Let connections finish closing for ``wait_s``, then cut the rest and wait for them."""
        deadline = time.monotonic() + wait_s
        while self._slots and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for slot in list(self._slots):
            if slot.transport is not None:
                slot.transport.abort()
            else:
                slot.release()
        for _ in range(50):  # connection_lost runs on the next loop iterations
            if not self._slots:
                return
            await asyncio.sleep(0.01)
        logger.warning("%d connections did not report closing", len(self._slots))
        self._slots.clear()

    # -- accepting ---------------------------------------------------------

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        listening = self._sock
        while True:
            try:
                sock, _ = await loop.sock_accept(listening)
            except OSError as exc:
                # EMFILE/ENFILE/ENOBUFS: out of descriptors for a moment; do not spin.
                logger.warning("accept failed: %s; pausing accepts for 0.1 s", exc)
                await asyncio.sleep(0.1)
                continue
            try:
                address = str(sock.getpeername()[0])
            except OSError:  # already gone
                sock.close()
                continue
            if not self._admit(address):
                sock.close()
                continue
            slot = _Slot(self, address)
            self._slots.add(slot)
            self._per_address[address] = self._per_address.get(address, 0) + 1
            task = loop.create_task(self._open(sock, slot))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _open(self, sock: socket.socket, slot: _Slot) -> None:
        """Hand ``sock`` to a transport (after TLS, if any); never raises."""
        loop = asyncio.get_running_loop()
        handed_over = False
        try:
            sock.setblocking(False)
            if self._ssl is None:
                handed_over = True
                await loop.connect_accepted_socket(lambda: _Sniffer(self, slot), sock)
                return
            first = await self._peek(sock, slot.accepted_at + self.handshake_timeout_s)
            handed_over = True
            if first[:1] == bytes([_TLS_HANDSHAKE_RECORD]):
                remaining = slot.accepted_at + self.handshake_timeout_s - time.monotonic()
                await loop.connect_accepted_socket(
                    lambda: _Sniffer(self, slot),
                    sock,
                    ssl=self._ssl,
                    ssl_handshake_timeout=max(0.1, remaining),
                )
            elif first:
                await loop.connect_accepted_socket(
                    lambda: PlaintextRefusal(first, on_made=slot.attach, on_lost=slot.release),
                    sock,
                )
            else:
                sock.close()
                slot.release()
        except (OSError, asyncio.TimeoutError) as exc:  # ssl.SSLError is an OSError
            logger.debug("connection dropped before its protocol started: %r", exc)
            if not handed_over:
                sock.close()
            slot.release()
        except asyncio.CancelledError:
            if not handed_over:
                sock.close()
            slot.release()
        except Exception:
            logger.exception("unexpected error while accepting a connection")
            if not handed_over:
                sock.close()
            slot.release()

    async def _peek(self, sock: socket.socket, deadline: float) -> bytes:
        """The first bytes the peer sent, left unread (``b""`` at EOF); TimeoutError at deadline."""
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()

        def on_readable() -> None:
            if not readable.done():
                readable.set_result(None)

        fd = sock.fileno()
        loop.add_reader(fd, on_readable)
        try:
            await asyncio.wait_for(readable, max(0.0, deadline - time.monotonic()))
        finally:
            loop.remove_reader(fd)
        return sock.recv(len(MAGIC), socket.MSG_PEEK)


class _Sniffer(asyncio.Protocol):
    """Reads the first bytes of a connection, then hands it to the right protocol."""

    def __init__(self, listener: Listener, slot: _Slot) -> None:
        self._listener = listener
        self._slot = slot
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._slot.attach(transport)
        delay = self._slot.accepted_at + self._listener.handshake_timeout_s - time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(max(0.0, delay), transport.abort)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            kind = sniff(self._buffer)
            if kind == "native":
                native = self._listener.native_factory
                self._switch(native(self._slot.accepted_at, self._slot.release, self._slot.trust))
            elif kind == "http":
                inner = self._listener.http_factory()
                if inner is None:  # the server is stopping
                    self._drop()
                    return
                guard = HttpGuard(
                    inner,
                    accepted_at=self._slot.accepted_at,
                    timeout_s=self._listener.handshake_timeout_s,
                    on_lost=self._slot.release,
                    write_timeout_s=self._listener.write_timeout_s,
                    send_buffer_bytes=self._listener.send_buffer_bytes,
                    on_trusted=self._slot.trust,
                )
                self._switch(guard)
        except Exception:
            logger.exception("error while handing a connection to its protocol")
            self._drop()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._slot.release()

    def _drop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._transport is not None:
            self._transport.abort()

    def _switch(self, protocol: asyncio.Protocol) -> None:
        assert self._transport is not None
        if self._timer is not None:
            self._timer.cancel()
        self._transport.set_protocol(protocol)
        protocol.connection_made(self._transport)
        protocol.data_received(self._buffer)
