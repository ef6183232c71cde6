"""A camstream client in raw bytes, written from docs/protocol.md alone.

The conformance tests (``test_conformance*.py``) drive a real server with it.
Nothing here imports camstream's protocol code: messages are packed and parsed
with :mod:`struct` from the tables of the spec, as an independent client would.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from camstream import Server

# -- the wire format, from docs/protocol.md §1-§2 -------------------------------

HELLO, CHALLENGE, AUTH, STREAM_INFO, FRAME, CREDIT, PING, PONG, GOODBYE = range(1, 10)
NORMAL, END_OF_STREAM, PROTOCOL_ERROR, AUTH_FAILED, SERVER_FULL, SHUTTING_DOWN, TIMEOUT = range(7)
MAX_PAYLOAD = 32 * 1024 * 1024  # §1: fixed in v1
CREDIT_CAP = 32  # §4: the reference server's cap (ServerConfig.credit_window_max)
UNREAD_LIMIT = 64 * 1024  # §4: unread replies before the server cuts a peer
TOKEN = "conformance-secret"


def message(msg_type: int, body: bytes = b"", *, version: int = 2) -> bytes:
    return struct.pack("!2sBBI", b"CS", version, msg_type, len(body)) + body


def hello(
    window: int = 2,
    name: bytes = b"",
    flags: int = 0,
    *,
    stream: bytes = b"",
    max_width: int = 0,
    quality: int = 0,
    max_fps_milli: int = 0,
) -> bytes:
    """HELLO v2: window, flags, max width, quality, max fps x1000, stream name, client name."""
    fixed = struct.pack("!HHHBIB", window, flags, max_width, quality, max_fps_milli, len(stream))
    return message(HELLO, fixed + stream + name)


def credit(credits: int, ack_seq: int = 0) -> bytes:
    return message(CREDIT, struct.pack("!IQ", credits, ack_seq))


def ping(token: int) -> bytes:
    return message(PING, struct.pack("!Q", token))


def goodbye(code: int, reason: bytes = b"") -> bytes:
    return message(GOODBYE, struct.pack("!H", code) + reason)


def auth_digest(token: str, nonce: bytes) -> bytes:
    return hmac.new(token.encode(), b"camstream-auth-v1:" + nonce, hashlib.sha256).digest()


Message = tuple[int, bytes]


class Closed(Exception):
    """The server closed the connection (``reset``: with a TCP RST)."""

    def __init__(self, reset: bool) -> None:
        super().__init__("reset" if reset else "closed")
        self.reset = reset


class Raw:
    """A client socket that sends raw bytes and splits what arrives into (type, body)."""

    def __init__(self, port: int, *, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = b""
        self.connected_at = time.monotonic()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        self.sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(1 << 20)
        except ConnectionResetError:
            raise Closed(reset=True) from None
        if not chunk:
            assert not self.buffer, f"the server closed in the middle of a message: {self.buffer!r}"
            raise Closed(reset=False)
        self.buffer += chunk

    def read(self, timeout_s: float = 5.0) -> Message:
        """The next message; ``TimeoutError`` if none arrives, :class:`Closed` at the end."""
        deadline = time.monotonic() + timeout_s
        while len(self.buffer) < 8:
            self._fill(deadline)
        magic, version, msg_type, length = struct.unpack("!2sBBI", self.buffer[:8])
        assert (magic, version) == (b"CS", 2), f"bad header {self.buffer[:8]!r}"
        while len(self.buffer) < 8 + length:
            self._fill(deadline)
        body, self.buffer = self.buffer[8 : 8 + length], self.buffer[8 + length :]
        return msg_type, body

    def until(self, wanted: int, timeout_s: float = 5.0) -> list[Message]:
        """Every message up to and including the first of type ``wanted``."""
        got: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while not got or got[-1][0] != wanted:
            got.append(self.read(max(0.001, deadline - time.monotonic())))
        return got

    def goodbye(self, timeout_s: float = 5.0) -> tuple[int, str]:
        """Read up to the server's GOODBYE, then its close; return (code, reason)."""
        code, reason = parse_goodbye(self.until(GOODBYE, timeout_s)[-1][1])
        with pytest.raises(Closed):
            self.read(2.0)  # GOODBYE is the last message: nothing but the close follows
        return code, reason

    def all_until_closed(self, timeout_s: float = 5.0) -> tuple[list[Message], bool]:
        """Every message until the server closes; and whether it closed with a reset."""
        got: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                got.append(self.read(max(0.001, deadline - time.monotonic())))
            except Closed as closed:
                return got, closed.reset

    def close(self) -> None:
        self.sock.close()


def parse_goodbye(body: bytes) -> tuple[int, str]:
    return struct.unpack("!H", body[:2])[0], body[2:].decode("utf-8")


def parse_info(body: bytes) -> tuple[int, int, int, int, str]:
    width, height, codec, fps_milli = struct.unpack("!HHBI", body[:9])
    return width, height, codec, fps_milli, body[9:].decode("utf-8")


def parse_frame(body: bytes) -> tuple[int, int, int, int, int, int, bytes]:
    seq, captured_at_ns, width, height, codec, flags = struct.unpack("!QQHHBB", body[:22])
    return seq, captured_at_ns, width, height, codec, flags, body[22:]


def frames_in(messages: list[Message]) -> list[tuple[int, int, int, int, int, int, bytes]]:
    return [parse_frame(body) for kind, body in messages if kind == FRAME]


RawFactory = Callable[..., Raw]


@contextlib.contextmanager
def raw_peers() -> Iterator[RawFactory]:
    """``open(port) -> Raw``; every socket opened through it is closed at the end."""
    opened: list[Raw] = []

    def open_(port: int, **options: Any) -> Raw:
        peer = Raw(port, **options)
        opened.append(peer)
        return peer

    try:
        yield open_
    finally:
        for peer in opened:
            peer.close()


def admitted(raw: RawFactory, server: Server, window: int = 2) -> tuple[Raw, list[Message]]:
    """A peer that sent HELLO(window) and read the admission STREAM_INFO."""
    peer = raw(server.port)
    peer.send(hello(window))
    first = peer.read()
    assert first[0] == STREAM_INFO, first
    return peer, [first]


def native_viewer(server: Server) -> dict[str, Any]:
    (viewer,) = [v for v in server.status()["viewers"] if v["kind"] == "native"]
    return viewer
