"""Client logic shared by :class:`~camstream.client.Client` and the asyncio client.

Nothing here touches a socket, a thread or an event loop: :class:`Session`
drives one connection's :class:`~camstream.protocol.Connection` (hello, auth,
credit, heartbeats, goodbye → exception), and :class:`Tracker` holds what the
user sees across reconnects (state, the newest-frame slot, counters). Each
client feeds them from its own IO, so both behave the same by construction.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .auth import compute_digest
from .codec import decode
from .config import TOKEN_ENV, ClientConfig, StreamAddress, parse_address
from .errors import (
    AuthenticationError,
    CamstreamError,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    LocalProtocolError,
    RemoteProtocolError,
    ServerFullError,
)
from .frame import Frame
from .metrics import RateMeter
from .protocol import (
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
from .tls import client_context

__all__ = ["ClientState", "ClientStats", "ReceivedFrame"]

Image = npt.NDArray[np.uint8]
ClientState = Literal["connecting", "streaming", "reconnecting", "closed"]

# One recv() can hold a typical 720p JPEG in one go without costing much memory.
RECV_BUFFER_BYTES = 256 * 1024


def decode_frame(frame: Frame) -> Image:
    """Decode a frame's bytes into a BGR image; raises DecodeError."""
    return decode(frame.data, frame.codec)


@dataclass(eq=False)
class ReceivedFrame:
    """A frame as the client received it; ``image`` decodes on first use, once."""

    frame: Frame
    received_at_ns: int
    _image: Image | None = field(default=None, init=False, repr=False)

    @property
    def seq(self) -> int:
        return self.frame.seq

    @property
    def image(self) -> Image:
        if self._image is None:
            self._image = decode_frame(self.frame)
        return self._image

    @property
    def age_s(self) -> float:
        """Seconds from capture (server clock) to now (this clock)."""
        return self.frame.age_s()


@dataclass(frozen=True, slots=True)
class ClientStats:
    """A snapshot of a client's counters; taking one never blocks the receiver."""

    frames_received: int
    frames_read: int
    frames_dropped: int  # received but replaced by a newer one before anyone read it
    bytes_received: int
    reconnects: int  # sessions re-established after a drop
    fps: float  # frames received over the last second
    last_age_s: float | None  # capture → read, for the last frame read
    state: ClientState
    last_error: str | None


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


class Outcome(enum.Enum):
    RETRY = "retry"  # reconnect (if enabled)
    END = "end"  # the stream ended normally
    FATAL = "fatal"  # retrying cannot help: surface the error from the next read


def classify(exc: BaseException, *, reconnect: bool) -> Outcome:
    if isinstance(exc, (AuthenticationError, ServerFullError)):
        return Outcome.FATAL
    if isinstance(exc, ConnectionClosed) and exc.code == GoodbyeCode.END_OF_STREAM:
        return Outcome.END
    if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
        return Outcome.FATAL  # a wrong certificate will not fix itself between retries
    if isinstance(exc, OSError) or (
        isinstance(exc, CamstreamError) and not isinstance(exc, (ConfigError, LocalProtocolError))
    ):
        return Outcome.RETRY if reconnect else Outcome.FATAL
    return Outcome.FATAL  # a bug (ours or in the config): do not hide it behind retries


def connect_error(url: str, exc: BaseException) -> ConnectError:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, ssl.SSLError) and exc.reason == "WRONG_VERSION_NUMBER":
        detail = "the server does not speak TLS on this port; use camstream:// instead"
    error = ConnectError(f"cannot connect to {url}: {detail}")
    error.__cause__ = exc
    return error


def lost_error(exc: OSError) -> ConnectionClosed:
    return ConnectionClosed(f"connection lost: {exc or type(exc).__name__}", GoodbyeCode.NORMAL)


class Backoff:
    """Exponential delays between reconnect attempts, with a little jitter."""

    def __init__(
        self, initial_s: float, max_s: float, rand: Callable[[], float] = random.random
    ) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self._rand = rand
        self._next_s = initial_s

    def reset(self) -> None:
        self._next_s = self._initial_s

    def next_delay(self) -> float:
        # Jitter keeps many viewers of a restarted server from reconnecting in lockstep.
        delay = min(self._next_s, self._max_s) * (0.9 + 0.2 * self._rand())
        self._next_s = min(self._next_s * 2, self._max_s)
        return delay


class Session:
    """One connection's protocol state on the client side (sans-IO).

    ``now`` arguments are ``time.monotonic()`` seconds, so heartbeats can be tested
    without sleeping.
    """

    def __init__(self, config: ClientConfig, token: str | None, now: float) -> None:
        self._config = config
        self._token = token
        self._conn = Connection(Role.CLIENT, max_payload_bytes=config.max_payload_bytes)
        self._out = bytearray()
        self._last_heard = now
        self._next_ping = now + config.heartbeat_interval_s
        self._handshake_deadline = now + config.connect_timeout_s
        self._ping_token = 0
        self.failure: CamstreamError | None = None
        self._out += self._conn.send(Hello(config.credit_window, config.client_name))

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
                f"{reason}: set CAMSTREAM_TOKEN, pass token=..., or add ?token= to the address",
                GoodbyeCode.AUTH_FAILED,
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


class Tracker:
    """What the user sees across connections: state, the newest-frame slot, counters.

    Not synchronised: the thread client guards it with a lock, the asyncio client
    touches it only on its loop.
    """

    def __init__(self) -> None:
        self.state: ClientState = "closed"
        self.stream_info: StreamInfo | None = None
        self.failure: BaseException | None = None
        self.clean_end = False  # True when failure means "the stream ended", not an error
        self.last_error: str | None = None
        self._slot: ReceivedFrame | None = None
        self._sessions = 0
        self._rate = RateMeter()
        self.frames_received = 0
        self.frames_read = 0
        self.frames_dropped = 0
        self.bytes_received = 0
        self.reconnects = 0
        self._last_age_s: float | None = None

    @property
    def finished(self) -> bool:
        return self.failure is not None

    def connected(self, info: StreamInfo) -> None:
        if self.state != "streaming":
            self._sessions += 1
            self.reconnects = max(0, self._sessions - 1)
        self.state = "streaming"
        self.stream_info = info

    def put(self, frame: Frame) -> None:
        self.frames_received += 1
        self._rate.tick()
        if self._slot is not None:
            self.frames_dropped += 1  # newest wins: the unread older frame is discarded
        self._slot = ReceivedFrame(frame, time.time_ns())

    def take(self) -> ReceivedFrame | None:
        received, self._slot = self._slot, None
        if received is not None:
            self.frames_read += 1
            self._last_age_s = received.age_s
        return received

    def discard(self) -> None:
        self._slot = None

    def lost(self, exc: BaseException, outcome: Outcome) -> None:
        """Record why a connection ended; decide nothing about sleeping."""
        self.last_error = str(exc) or type(exc).__name__
        if outcome is Outcome.RETRY:
            self.state = "reconnecting"
            return
        self.finish(exc, clean=outcome is Outcome.END)

    def finish(self, exc: BaseException, *, clean: bool) -> None:
        if self.failure is None:
            self.failure = exc
            self.clean_end = clean
        self.state = "closed"

    def stats(self) -> ClientStats:
        return ClientStats(
            frames_received=self.frames_received,
            frames_read=self.frames_read,
            frames_dropped=self.frames_dropped,
            bytes_received=self.bytes_received,
            reconnects=self.reconnects,
            fps=self._rate.rate(),
            last_age_s=self._last_age_s,
            state=self.state,
            last_error=self.last_error,
        )
