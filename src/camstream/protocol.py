"""The camstream wire protocol, sans-IO: bytes in, events out; events in, bytes out.

Nothing here touches a socket, a thread or a clock, so every rule can be tested
by feeding bytes (whole, one at a time, or in random chunks). The format is
specified in ``docs/protocol.md``; this module is its reference implementation.

Every message is an 8-byte header followed by ``length`` bytes of body::

    magic  b"CS"   2 bytes
    version        1 byte   (PROTOCOL_VERSION)
    type           1 byte   (MessageType)
    length         4 bytes  big-endian, checked against a per-type maximum
                            *before* any of the body is buffered

A :class:`Connection` also enforces the order of messages (hello, optional
challenge/auth, stream info, then frames), so a peer that skips the
authentication step cannot get frames, and this side cannot send them early.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from .errors import LocalProtocolError, RemoteProtocolError
from .frame import Codec, Frame

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "HEADER_SIZE",
    "MAGIC",
    "PROTOCOL_VERSION",
    "Auth",
    "Challenge",
    "Connection",
    "Credit",
    "Event",
    "Goodbye",
    "GoodbyeCode",
    "Hello",
    "MessageType",
    "Ping",
    "Pong",
    "Role",
    "State",
    "StreamInfo",
    "looks_like_camstream",
]

MAGIC = b"CS"
PROTOCOL_VERSION = 1
HEADER = struct.Struct("!2sBBI")
HEADER_SIZE = HEADER.size
DEFAULT_MAX_PAYLOAD_BYTES = 32 * 1024 * 1024
NONCE_SIZE = 32
DIGEST_SIZE = 32
MAX_NAME_BYTES = 200
MAX_REASON_BYTES = 1000

_HELLO = struct.Struct("!HH")  # credit window, flags
_STREAM_INFO = struct.Struct("!HHBI")  # width, height, codec, fps * 1000
_FRAME = struct.Struct("!QQHHBB")  # seq, captured_at_ns, width, height, codec, flags
_CREDIT = struct.Struct("!IQ")  # credits granted, last seq received
_PING = struct.Struct("!Q")
_GOODBYE = struct.Struct("!H")
_FLAG_PLACEHOLDER = 0x01


class MessageType(enum.IntEnum):
    HELLO = 1
    CHALLENGE = 2
    AUTH = 3
    STREAM_INFO = 4
    FRAME = 5
    CREDIT = 6
    PING = 7
    PONG = 8
    GOODBYE = 9


class GoodbyeCode(enum.IntEnum):
    """Why a session ended; clients map these to exceptions and messages."""

    NORMAL = 0
    END_OF_STREAM = 1
    PROTOCOL_ERROR = 2
    AUTH_FAILED = 3
    SERVER_FULL = 4
    SHUTTING_DOWN = 5
    TIMEOUT = 6


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class State(enum.Enum):
    HANDSHAKE = "handshake"  # server: waiting for HELLO; client: HELLO not sent yet
    AUTHENTICATING = "authenticating"  # a CHALLENGE is out, AUTH not yet accepted
    AWAIT_STREAM_INFO = "await_stream_info"  # server side is deciding / client waits
    STREAMING = "streaming"
    CLOSED = "closed"  # a GOODBYE was sent or received
    ERROR = "error"  # the peer broke the protocol; the connection is unusable


@dataclass(frozen=True, slots=True)
class Hello:
    """Client → server, first message.

    ``credit_window`` is the client's initial credit: how many frames the server
    may have in flight to it. Each :class:`Credit` the client sends later adds to it.
    """

    credit_window: int = 2
    client_name: str = ""


@dataclass(frozen=True, slots=True)
class Challenge:
    """Server → client when a token is required: answer with HMAC(token, nonce)."""

    nonce: bytes


@dataclass(frozen=True, slots=True)
class Auth:
    """Client → server: the HMAC-SHA256 digest of the challenge nonce."""

    digest: bytes


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """Server → client once the client is admitted: what the stream looks like."""

    width: int
    height: int
    codec: Codec
    fps: float
    server_name: str = ""


@dataclass(frozen=True, slots=True)
class Credit:
    """Client → server: permission to send ``credits`` more frames."""

    credits: int
    ack_seq: int = 0


@dataclass(frozen=True, slots=True)
class Ping:
    token: int


@dataclass(frozen=True, slots=True)
class Pong:
    token: int


@dataclass(frozen=True, slots=True)
class Goodbye:
    code: GoodbyeCode
    reason: str = ""


Event = Hello | Challenge | Auth | StreamInfo | Frame | Credit | Ping | Pong | Goodbye


def _max_body(msg_type: MessageType, max_payload_bytes: int) -> int:
    if msg_type is MessageType.FRAME:
        return _FRAME.size + max_payload_bytes
    return {
        MessageType.HELLO: _HELLO.size + MAX_NAME_BYTES,
        MessageType.CHALLENGE: NONCE_SIZE,
        MessageType.AUTH: DIGEST_SIZE,
        MessageType.STREAM_INFO: _STREAM_INFO.size + MAX_NAME_BYTES,
        MessageType.CREDIT: _CREDIT.size,
        MessageType.PING: _PING.size,
        MessageType.PONG: _PING.size,
        MessageType.GOODBYE: _GOODBYE.size + MAX_REASON_BYTES,
    }[msg_type]


def looks_like_camstream(prefix: bytes) -> bool:
    """True if ``prefix`` (the first bytes of a connection) could start a camstream message.

    Used to tell native clients from HTTP clients on a shared port: no HTTP
    method starts with ``CS``.
    """
    return MAGIC.startswith(prefix[: len(MAGIC)]) if prefix else True


# Which messages each side may receive in each state. Anything else is a
# RemoteProtocolError; PING/PONG/GOODBYE are always allowed once a HELLO is in.
_SERVER_RECEIVES = {
    State.HANDSHAKE: {MessageType.HELLO, MessageType.GOODBYE},
    State.AUTHENTICATING: {MessageType.AUTH},
    State.AWAIT_STREAM_INFO: set(),
    State.STREAMING: {MessageType.CREDIT},
}
_CLIENT_RECEIVES = {
    State.HANDSHAKE: set(),
    State.AWAIT_STREAM_INFO: {MessageType.CHALLENGE, MessageType.STREAM_INFO},
    State.AUTHENTICATING: {MessageType.STREAM_INFO},
    State.STREAMING: {MessageType.FRAME, MessageType.STREAM_INFO},
}
_ALWAYS = {MessageType.PING, MessageType.PONG, MessageType.GOODBYE}


class Connection:
    """One end of one camstream session.

    Feed received bytes to :meth:`receive_data`, which returns complete events
    and raises :class:`RemoteProtocolError` with a reason on malformed input
    (after which the connection stays in :attr:`State.ERROR`). Turn events into
    bytes with :meth:`send`; :meth:`send_frame` returns the header and the
    payload as separate buffers so large frames are never copied to be framed.
    """

    def __init__(self, role: Role, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        if max_payload_bytes <= 0:
            raise ValueError("max_payload_bytes must be positive")
        self.role = role
        self.max_payload_bytes = max_payload_bytes
        self.state = State.HANDSHAKE
        self._buffer = bytearray()
        self._hello_received = False

    # -- receiving ---------------------------------------------------------

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buffer)

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Parse ``data`` (any chunk of the stream) and return the complete events in it."""
        if self.state is State.ERROR:
            raise RemoteProtocolError("connection already failed; no more data is accepted")
        buf = self._buffer
        buf += data
        events: list[Event] = []
        offset = 0
        try:
            while len(buf) - offset >= HEADER_SIZE:
                magic, version, raw_type, length = HEADER.unpack_from(buf, offset)
                msg_type = self._check_header(magic, version, raw_type, length)
                end = offset + HEADER_SIZE + length
                if len(buf) < end:
                    break
                body = bytes(buf[offset + HEADER_SIZE : end])
                offset = end
                event = self._parse(msg_type, body)
                self._on_receive(event)
                events.append(event)
            if len(buf) > offset:
                self._check_partial_header(bytes(buf[offset : offset + HEADER_SIZE]))
        except RemoteProtocolError:
            self.state = State.ERROR
            self._buffer = bytearray()
            raise
        del buf[:offset]
        return events

    def _check_partial_header(self, head: bytes) -> None:
        # Reject garbage as soon as its first bytes arrive rather than after 8.
        if not MAGIC.startswith(head[: len(MAGIC)]):
            raise RemoteProtocolError(_bad_magic_reason(head))
        if len(head) > len(MAGIC) and head[len(MAGIC)] != PROTOCOL_VERSION:
            raise RemoteProtocolError(_bad_version_reason(head[len(MAGIC)]))

    def _check_header(self, magic: bytes, version: int, raw_type: int, length: int) -> MessageType:
        if magic != MAGIC:
            raise RemoteProtocolError(_bad_magic_reason(magic))
        if version != PROTOCOL_VERSION:
            raise RemoteProtocolError(_bad_version_reason(version))
        try:
            msg_type = MessageType(raw_type)
        except ValueError:
            raise RemoteProtocolError(f"unknown message type {raw_type}") from None
        limit = _max_body(msg_type, self.max_payload_bytes)
        if length > limit:
            raise RemoteProtocolError(
                f"{msg_type.name} message declares {length} bytes, more than the "
                f"maximum of {limit}; refusing to buffer it"
            )
        self._check_allowed(msg_type)
        return msg_type

    def _check_allowed(self, msg_type: MessageType) -> None:
        if self.state is State.CLOSED:
            raise RemoteProtocolError(f"{msg_type.name} received after goodbye")
        table = _SERVER_RECEIVES if self.role is Role.SERVER else _CLIENT_RECEIVES
        allowed = table.get(self.state, set())
        if self.role is Role.SERVER and self._hello_received:
            allowed = allowed | _ALWAYS
        if self.role is Role.CLIENT and self.state is not State.HANDSHAKE:
            allowed = allowed | _ALWAYS
        if msg_type not in allowed:
            raise RemoteProtocolError(
                f"unexpected {msg_type.name} message while {self.state.value} ({self.role.value} side)"
            )

    def _parse(self, msg_type: MessageType, body: bytes) -> Event:
        try:
            return _PARSERS[msg_type](body)
        except (struct.error, UnicodeDecodeError, ValueError) as exc:
            raise RemoteProtocolError(f"malformed {msg_type.name} message: {exc}") from None

    def _on_receive(self, event: Event) -> None:
        if isinstance(event, Goodbye):
            self.state = State.CLOSED
        elif isinstance(event, Hello):
            self._hello_received = True
            self.state = State.AWAIT_STREAM_INFO
        elif isinstance(event, Challenge):
            self.state = State.AUTHENTICATING
        elif isinstance(event, Auth):
            self.state = State.AWAIT_STREAM_INFO
        elif isinstance(event, StreamInfo):
            self.state = State.STREAMING

    # -- sending -----------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """Return the bytes of ``event``; raises :class:`LocalProtocolError` if it is out of turn."""
        if isinstance(event, Frame):
            header, payload = self.send_frame(event)
            return header + payload
        msg_type, body = _serialize(event)
        self._check_send(msg_type)
        self._on_send(event)
        return HEADER.pack(MAGIC, PROTOCOL_VERSION, msg_type, len(body)) + body

    def send_frame(self, frame: Frame) -> tuple[bytes, bytes]:
        """Return ``(header, payload)`` for a frame, without copying the payload."""
        self._check_send(MessageType.FRAME)
        if len(frame.data) > self.max_payload_bytes:
            raise LocalProtocolError(
                f"frame of {len(frame.data)} bytes exceeds max_payload_bytes={self.max_payload_bytes}"
            )
        flags = _FLAG_PLACEHOLDER if frame.placeholder else 0
        prefix = _FRAME.pack(
            frame.seq, frame.captured_at_ns, frame.width, frame.height, frame.codec, flags
        )
        header = HEADER.pack(
            MAGIC, PROTOCOL_VERSION, MessageType.FRAME, len(prefix) + len(frame.data)
        )
        return header + prefix, frame.data

    def _check_send(self, msg_type: MessageType) -> None:
        if self.state in (State.CLOSED, State.ERROR) and msg_type is not MessageType.GOODBYE:
            raise LocalProtocolError(f"cannot send {msg_type.name}: connection is {self.state.value}")
        ok = {
            (Role.CLIENT, MessageType.HELLO): self.state is State.HANDSHAKE,
            (Role.CLIENT, MessageType.AUTH): self.state is State.AUTHENTICATING,
            (Role.CLIENT, MessageType.CREDIT): self.state is State.STREAMING,
            (Role.SERVER, MessageType.CHALLENGE): self.state is State.AWAIT_STREAM_INFO,
            (Role.SERVER, MessageType.STREAM_INFO): self.state
            in (State.AWAIT_STREAM_INFO, State.STREAMING),
            (Role.SERVER, MessageType.FRAME): self.state is State.STREAMING,
        }.get((self.role, msg_type))
        if ok is None:
            ok = msg_type in _ALWAYS
        if not ok:
            raise LocalProtocolError(
                f"{self.role.value} cannot send {msg_type.name} while {self.state.value}"
            )

    def _on_send(self, event: Event) -> None:
        if isinstance(event, Goodbye):
            self.state = State.CLOSED
        elif isinstance(event, Hello):
            self.state = State.AWAIT_STREAM_INFO
        elif isinstance(event, Challenge):
            self.state = State.AUTHENTICATING
        elif isinstance(event, StreamInfo):
            self.state = State.STREAMING


def _bad_magic_reason(head: bytes) -> str:
    if head[:1].isalpha() and head[:1].isupper() and not head.startswith(MAGIC[:1]):
        hint = " (the peer looks like an HTTP client or server, not camstream)"
    else:
        hint = " (not a camstream peer, or the stream lost its framing)"
    return f"bad magic {head[:2]!r}, expected {MAGIC!r}{hint}"


def _bad_version_reason(version: int) -> str:
    return (
        f"unsupported protocol version {version}; this side speaks version {PROTOCOL_VERSION}. "
        "Upgrade the older end."
    )


def _text(raw: bytes) -> str:
    return raw.decode("utf-8")


def _parse_hello(body: bytes) -> Hello:
    window, _flags = _HELLO.unpack_from(body)
    if window < 1:
        raise ValueError("credit window must be at least 1")
    return Hello(credit_window=window, client_name=_text(body[_HELLO.size :]))


def _parse_fixed(size: int, what: str) -> None:
    raise ValueError(f"{what} must be exactly {size} bytes")


def _parse_challenge(body: bytes) -> Challenge:
    if len(body) != NONCE_SIZE:
        _parse_fixed(NONCE_SIZE, "nonce")
    return Challenge(nonce=body)


def _parse_auth(body: bytes) -> Auth:
    if len(body) != DIGEST_SIZE:
        _parse_fixed(DIGEST_SIZE, "digest")
    return Auth(digest=body)


def _parse_stream_info(body: bytes) -> StreamInfo:
    width, height, codec, fps_milli = _STREAM_INFO.unpack_from(body)
    return StreamInfo(
        width=width,
        height=height,
        codec=Codec(codec),
        fps=fps_milli / 1000,
        server_name=_text(body[_STREAM_INFO.size :]),
    )


def _parse_frame(body: bytes) -> Frame:
    seq, captured_at_ns, width, height, codec, flags = _FRAME.unpack_from(body)
    return Frame(
        seq=seq,
        captured_at_ns=captured_at_ns,
        width=width,
        height=height,
        codec=Codec(codec),
        data=body[_FRAME.size :],
        placeholder=bool(flags & _FLAG_PLACEHOLDER),
    )


def _parse_credit(body: bytes) -> Credit:
    if len(body) != _CREDIT.size:
        _parse_fixed(_CREDIT.size, "CREDIT body")
    credits, ack_seq = _CREDIT.unpack(body)
    return Credit(credits=credits, ack_seq=ack_seq)


def _parse_ping(body: bytes) -> Ping:
    return Ping(token=_PING.unpack(body)[0])


def _parse_pong(body: bytes) -> Pong:
    return Pong(token=_PING.unpack(body)[0])


def _parse_goodbye(body: bytes) -> Goodbye:
    (code,) = _GOODBYE.unpack_from(body)
    return Goodbye(code=GoodbyeCode(code), reason=_text(body[_GOODBYE.size :]))


_PARSERS = {
    MessageType.HELLO: _parse_hello,
    MessageType.CHALLENGE: _parse_challenge,
    MessageType.AUTH: _parse_auth,
    MessageType.STREAM_INFO: _parse_stream_info,
    MessageType.FRAME: _parse_frame,
    MessageType.CREDIT: _parse_credit,
    MessageType.PING: _parse_ping,
    MessageType.PONG: _parse_pong,
    MessageType.GOODBYE: _parse_goodbye,
}


def _name_bytes(text: str, limit: int) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > limit:
        raise LocalProtocolError(f"text of {len(raw)} bytes exceeds the limit of {limit}")
    return raw


def _serialize(event: Event) -> tuple[MessageType, bytes]:  # noqa: PLR0911 - one branch per type
    if isinstance(event, Hello):
        if not 1 <= event.credit_window <= 0xFFFF:
            raise LocalProtocolError("credit_window must be between 1 and 65535")
        name = _name_bytes(event.client_name, MAX_NAME_BYTES)
        return MessageType.HELLO, _HELLO.pack(event.credit_window, 0) + name
    if isinstance(event, Challenge):
        if len(event.nonce) != NONCE_SIZE:
            raise LocalProtocolError(f"nonce must be {NONCE_SIZE} bytes")
        return MessageType.CHALLENGE, bytes(event.nonce)
    if isinstance(event, Auth):
        if len(event.digest) != DIGEST_SIZE:
            raise LocalProtocolError(f"digest must be {DIGEST_SIZE} bytes")
        return MessageType.AUTH, bytes(event.digest)
    if isinstance(event, StreamInfo):
        name = _name_bytes(event.server_name, MAX_NAME_BYTES)
        fps_milli = max(0, min(0xFFFFFFFF, round(event.fps * 1000)))
        body = _STREAM_INFO.pack(event.width, event.height, event.codec, fps_milli)
        return MessageType.STREAM_INFO, body + name
    if isinstance(event, Credit):
        return MessageType.CREDIT, _CREDIT.pack(event.credits, event.ack_seq)
    if isinstance(event, Ping):
        return MessageType.PING, _PING.pack(event.token)
    if isinstance(event, Pong):
        return MessageType.PONG, _PING.pack(event.token)
    if isinstance(event, Goodbye):
        # Trim on a character boundary so the peer can always decode it.
        reason = event.reason.encode()[:MAX_REASON_BYTES].decode("utf-8", "ignore").encode()
        return MessageType.GOODBYE, _GOODBYE.pack(event.code) + reason
    raise LocalProtocolError(f"not a camstream event: {event!r}")
