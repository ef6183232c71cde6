"""The blocking client: one receiver thread per connection, newest frame wins.

The receiver thread only moves bytes: it parses messages, grants credit for each
frame the moment its bytes are complete, and keeps the newest frame in a single
slot. Decoding happens in :meth:`Client.read`, on the caller's thread, and only
for the frame actually read, so a slow reader costs dropped frames, never lag.

The protocol logic (handshake, credit, heartbeats, goodbye → exception) lives in
:mod:`camstream.client.session`, shared with :class:`camstream.client.aio.AsyncClient`.
"""

from __future__ import annotations

import errno
import select
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from ..config import ClientConfig, StreamAddress
from ..errors import (
    CamstreamTimeoutError,
    ConnectError,
    ConnectionClosed,
    UsageError,
)
from ..frame import Frame
from ..wire.protocol import GoodbyeCode, StreamInfo
from .session import (
    RECV_BUFFER_BYTES,
    Session,
    connect_error,
    lost_error,
    resolve_target,
)
from .tracker import Backoff, Tracker
from .values import ClientState, ClientStats, Image, ReceivedFrame

__all__ = ["Client", "ClientStats", "ReceivedFrame"]

# How often the receiver wakes up when nothing arrives, to send pings and notice
# close(). Waking up instead of closing the socket from another thread keeps
# every socket (and TLS) operation on one thread.
_MAX_TICK_S = 0.1


class _Stopped(Exception):
    """close() was called while connecting."""


class Client:
    """Receives a camstream stream in a background thread.

    ``address`` is ``HOST``, ``HOST:PORT``, ``camstream://HOST:PORT`` or
    ``camstreams://HOST:PORT`` (TLS). Keyword ``overrides`` replace fields of
    ``config`` (see :class:`~camstream.config.ClientConfig`). The token comes from
    the config, else the address (``?token=``), else ``CAMSTREAM_TOKEN``.

    Connection problems are retried with backoff when ``config.reconnect`` is on;
    errors that retrying cannot fix (wrong token, server full) and, without
    reconnect, any error are raised from the next read.
    """

    def __init__(
        self,
        address: str | StreamAddress,
        *,
        config: ClientConfig | None = None,
        **overrides: Any,
    ) -> None:
        self._target = resolve_target(address, config, overrides)
        self._cond = threading.Condition(threading.Lock())
        self._tracker = Tracker()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        cfg = self._target.config
        self._tick_s = min(_MAX_TICK_S, cfg.heartbeat_interval_s / 2)

    # -- lifecycle ---------------------------------------------------------

    @property
    def url(self) -> str:
        return self._target.address.url

    @property
    def config(self) -> ClientConfig:
        return self._target.config

    def open(self) -> Client:
        """Start connecting in the background; returns at once."""
        with self._cond:
            if self._thread is not None or self._stop.is_set():
                if self._stop.is_set():
                    raise UsageError("this client was closed; create a new one")
                return self
            self._tracker.state = "connecting"
            self._thread = threading.Thread(
                target=self._run, name=f"camstream-client {self.url}", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Say goodbye, close the socket and stop the thread. Safe to call twice."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._cond:
            self._tracker.discard()  # a closed client returns nothing more
            self._tracker.finish(ConnectionClosed("client closed", GoodbyeCode.NORMAL), clean=True)
            self._cond.notify_all()

    def __enter__(self) -> Client:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def wait_connected(self, timeout_s: float | None = None) -> StreamInfo:
        """Block until streaming; raise the stored error, or TimeoutError."""
        if self._thread is None and not self._stop.is_set():
            raise UsageError("client is not open: call open() or use 'with'")
        with self._cond:
            self._cond.wait_for(
                lambda: self._tracker.state == "streaming" or self._tracker.finished, timeout_s
            )
            tracker = self._tracker
            if tracker.state == "streaming" and tracker.stream_info is not None:
                return tracker.stream_info
            if tracker.failure is not None:
                raise tracker.failure
            raise CamstreamTimeoutError(
                f"not connected to {self.url} within {timeout_s} s "
                f"(state {tracker.state}, last error: {tracker.last_error or 'none'})"
            )

    # -- reading -----------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self._tracker.state

    @property
    def stream_info(self) -> StreamInfo | None:
        return self._tracker.stream_info

    @property
    def stats(self) -> ClientStats:
        with self._cond:
            return self._tracker.stats()

    def read_received(self, timeout_s: float | None = None) -> ReceivedFrame:
        """The newest frame not returned before, waiting up to ``timeout_s`` for one.

        Raises TimeoutError, ConnectionClosed (end of stream or closed), or the
        error that ended the client (AuthenticationError, ServerFullError, ...).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while True:
                received = self._tracker.take_or_raise()
                if received is not None:
                    return received
                if self._thread is None:
                    raise UsageError("client is not open: call open() or use 'with'")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise CamstreamTimeoutError(
                        f"no new frame within {timeout_s} s (state {self._tracker.state})"
                    )
                self._cond.wait(remaining)

    def read_frame(self, timeout_s: float | None = None) -> Frame:
        """Like :meth:`read_received`, returning the encoded :class:`Frame`."""
        return self.read_received(timeout_s).frame

    def read(self, timeout_s: float | None = None) -> Image:
        """The newest image (decoded here, on the caller's thread)."""
        return self.read_received(timeout_s).image

    def __iter__(self) -> Iterator[ReceivedFrame]:
        """Yield frames as they come; ends at end of stream or close()."""
        while True:
            try:
                received = self.read_received()
            except ConnectionClosed as exc:
                if self._tracker.ends_iteration(exc):
                    return
                raise
            yield received

    # -- receiver thread ---------------------------------------------------

    def _run(self) -> None:
        config = self._target.config
        backoff = Backoff(config.reconnect_initial_s, config.reconnect_max_s)
        while not self._stop.is_set():
            try:
                self._connect_and_stream(backoff)
            except Exception as exc:  # every failure is either retried or handed to the reader
                if self._stop.is_set():
                    return
                with self._cond:
                    delay = self._tracker.after_failure(exc, backoff, reconnect=config.reconnect)
                    self._cond.notify_all()
                if delay is None or self._stop.wait(delay):
                    return

    def _connect_and_stream(self, backoff: Backoff) -> None:
        sock = self._connect()
        try:
            self._stream(sock, backoff)
        except OSError as exc:
            raise lost_error(exc) from exc
        finally:
            sock.close()

    def _connect(self) -> socket.socket:
        address = self._target.address
        deadline = time.monotonic() + self._target.config.connect_timeout_s
        try:
            infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise connect_error(self.url, exc) from exc
        last: Exception = ConnectError("no address to connect to")
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                self._connect_one(sock, sockaddr, deadline)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                context = self._target.ssl_context
                if context is None:
                    return sock
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                return context.wrap_socket(sock, server_hostname=address.host)
            except _Stopped:
                sock.close()
                raise
            except OSError as exc:
                sock.close()
                last = exc
        raise connect_error(self.url, last) from last

    def _connect_one(self, sock: socket.socket, sockaddr: Any, deadline: float) -> None:
        # A non-blocking connect polled in short steps, so close() is never stuck
        # behind a connect timeout to an unreachable host.
        sock.setblocking(False)
        err = sock.connect_ex(sockaddr)
        while err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
            if self._stop.is_set():
                raise _Stopped
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("connect timed out")
            _, writable, _ = select.select([], [sock], [], min(self._tick_s, remaining))
            if writable:
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, errno.errorcode.get(err, str(err)))
        sock.setblocking(True)

    def _stream(self, sock: socket.socket, backoff: Backoff) -> None:
        """Run one session until close() (returns) or the connection ends (raises)."""
        target = self._target
        session = Session(target.config, target.token, time.monotonic(), target.address.stream)
        sock.settimeout(self._tick_s)
        sock.sendall(session.data_to_send())
        buffer = bytearray(RECV_BUFFER_BYTES)
        view = memoryview(buffer)
        tracker = self._tracker
        while not self._stop.is_set():
            try:
                count = sock.recv_into(buffer)
            except TimeoutError:
                count = -1
            now = time.monotonic()
            if count == 0:
                raise session.eof_error()
            if count > 0:
                items = session.receive_data(view[:count], now)
                outgoing = session.data_to_send()
                if outgoing:  # the credits, before the frames are handed over
                    sock.sendall(outgoing)
                with self._cond:
                    tracker.bytes_received += count
                    for item in items:
                        if isinstance(item, Frame):
                            tracker.put(item)
                        else:
                            tracker.connected(item)
                            backoff.reset()
                    self._cond.notify_all()
                session.check()
            session.poll(now)
            outgoing = session.data_to_send()
            if outgoing:
                sock.sendall(outgoing)
        goodbye = session.goodbye()
        if goodbye:
            sock.sendall(goodbye)
