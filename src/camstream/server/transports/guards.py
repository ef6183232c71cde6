"""Protocols for the edges of a connection's life: HTTP request heads, and TLS refusals.

:class:`HttpGuard` wraps aiohttp's protocol to give every request head a
deadline and a size limit; aiohttp bounds line sizes and header counts but has
no deadline for a head that arrives one byte a second (slowloris).

:class:`PlaintextRefusal` answers a client that speaks plaintext to a TLS port,
in plaintext, so that it can tell its user what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import Final

from ...wire.protocol import Connection, Goodbye, GoodbyeCode, Role
from .common import CLOSE_GRACE_S, close_gently, sniff
from .peer_log import BAD_PEERS

__all__ = ["MAX_HTTP_HEAD_BYTES", "MAX_PIPELINED_REQUESTS", "HttpGuard", "PlaintextRefusal"]

#: Largest HTTP request head (request line + headers) accepted; browsers send < 8 KiB.
MAX_HTTP_HEAD_BYTES: Final = 32 * 1024
#: Requests received but not yet answered on one connection. Browsers and players
#: never pipeline; a peer that sends hundreds of requests and reads no answer
#: only makes the server queue responses for nobody.
MAX_PIPELINED_REQUESTS: Final = 16
_HEAD_END: Final = b"\r\n\r\n"


class HttpGuard(asyncio.Protocol):
    """Wraps aiohttp's protocol: deadlines and bounds for what one HTTP peer can make us hold.

    * Every request head gets a deadline and a size limit. The guard only
      watches for the blank line that ends a head; aiohttp still parses
      everything. Bytes after a complete head start the next head (camstream
      serves only GET, so no request has a body); a head gets ``timeout_s``
      from its first byte, the connection's first head from the moment it was
      accepted.
    * Every write has a deadline: the transport pauses as soon as anything is
      left unsent in Python's buffer, and a pause that lasts ``write_timeout_s``
      (a peer that stopped reading, whatever the response: a file, a snapshot,
      an MJPEG part) cuts the connection.
    * At most :data:`MAX_PIPELINED_REQUESTS` requests may wait for their answer;
      the web app reports each answered request with :meth:`request_answered`.
    * The web app reports a request that passed the token check with
      :meth:`trust`, so the listener can keep slots free for such peers.
    """

    def __init__(
        self,
        inner: asyncio.Protocol,
        *,
        accepted_at: float,
        timeout_s: float,
        on_lost: Callable[[], None],
        write_timeout_s: float = 5.0,
        send_buffer_bytes: int | None = None,
        on_trusted: Callable[[], None] | None = None,
    ) -> None:
        self._inner = inner
        self._accepted_at = accepted_at
        self._on_lost = on_lost
        self._on_trusted = on_trusted
        self._timeout_s = timeout_s
        self._write_timeout_s = write_timeout_s
        self._send_buffer_bytes = send_buffer_bytes
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._answered = 0
        self._in_head = False
        self._head_bytes = 0
        self._tail = b""  # the last bytes of an unfinished head, for a split terminator
        self._requests = 0
        self._rejected = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        # Pause whenever anything is left unsent, so that the write deadline
        # sees every stalled write. asyncio's SSL transport pauses at
        # ``size >= high`` (a socket transport at ``size > high``), hence 1 there.
        with contextlib.suppress(Exception):
            tls = transport.get_extra_info("ssl_object") is not None
            transport.set_write_buffer_limits(high=1 if tls else 0, low=0)
        # And a small kernel send buffer: otherwise the kernel takes megabytes
        # for a peer that does not read, and no write ever looks stalled.
        sock = transport.get_extra_info("socket")
        if sock is not None and self._send_buffer_bytes is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_bytes)
        self._inner.connection_made(transport)
        self._begin_head(self._accepted_at + self._timeout_s)

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return
        self._scan(data)
        if self._head_bytes > MAX_HTTP_HEAD_BYTES:
            self._reject(431, "Request Header Fields Too Large")
        elif self._requests - self._answered > MAX_PIPELINED_REQUESTS:
            self._rejected = True
            self._cut()
            return
        if not self._rejected:
            self._inner.data_received(data)

    def request_answered(self) -> None:
        """The web app finished one request (its response is written or queued)."""
        self._answered += 1

    def trust(self) -> None:
        """This connection presented the token (or the server needs none)."""
        if self._on_trusted is not None:
            self._on_trusted()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._write_timer is not None:
            self._write_timer.cancel()
        self._on_lost()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._write_timer is None:
            self._write_timer = asyncio.get_running_loop().call_later(
                self._write_timeout_s, self._cut
            )
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        self._inner.resume_writing()

    def _cut(self) -> None:
        """Drop the connection now: its peer does not read, or floods us with requests."""
        if self._transport is not None:
            self._transport.abort()

    def _scan(self, data: bytes) -> None:
        offset = 0
        while offset < len(data):
            if not self._in_head:
                self._begin_head(time.monotonic() + self._timeout_s)
            combined = self._tail + data[offset:]
            end = combined.find(_HEAD_END)
            if end < 0:
                self._head_bytes += len(data) - offset
                self._tail = combined[-(len(_HEAD_END) - 1) :]
                return
            used = end + len(_HEAD_END) - len(self._tail)
            self._head_bytes += used
            offset += used
            if self._head_bytes > MAX_HTTP_HEAD_BYTES:
                return
            self._in_head = False
            self._requests += 1
            if self._timer is not None:
                self._timer.cancel()

    def _begin_head(self, deadline: float) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0.0, deadline - time.monotonic())
        self._timer = asyncio.get_running_loop().call_later(
            delay, self._reject, 408, "Request Timeout"
        )

    def _reject(self, status: int, reason: str) -> None:
        if self._rejected or self._transport is None or self._transport.is_closing():
            return
        self._rejected = True
        BAD_PEERS.note(f"bad HTTP request ({status})")
        if self._timer is not None:
            self._timer.cancel()
        if self._requests == 0:  # otherwise a response may be under way: do not garble it
            body = f"{status} {reason}\n".encode()
            head = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            self._transport.write(head.encode() + body)
        close_gently(self._transport)


class PlaintextRefusal(asyncio.Protocol):
    """Tells a plaintext client on a TLS port, in plaintext, to use TLS; then closes."""

    def __init__(
        self,
        first: bytes,
        *,
        on_made: Callable[[asyncio.Transport], None],
        on_lost: Callable[[], None],
    ) -> None:
        self._first = first
        self._on_made = on_made
        self._on_lost = on_lost
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._on_made(transport)
        if sniff(self._first) != "http":
            reason = "this server requires TLS: connect with camstreams:// instead of camstream://"
            message = Connection(Role.SERVER).send(Goodbye(GoodbyeCode.PROTOCOL_ERROR, reason))
        else:
            body = b"This port speaks HTTPS: use https:// instead of http://\n"
            message = (
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
        transport.write(message)
        # Half-close and keep reading until the peer closes: closing with its
        # unread request in our receive buffer would send a reset, and the reset
        # could destroy our answer before the peer reads it.
        with contextlib.suppress(OSError):
            transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(CLOSE_GRACE_S, transport.abort)

    def data_received(self, data: bytes) -> None:
        pass  # whatever it sends is discarded

    def eof_received(self) -> bool | None:
        return False  # close now

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._on_lost()
