"""The camstream wire format: message types, their events, and the bytes of each.

Every message is an 8-byte header followed by ``length`` bytes of body::

    magic  b"CS"   2 bytes
    version        1 byte   (PROTOCOL_VERSION)
    type           1 byte   (MessageType)
    length         4 bytes  big-endian, checked against the per-type bounds
                            *before* any of the body is buffered

This module turns one body into one event and back; which message may come
when, and cutting a stream into messages, is :class:`camstream.wire.protocol.Connection`'s
job. The format is specified in ``docs/protocol.md``. Import the events and
constants from :mod:`camstream.wire.protocol`, which re-exports them; the helpers
without an underscore are for it.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ..errors import LocalProtocolError
from ..frame import Codec, Frame

MAGIC = b"CS"
PROTOCOL_VERSION = 2
HEADER = struct.Struct("!2sBBI")
HEADER_SIZE = HEADER.size
MAX_BODY_LENGTH = 0xFFFFFFFF  # what the 4-byte length field can carry
NONCE_SIZE = 32
DIGEST_SIZE = 32
MAX_NAME_BYTES = 200
MAX_REASON_BYTES = 1000

# credit window, flags, max width, quality, max fps * 1000, stream name length
_HELLO = struct.Struct("!HHHBIB")
HELLO_FIXED = 0x0001  # flag: the viewer wants exactly its limits, no adaptation
MAX_STREAM_NAME_BYTES = 64
_STREAM_INFO = struct.Struct("!HHBI")  # width, height, codec, fps * 1000
_FRAME = struct.Struct("!QQHHBB")  # seq, captured_at_ns, width, height, codec, flags
_CREDIT = struct.Struct("!IQ")  # credits granted, last seq received
_PING = struct.Struct("!Q")  # token, echoed by PONG
_GOODBYE = struct.Struct("!H")  # code, then a UTF-8 reason
_FLAG_PLACEHOLDER = 0x01
FRAME_PREFIX_SIZE = _FRAME.size


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
    NO_SUCH_STREAM = 7  # the HELLO named a camera this server does not have
    STREAM_REMOVED = 8  # the camera was removed while this viewer watched it


@dataclass(frozen=True, slots=True)
class Hello:
    """Client → server, first message.

    ``credit_window`` is the most frames the client lets the server have in flight
    to it (its memory budget); each :class:`Credit` it sends later adds to it, and
    acknowledges a frame. Within that budget the server's delivery controller
    decides how many frames and which quality tier to send (protocol v2).

    ``stream`` names the camera ("" = the server's first). ``max_width``,
    ``quality`` and ``max_fps`` are the viewer's limits (0 = none); ``adaptive``
    False asks for exactly those limits, never adapted to the link.
    """

    credit_window: int = 16
    client_name: str = ""
    stream: str = ""
    max_width: int = 0
    quality: int = 0
    max_fps: float = 0.0
    adaptive: bool = True


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
BODY_BOUNDS = {
    MessageType.HELLO: (_HELLO.size, _HELLO.size + MAX_STREAM_NAME_BYTES + MAX_NAME_BYTES),
    MessageType.CHALLENGE: (NONCE_SIZE, NONCE_SIZE),
    MessageType.AUTH: (DIGEST_SIZE, DIGEST_SIZE),
    MessageType.STREAM_INFO: (_STREAM_INFO.size, _STREAM_INFO.size + MAX_NAME_BYTES),
    MessageType.FRAME: (_FRAME.size + 1, _FRAME.size),  # the payload is never empty
    MessageType.CREDIT: (_CREDIT.size, _CREDIT.size),
    MessageType.PING: (_PING.size, _PING.size),
    MessageType.PONG: (_PING.size, _PING.size),
    MessageType.GOODBYE: (_GOODBYE.size, _GOODBYE.size + MAX_REASON_BYTES),
}


def looks_like_camstream(prefix: bytes) -> bool:
    """True if ``prefix`` (the first bytes of a connection) could start a camstream message.

    Used to tell native clients from HTTP clients on a shared port: no HTTP
    method starts with ``CS``.
    """
    return MAGIC.startswith(prefix[: len(MAGIC)]) if prefix else True


def describe_bad_magic(head: bytes) -> str:
    """Why ``head`` cannot start a camstream message, guessing what the peer speaks."""
    if head[:1] == b"\x16":
        hint = " (the peer is speaking TLS; enable TLS on this side too)"
    elif all(65 <= b <= 90 for b in head[:2]):  # "GET ", "POST", "HTTP/1.1 200"...
        hint = " (the peer looks like an HTTP client or server, not camstream)"
    else:
        hint = " (not a camstream peer, or the stream lost its framing)"
    return f"bad magic {head[:2]!r}, expected {MAGIC!r}{hint}"


def describe_bad_version(version: int) -> str:
    return (
        f"unsupported protocol version {version}; this side speaks version {PROTOCOL_VERSION}. "
        "Upgrade the older end."
    )


def encode_header(msg_type: MessageType, body_length: int) -> bytes:
    return HEADER.pack(MAGIC, PROTOCOL_VERSION, msg_type, body_length)


def encode_frame_prefix(frame: Frame) -> bytes:
    """The fixed part of a FRAME body; the payload follows it uncopied."""
    flags = _FLAG_PLACEHOLDER if frame.placeholder else 0
    f = frame
    return _FRAME.pack(f.seq, f.captured_at_ns, f.width, f.height, Codec(f.codec), flags)


def decode_body(msg_type: MessageType, body: memoryview) -> Event:  # noqa: PLR0911
    # Lengths were already checked against BODY_BOUNDS; fixed-size bodies are exact.
    if msg_type is MessageType.FRAME:
        seq, captured_at_ns, width, height, codec, flags = _FRAME.unpack_from(body)
        data = bytes(body[_FRAME.size :])  # the only copy of the payload
        placeholder = bool(flags & _FLAG_PLACEHOLDER)
        return Frame(seq, captured_at_ns, width, height, Codec(codec), data, placeholder)
    if msg_type is MessageType.HELLO:
        window, flags, max_width, quality, fps_milli, stream_len = _HELLO.unpack_from(body)
        if window < 1:
            raise ValueError("credit window must be at least 1")
        if quality > 100:
            raise ValueError(f"quality must be 0 (server's) or 1-100, got {quality}")
        if stream_len > MAX_STREAM_NAME_BYTES:
            raise ValueError(f"stream name of {stream_len} bytes exceeds {MAX_STREAM_NAME_BYTES}")
        end = _HELLO.size + stream_len
        if end > len(body):
            raise ValueError("stream name runs past the end of the message")
        return Hello(
            credit_window=window,
            client_name=str(body[end:], "utf-8"),
            stream=str(body[_HELLO.size : end], "utf-8"),
            max_width=max_width,
            quality=quality,
            max_fps=fps_milli / 1000,
            adaptive=not flags & HELLO_FIXED,
        )
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


def encode_body(event: Event) -> tuple[MessageType, bytes]:  # noqa: PLR0911 - one branch per type
    """The type and body of any event but a :class:`Frame` (see :func:`encode_frame_prefix`)."""
    if isinstance(event, Hello):
        if not 1 <= event.credit_window <= 0xFFFF:
            raise LocalProtocolError("credit_window must be between 1 and 65535")
        name = _name_bytes(event.client_name, MAX_NAME_BYTES)
        stream = _name_bytes(event.stream, MAX_STREAM_NAME_BYTES)
        if not 0 <= event.max_width <= 0xFFFF or not 0 <= event.quality <= 100:
            raise LocalProtocolError("max_width must be 0-65535 and quality 0-100")
        fps_milli = max(0, min(0xFFFFFFFF, round(event.max_fps * 1000)))
        flags = 0 if event.adaptive else HELLO_FIXED
        fixed = _HELLO.pack(
            event.credit_window, flags, event.max_width, event.quality, fps_milli, len(stream)
        )
        return MessageType.HELLO, fixed + stream + name
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
