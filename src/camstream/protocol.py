"""The camstream wire protocol, sans-IO: bytes in, events out; events in, bytes out.

Nothing here touches a socket, a thread or a clock, so every rule can be tested
by feeding bytes (whole, one at a time, or in random chunks). The format is
specified in ``docs/protocol.md``; this module is its reference implementation.

Every message is an 8-byte header followed by ``length`` bytes of body::

    magic  b"CS"   2 bytes
    version        1 byte   (PROTOCOL_VERSION)
    type           1 byte   (MessageType)
    length         4 bytes  big-endian, checked against the per-type bounds
                            *before* any of the body is buffered

Garbage is rejected on its first wrong byte (magic, then version, then type and
whether that type may arrive now), so a peer that is not speaking camstream
costs at most 8 buffered bytes, and a well-framed one at most one message.

A :class:`Connection` also enforces the order of messages (hello, optional
challenge/auth, stream info, then frames), so a peer that skips the
authentication step cannot get frames, and this side cannot send them early.
It cannot check the digest itself (it has no token): the server application
verifies the :class:`Auth` and answers with STREAM_INFO or a GOODBYE.
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

_HELLO = struct.Struct("!HH")  # credit window, flags (reserved, 0)
_STREAM_INFO = struct.Struct("!HHBI")  # width, height, codec, fps * 1000
_FRAME = struct.Struct("!QQHHBB")  # seq, captured_at_ns, width, height, codec, flags
_CREDIT = struct.Struct("!IQ")  # credits granted, last seq received
_PING = struct.Struct("!Q")  # token, echoed by PONG
_GOODBYE = struct.Struct("!H")  # code, then a UTF-8 reason
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

# (minimum, maximum) body length per type; FRAME's maximum depends on the connection.
_BODY_BOUNDS = {
    MessageType.HELLO: (_HELLO.size, _HELLO.size + MAX_NAME_BYTES),
    MessageType.CHALLENGE: (NONCE_SIZE, NONCE_SIZE),
    MessageType.AUTH: (DIGEST_SIZE, DIGEST_SIZE),
    MessageType.STREAM_INFO: (_STREAM_INFO.size, _STREAM_INFO.size + MAX_NAME_BYTES),
    MessageType.FRAME: (_FRAME.size, _FRAME.size),
    MessageType.CREDIT: (_CREDIT.size, _CREDIT.size),
    MessageType.PING: (_PING.size, _PING.size),
    MessageType.PONG: (_PING.size, _PING.size),
    MessageType.GOODBYE: (_GOODBYE.size, _GOODBYE.size + MAX_REASON_BYTES),
}
_MAX_LENGTH = 0xFFFFFFFF  # what the 4-byte length field can carry


def looks_like_camstream(prefix: bytes) -> bool:
    """True if ``prefix`` (the first bytes of a connection) could start a camstream message.

    Used to tell native clients from HTTP clients on a shared port: no HTTP
    method starts with ``CS``.
    """
    return MAGIC.startswith(prefix[: len(MAGIC)]) if prefix else True


# Where each message moves the session; both ends apply the same table, one on
# sending and one on receiving, so they agree on what may come next.
_NEXT_PHASE = {
    MessageType.HELLO: State.AWAIT_STREAM_INFO,
    MessageType.CHALLENGE: State.AUTHENTICATING,
    MessageType.AUTH: State.AWAIT_STREAM_INFO,
    MessageType.STREAM_INFO: State.STREAMING,
}
_HINTS = {
    MessageType.HELLO: "HELLO must come first, and only once",
    MessageType.CHALLENGE: "CHALLENGE may only answer HELLO, once",
    MessageType.AUTH: "AUTH is only valid as the answer to a CHALLENGE",
    MessageType.STREAM_INFO: "STREAM_INFO follows HELLO, or AUTH when a CHALLENGE was sent",
    MessageType.FRAME: "only the server sends frames, and only after STREAM_INFO",
    MessageType.CREDIT: "only the client sends CREDIT, and only after STREAM_INFO",
}


class Connection:
    """One end of one camstream session.

    Feed received bytes to :meth:`receive_data`, which returns complete events
    and raises :class:`RemoteProtocolError` with a reason on malformed or
    out-of-order input; the connection is then in :attr:`State.ERROR` for good
    (only a GOODBYE may still be sent). When the peer closes the stream, call
    :meth:`receive_eof` to learn whether it stopped in the middle of a message.
    Turn events into bytes with :meth:`send`; :meth:`send_frame` returns the
    header and the payload as separate buffers so large frames are never
    copied to be framed. Sending out of turn raises :class:`LocalProtocolError`.
    """

    def __init__(self, role: Role, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        if not 0 < max_payload_bytes <= _MAX_LENGTH - _FRAME.size:
            raise ValueError(f"max_payload_bytes must be in 1..{_MAX_LENGTH - _FRAME.size}")
        self.role = role
        self.max_payload_bytes = max_payload_bytes
        self._peer = Role.SERVER if role is Role.CLIENT else Role.CLIENT
        self._phase = State.HANDSHAKE  # negotiation progress, kept even once closed
        self._buffer = bytearray()
        self._challenged = False  # a CHALLENGE went by: there is exactly one per session
        self._goodbye_sent = self._goodbye_received = self._failed = False

    @property
    def state(self) -> State:
        if self._failed:
            return State.ERROR
        if self._goodbye_sent or self._goodbye_received:
            return State.CLOSED
        return self._phase

    @state.setter
    def state(self, value: State) -> None:
        """Force a state; for tests and tools only (messages drive it otherwise)."""
        self._failed = value is State.ERROR
        self._goodbye_sent = self._goodbye_received = value is State.CLOSED
        if value not in (State.CLOSED, State.ERROR):
            self._phase = value

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet part of a complete message (at most one message)."""
        return len(self._buffer)

    def _may_send(self, sender: Role, msg_type: MessageType) -> bool:
        phase = self._phase
        if msg_type is MessageType.GOODBYE:
            return True
        if phase is State.HANDSHAKE:  # the client speaks first, with HELLO
            return sender is Role.CLIENT and msg_type is MessageType.HELLO
        if msg_type in (MessageType.PING, MessageType.PONG):
            return True
        if sender is Role.CLIENT:
            return (msg_type, phase) in {
                (MessageType.AUTH, State.AUTHENTICATING),
                (MessageType.CREDIT, State.STREAMING),
            }
        return (msg_type, phase) in {
            (MessageType.STREAM_INFO, State.AWAIT_STREAM_INFO),
            (MessageType.STREAM_INFO, State.STREAMING),
            (MessageType.FRAME, State.STREAMING),
        } or (
            msg_type is MessageType.CHALLENGE
            and phase is State.AWAIT_STREAM_INFO
            and not self._challenged
        )

    def _advance(self, msg_type: MessageType, *, sent: bool) -> None:
        if msg_type is MessageType.GOODBYE:
            if sent:
                self._goodbye_sent = True
            else:
                self._goodbye_received = True
        self._phase = _NEXT_PHASE.get(msg_type, self._phase)
        self._challenged |= msg_type is MessageType.CHALLENGE

    # -- receiving ---------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Parse ``data`` (any chunk of the stream) and return the complete events in it.

        Work is proportional to ``len(data)`` plus the messages it completes: a
        large message arriving in many chunks is neither re-scanned nor copied
        per chunk, only once when it is complete. If ``data`` breaks the
        protocol, the events before the fault in this chunk are dropped too.
        """
        if self._failed:
            raise RemoteProtocolError("connection already failed; no more data is accepted")
        buf = self._buffer
        buf += data
        events: list[Event] = []
        offset, size = 0, len(buf)
        try:
            with memoryview(buf) as view:
                while header := self._check_header(bytes(view[offset : offset + HEADER_SIZE])):
                    msg_type, length = header
                    end = offset + HEADER_SIZE + length
                    if end > size:
                        break
                    events.append(self._parse(msg_type, view[offset + HEADER_SIZE : end]))
                    offset = end
                    self._advance(msg_type, sent=False)
        except RemoteProtocolError:
            self._failed = True
            self._buffer = bytearray()
            raise
        del buf[:offset]
        return events

    def receive_eof(self) -> None:
        """Tell the connection the peer closed the stream.

        Raises :class:`RemoteProtocolError` if the stream stopped in the middle
        of a message (bytes are still buffered); otherwise does nothing.
        """
        if self._buffer and not self._failed:
            n = len(self._buffer)
            self._failed = True
            self._buffer = bytearray()
            raise RemoteProtocolError(f"stream ended in the middle of a message ({n} bytes in)")

    def _check_header(self, head: bytes) -> tuple[MessageType, int] | None:
        """Validate as much of a header as has arrived; ``None`` until all 8 bytes are in."""
        if not MAGIC.startswith(head[:2]):
            raise RemoteProtocolError(_bad_magic_reason(head))
        if len(head) > 2 and head[2] != PROTOCOL_VERSION:
            raise RemoteProtocolError(_bad_version_reason(head[2]))
        if len(head) < 4:
            return None
        try:
            msg_type = MessageType(head[3])
        except ValueError:
            raise RemoteProtocolError(f"unknown message type {head[3]}") from None
        if self._goodbye_received:
            raise RemoteProtocolError(f"{msg_type.name} received after goodbye")
        if not self._may_send(self._peer, msg_type):
            raise RemoteProtocolError(
                f"unexpected {msg_type.name} message while {self._phase.value} "
                f"({self.role.value} side): {_HINTS.get(msg_type, 'out of order')}"
            )
        if len(head) < HEADER_SIZE:
            return None
        length = int.from_bytes(head[4:], "big")
        low, high = _BODY_BOUNDS[msg_type]
        if msg_type is MessageType.FRAME:
            high += self.max_payload_bytes
        if not low <= length <= high:
            raise RemoteProtocolError(
                f"{msg_type.name} message declares {length} bytes of body, outside "
                f"{low}..{high}; refusing to buffer it"
            )
        return msg_type, length

    def _parse(self, msg_type: MessageType, body: memoryview) -> Event:
        try:
            return _parse_body(msg_type, body)
        except (struct.error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise RemoteProtocolError(f"malformed {msg_type.name} message: {exc}") from None

    # -- sending -----------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """Return the bytes of ``event``; raises :class:`LocalProtocolError` if it is out of turn.

        GOODBYE may always be sent (even after an error); a second one is a
        no-op that returns ``b""``, so closing twice is harmless. Nothing else
        may be sent after an error or our GOODBYE; after the peer's GOODBYE,
        replies to events received before it (CREDIT, PONG) are still allowed.
        """
        if isinstance(event, Frame):
            header, payload = self.send_frame(event)
            return header + payload
        if isinstance(event, Goodbye) and self._goodbye_sent:
            return b""
        try:
            msg_type, body = _serialize(event)
        except (struct.error, ValueError, OverflowError) as exc:
            raise LocalProtocolError(f"cannot encode {event!r}: {exc}") from None
        self._check_send(msg_type)
        self._advance(msg_type, sent=True)
        return HEADER.pack(MAGIC, PROTOCOL_VERSION, msg_type, len(body)) + body

    def send_frame(self, frame: Frame) -> tuple[bytes, bytes]:
        """Return ``(header, payload)`` for a frame, without copying the payload."""
        self._check_send(MessageType.FRAME)
        size = len(frame.data)
        if size > self.max_payload_bytes:
            raise LocalProtocolError(f"frame of {size} bytes exceeds {self.max_payload_bytes=}")
        flags = _FLAG_PLACEHOLDER if frame.placeholder else 0
        f = frame
        try:
            prefix = _FRAME.pack(f.seq, f.captured_at_ns, f.width, f.height, Codec(f.codec), flags)
        except (struct.error, ValueError) as exc:
            raise LocalProtocolError(f"cannot encode frame {frame.seq!r}: {exc}") from None
        header = HEADER.pack(MAGIC, PROTOCOL_VERSION, MessageType.FRAME, _FRAME.size + size)
        return header + prefix, frame.data

    def _check_send(self, msg_type: MessageType) -> None:
        # After *receiving* GOODBYE, answers to the events of the same batch (a
        # CREDIT for a frame that came before it) are still allowed: the peer
        # accepts what was in flight after its goodbye, and ignores it.
        if msg_type is not MessageType.GOODBYE and (self._failed or self._goodbye_sent):
            raise LocalProtocolError(
                f"cannot send {msg_type.name}: connection is {self.state.value}"
            )
        if not self._may_send(self.role, msg_type):
            raise LocalProtocolError(
                f"{self.role.value} cannot send {msg_type.name} while {self._phase.value}: "
                f"{_HINTS.get(msg_type, 'out of order')}"
            )


def _bad_magic_reason(head: bytes) -> str:
    if head[:1] == b"\x16":
        hint = " (the peer is speaking TLS; enable TLS on this side too)"
    elif all(65 <= b <= 90 for b in head[:2]):  # "GET ", "POST", "HTTP/1.1 200"...
        hint = " (the peer looks like an HTTP client or server, not camstream)"
    else:
        hint = " (not a camstream peer, or the stream lost its framing)"
    return f"bad magic {head[:2]!r}, expected {MAGIC!r}{hint}"


def _bad_version_reason(version: int) -> str:
    return (
        f"unsupported protocol version {version}; this side speaks version {PROTOCOL_VERSION}. "
        "Upgrade the older end."
    )


def _parse_body(msg_type: MessageType, body: memoryview) -> Event:  # noqa: PLR0911
    # Lengths were already checked against _BODY_BOUNDS; fixed-size bodies are exact.
    if msg_type is MessageType.FRAME:
        seq, captured_at_ns, width, height, codec, flags = _FRAME.unpack_from(body)
        data = bytes(body[_FRAME.size :])  # the only copy of the payload
        placeholder = bool(flags & _FLAG_PLACEHOLDER)
        return Frame(seq, captured_at_ns, width, height, Codec(codec), data, placeholder)
    if msg_type is MessageType.HELLO:
        window, _flags = _HELLO.unpack_from(body)
        if window < 1:
            raise ValueError("credit window must be at least 1")
        return Hello(credit_window=window, client_name=str(body[_HELLO.size :], "utf-8"))
    if msg_type is MessageType.CHALLENGE:
        return Challenge(nonce=bytes(body))
    if msg_type is MessageType.AUTH:
        return Auth(digest=bytes(body))
    if msg_type is MessageType.STREAM_INFO:
        width, height, codec, fps_milli = _STREAM_INFO.unpack_from(body)
        name = str(body[_STREAM_INFO.size :], "utf-8")
        return StreamInfo(width, height, Codec(codec), fps_milli / 1000, name)
    if msg_type is MessageType.CREDIT:
        return Credit(*_CREDIT.unpack(body))
    if msg_type is MessageType.PING:
        return Ping(token=_PING.unpack(body)[0])
    if msg_type is MessageType.PONG:
        return Pong(token=_PING.unpack(body)[0])
    (code,) = _GOODBYE.unpack_from(body)
    return Goodbye(code=GoodbyeCode(code), reason=str(body[_GOODBYE.size :], "utf-8"))


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
        body = _STREAM_INFO.pack(event.width, event.height, Codec(event.codec), fps_milli)
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
        return MessageType.GOODBYE, _GOODBYE.pack(GoodbyeCode(event.code)) + reason
    raise LocalProtocolError(f"not a camstream event: {event!r}")
