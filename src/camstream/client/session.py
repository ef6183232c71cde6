"""Client logic shared by :class:`~camstream.client.threaded.Client` and the asyncio client.

Nothing here touches a socket, a thread or an event loop: :class:`Session`
drives one connection's :class:`~camstream.wire.protocol.Connection` (hello, auth,
credit, heartbeats, goodbye → exception), and :class:`Tracker` holds what the
user sees across reconnects (state, the newest-frame slot, counters). Each
client feeds them from its own IO, so both behave the same by construction.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
from dataclasses import dataclass
from typing import Any

from ..config import TOKEN_ENV, ClientConfig, StreamAddress, parse_address
from ..errors import (
    AuthenticationError,
    CamstreamError,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    RemoteProtocolError,
    ServerFullError,
)
from ..frame import Frame
from ..wire.auth import compute_digest
from ..wire.protocol import (
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
    State,
    StreamInfo,
)
from ..wire.tls import client_context

__all__ = ["Session", "Target", "resolve_target"]

# One recv() can hold a typical 720p JPEG in one go without costing much memory.
RECV_BUFFER_BYTES = 256 * 1024


@dataclass(frozen=True)
class Target:
    """Where and how to connect, resolved once per client."""

    address: StreamAddress
    config: ClientConfig
    token: str | None
    ssl_context: ssl.SSLContext | None


def resolve_target(
    address: str | StreamAddress, config: ClientConfig | None, overrides: dict[str, Any]
) -> Target:
    parsed = parse_address(address) if isinstance(address, str) else address
    config = config or ClientConfig()
    if overrides:
        names = {f.name for f in dataclasses.fields(ClientConfig)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(
                f"unknown client option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
            )
        config = dataclasses.replace(config, **overrides)
    token = config.token or parsed.token or os.environ.get(TOKEN_ENV) or None
    context = client_context(config.tls_ca, verify=config.tls_verify) if parsed.tls else None
    return Target(parsed, config, token, context)


def connect_error(url: str, exc: BaseException) -> ConnectError:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, ssl.SSLError) and exc.reason == "WRONG_VERSION_NUMBER":
        detail = "the server does not speak TLS on this port; use camstream:// instead"
    error = ConnectError(f"cannot connect to {url}: {detail}")
    error.__cause__ = exc
    return error


def lost_error(exc: OSError) -> ConnectionClosed:
    return ConnectionClosed(f"connection lost: {exc or type(exc).__name__}", GoodbyeCode.NORMAL)


class Session:
    """One connection's protocol state on the client side (sans-IO).

    ``now`` arguments are ``time.monotonic()`` seconds, so heartbeats can be tested
    without sleeping.
    """

    def __init__(
        self, config: ClientConfig, token: str | None, now: float, stream: str = ""
    ) -> None:
        self._config = config
        self._token = token
        self._conn = Connection(Role.CLIENT, max_payload_bytes=config.max_payload_bytes)
        self._out = bytearray()
        self._last_heard = now
        self._next_ping = now + config.heartbeat_interval_s
        self._handshake_deadline = now + config.connect_timeout_s
        self._ping_token = 0
        self.failure: CamstreamError | None = None
        self._out += self._conn.send(
            Hello(
                credit_window=config.credit_window,
                client_name=config.client_name,
                stream=stream,
                max_width=config.max_width or 0,
                quality=config.quality or 0,
                max_fps=config.max_fps or 0.0,
                adaptive=config.adaptive,
            )
        )

    @property
    def streaming(self) -> bool:
        return self._conn.state is State.STREAMING

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def receive_data(
        self, data: bytes | bytearray | memoryview, now: float
    ) -> list[Frame | StreamInfo]:
        """Parse a chunk; queue credits and pongs; return frames and stream infos in order.

        A goodbye does not raise here, so frames that arrived before it in the same
        chunk still reach the reader; call :meth:`check` afterwards.
        Raises :class:`RemoteProtocolError` for malformed bytes.
        """
        self._last_heard = now
        result: list[Frame | StreamInfo] = []
        for event in self._conn.receive_data(data):
            if isinstance(event, Frame):
                # Credit right away, before anyone decodes: the server may send the
                # next (newest) frame while this one waits in the slot.
                self._out += self._conn.send(Credit(1, ack_seq=event.seq))
                result.append(event)
            elif isinstance(event, StreamInfo):
                result.append(event)
            elif isinstance(event, Challenge):
                self._answer(event)
            elif isinstance(event, Ping):
                self._out += self._conn.send(Pong(event.token))
            elif isinstance(event, Goodbye):
                self.failure = goodbye_error(event)
                break
            if self.failure is not None:
                break
        return result

    def _answer(self, challenge: Challenge) -> None:
        if self._token is None:
            reason = "the server requires a token"
            self._out += self._conn.send(Goodbye(GoodbyeCode.AUTH_FAILED, reason))
            self.failure = AuthenticationError(
                f"{reason}: pass token=... (ClientConfig), set CAMSTREAM_TOKEN, "
                "or add ?token= to the address",
                GoodbyeCode.AUTH_FAILED,
                token_sent=False,
            )
            return
        self._out += self._conn.send(Auth(compute_digest(self._token, challenge.nonce)))

    def check(self) -> None:
        """Raise the reason this connection must end, if there is one."""
        if self.failure is not None:
            raise self.failure

    def poll(self, now: float) -> None:
        """Queue a ping when one is due; raise when the server has gone quiet."""
        silent_s = now - self._last_heard
        if silent_s >= self._config.heartbeat_timeout_s:
            raise ConnectionClosed(
                f"heartbeat timeout: nothing received from the server for {silent_s:.1f} s",
                GoodbyeCode.TIMEOUT,
            )
        if not self.streaming and now >= self._handshake_deadline:
            raise ConnectError(
                f"handshake timed out after {self._config.connect_timeout_s:g} s "
                "(is this a camstream server?)"
            )
        if now >= self._next_ping:
            self._ping_token = (self._ping_token + 1) & 0xFFFFFFFF
            self._out += self._conn.send(Ping(self._ping_token))
            self._next_ping = now + self._config.heartbeat_interval_s

    def goodbye(self) -> bytes:
        """Bytes of a normal goodbye, or nothing if the connection already ended."""
        if self._conn.state in (State.CLOSED, State.ERROR):
            return b""
        return self._conn.send(Goodbye(GoodbyeCode.NORMAL, "client closed"))

    def eof_error(self) -> ConnectionClosed:
        """The error for the server closing the stream without a goodbye."""
        try:
            self._conn.receive_eof()
        except RemoteProtocolError as exc:
            return ConnectionClosed(f"server closed the connection: {exc}", GoodbyeCode.NORMAL)
        return ConnectionClosed("server closed the connection", GoodbyeCode.NORMAL)


def goodbye_error(goodbye: Goodbye) -> ConnectionClosed:
    reason = goodbye.reason
    if goodbye.code is GoodbyeCode.AUTH_FAILED:
        return AuthenticationError(reason or "authentication failed", goodbye.code)
    if goodbye.code is GoodbyeCode.SERVER_FULL:
        return ServerFullError(reason or "server full", goodbye.code)
    if goodbye.code is GoodbyeCode.END_OF_STREAM:
        return ConnectionClosed(reason or "end of stream", goodbye.code)
    return ConnectionClosed(
        f"server said goodbye ({goodbye.code.name.lower()}): {reason or 'no reason given'}",
        goodbye.code,
    )
