"""The camstream session, sans-IO: bytes in, events out; events in, bytes out.

Nothing here touches a socket, a thread or a clock, so every rule can be tested
by feeding bytes (whole, one at a time, or in random chunks). The format is
specified in ``docs/protocol.md``; this module and :mod:`camstream.wire.messages`
(the messages and their bytes) are its reference implementation.

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

from ..errors import LocalProtocolError, RemoteProtocolError
from ..frame import Frame
from .messages import (
    BODY_BOUNDS,
    FRAME_PREFIX_SIZE,
    HEADER_SIZE,
    MAGIC,
    MAX_BODY_LENGTH,
    PROTOCOL_VERSION,
    Auth,
    Challenge,
    Credit,
    Event,
    Goodbye,
    GoodbyeCode,
    Hello,
    MessageType,
    Ping,
    Pong,
    StreamInfo,
    decode_body,
    describe_bad_magic,
    describe_bad_version,
    encode_body,
    encode_frame_prefix,
    encode_header,
    looks_like_camstream,
)

# Callers import these wire constants from here too; the aliases mark them as
# deliberate re-exports for type checkers, since they are not in __all__.
from .messages import DIGEST_SIZE as DIGEST_SIZE  # noqa: PLC0414
from .messages import HEADER as HEADER  # noqa: PLC0414
from .messages import MAX_NAME_BYTES as MAX_NAME_BYTES  # noqa: PLC0414
from .messages import MAX_REASON_BYTES as MAX_REASON_BYTES  # noqa: PLC0414
from .messages import NONCE_SIZE as NONCE_SIZE  # noqa: PLC0414

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

DEFAULT_MAX_PAYLOAD_BYTES = 32 * 1024 * 1024


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
    MessageType.CREDIT: "only the client sends CREDIT, and only after HELLO",
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
        if not 0 < max_payload_bytes <= MAX_BODY_LENGTH - FRAME_PREFIX_SIZE:
            raise ValueError(
                f"max_payload_bytes must be in 1..{MAX_BODY_LENGTH - FRAME_PREFIX_SIZE}"
            )
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
            # CREDIT may follow HELLO at once: whether it arrives before or after
            # the server's answer must not depend on how TCP cut the bytes.
            return msg_type is MessageType.CREDIT or (
                msg_type is MessageType.AUTH and phase is State.AUTHENTICATING
            )
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
            raise RemoteProtocolError(describe_bad_magic(head))
        if len(head) > 2 and head[2] != PROTOCOL_VERSION:
            raise RemoteProtocolError(describe_bad_version(head[2]))
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
        low, high = BODY_BOUNDS[msg_type]
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
            return decode_body(msg_type, body)
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
            msg_type, body = encode_body(event)
        except (struct.error, ValueError, OverflowError) as exc:
            raise LocalProtocolError(f"cannot encode {event!r}: {exc}") from None
        self._check_send(msg_type)
        self._advance(msg_type, sent=True)
        return encode_header(msg_type, len(body)) + body

    def send_frame(self, frame: Frame) -> tuple[bytes, bytes]:
        """Return ``(header, payload)`` for a frame, without copying the payload."""
        self._check_send(MessageType.FRAME)
        size = len(frame.data)
        if size == 0:  # v1 forbids empty payloads (docs/protocol.md §2, FRAME)
            raise LocalProtocolError(f"frame {frame.seq} has an empty payload")
        if size > self.max_payload_bytes:
            raise LocalProtocolError(f"frame of {size} bytes exceeds {self.max_payload_bytes=}")
        try:
            prefix = encode_frame_prefix(frame)
        except (struct.error, ValueError) as exc:
            raise LocalProtocolError(f"cannot encode frame {frame.seq!r}: {exc}") from None
        header = encode_header(MessageType.FRAME, FRAME_PREFIX_SIZE + size)
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
