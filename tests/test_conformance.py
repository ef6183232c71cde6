"""Conformance: a real server driven with raw bytes built from docs/protocol.md alone.

Nothing here imports camstream's protocol code: messages are packed and parsed
with :mod:`struct` from the tables of the spec, as an independent client would,
so the spec and the server cannot drift apart unnoticed. Every test names the
section it checks (§N). Servers run on 127.0.0.1 with an ephemeral port, with the
fast timeouts of ``netfaults.FAST``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from camstream import Server
from netfaults import FAST, HANDSHAKE_S, HEARTBEAT_TIMEOUT_S, self_signed_cert, wait_until

# -- the wire format, from docs/protocol.md §1-§2 -------------------------------

HELLO, CHALLENGE, AUTH, STREAM_INFO, FRAME, CREDIT, PING, PONG, GOODBYE = range(1, 10)
NORMAL, END_OF_STREAM, PROTOCOL_ERROR, AUTH_FAILED, SERVER_FULL, SHUTTING_DOWN, TIMEOUT = range(7)
MAX_PAYLOAD = 32 * 1024 * 1024  # §1: fixed in v1
CREDIT_CAP = 8  # §4: the reference server's cap (credit_window_max)
UNREAD_LIMIT = 64 * 1024  # §4: unread replies before the server cuts a peer
TOKEN = "conformance-secret"


def message(msg_type: int, body: bytes = b"", *, version: int = 1) -> bytes:
    return struct.pack("!2sBBI", b"CS", version, msg_type, len(body)) + body


def hello(window: int = 2, name: bytes = b"", flags: int = 0) -> bytes:
    return message(HELLO, struct.pack("!HH", window, flags) + name)


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
        assert (magic, version) == (b"CS", 1), f"bad header {self.buffer[:8]!r}"
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


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture
def raw() -> Iterator[Callable[..., Raw]]:
    """Factory: ``raw(port) -> Raw``; every socket is closed after the test."""
    opened: list[Raw] = []

    def open_(port: int, **options: Any) -> Raw:
        peer = Raw(port, **options)
        opened.append(peer)
        return peer

    yield open_
    for peer in opened:
        peer.close()


@pytest.fixture
def server(running_server: Callable[..., Server]) -> Server:
    return running_server("test", **FAST)


def admitted(raw: Callable[..., Raw], server: Server, window: int = 2) -> tuple[Raw, list[Message]]:
    peer = raw(server.port)
    peer.send(hello(window))
    first = peer.read()
    assert first[0] == STREAM_INFO, first
    return peer, [first]


def native_viewer(server: Server) -> dict[str, Any]:
    (viewer,) = [v for v in server.status()["viewers"] if v["kind"] == "native"]
    return viewer


# -- §1 framing -----------------------------------------------------------------------


def test_s1_example_hello_bytes_are_accepted(raw: Callable[..., Raw], server: Server) -> None:
    peer = raw(server.port)
    peer.send(bytes.fromhex("43 53 01 01 00 00 00 04 00 02 00 00"))
    assert peer.read()[0] == STREAM_INFO


def test_s1_declared_length_is_checked_before_the_body_arrives(
    raw: Callable[..., Raw], server: Server
) -> None:
    peer = raw(server.port)
    peer.send(struct.pack("!2sBBI", b"CS", 1, HELLO, 205))  # max HELLO body is 204; no body
    code, reason = peer.goodbye()
    assert code == PROTOCOL_ERROR and "205" in reason


@pytest.mark.parametrize(
    ("length", "body"), [(3, b"\x00\x02\x00"), (4 + 201, b"\x00\x02\x00\x00" + b"n" * 201)]
)
def test_s1_hello_length_outside_its_bounds(
    raw: Callable[..., Raw], server: Server, length: int, body: bytes
) -> None:
    peer = raw(server.port)
    peer.send(struct.pack("!2sBBI", b"CS", 1, HELLO, length) + body)
    assert peer.goodbye()[0] == PROTOCOL_ERROR


def test_s1_frame_payload_limit_is_fixed_and_not_carried_by_any_message(
    raw: Callable[..., Raw], server: Server
) -> None:
    # §1: v1 fixes the limit at 32 MiB; no body field carries it. HELLO is 4 bytes + name.
    peer, messages = admitted(raw, server)
    assert len(messages[0][1]) == 9 + len(b"camstream")  # STREAM_INFO: no size field either
    _, body = peer.until(FRAME)[-1]
    assert 23 <= len(body) <= 22 + MAX_PAYLOAD


# -- §2 bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(hello(0), id="credit-window-0"),
        pytest.param(hello(2, b"\xff\xfe"), id="invalid-utf8-name"),
    ],
)
def test_s2_malformed_hello_is_a_protocol_error(
    raw: Callable[..., Raw], server: Server, bad: bytes
) -> None:
    peer = raw(server.port)
    peer.send(bad)
    assert peer.goodbye()[0] == PROTOCOL_ERROR


def test_s2_reserved_hello_flags_are_ignored(raw: Callable[..., Raw], server: Server) -> None:
    peer = raw(server.port)
    peer.send(hello(2, b"x", flags=0xFFFF))
    assert peer.read()[0] == STREAM_INFO


def test_s2_frame_fields(raw: Callable[..., Raw], server: Server) -> None:
    peer, messages = admitted(raw, server)
    messages += peer.until(FRAME)
    infos = [parse_info(body) for kind, body in messages if kind == STREAM_INFO]
    seq, captured_at_ns, width, height, codec, flags, payload = frames_in(messages)[0]
    assert (width, height, codec) == (infos[-1][0], infos[-1][1], 1) == (160, 120, 1)
    assert infos[-1][2] == 1 and infos[-1][4] == "camstream"  # codec JPEG; server_name
    assert flags & 0xFE == 0  # reserved bits are sent as 0
    assert payload[:2] == b"\xff\xd8"  # a JPEG, never empty (§2 FRAME)
    assert abs(captured_at_ns - time.time_ns()) < 10 * 10**9  # wall clock, ns since the epoch
    assert seq >= 0


# -- §3 message order ----------------------------------------------------------------


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(credit(1), id="CREDIT"),
        pytest.param(ping(1), id="PING"),
        pytest.param(message(AUTH, bytes(32)), id="AUTH"),
        pytest.param(message(PONG, bytes(8)), id="PONG"),
    ],
)
def test_s3_only_hello_or_goodbye_may_come_first(
    raw: Callable[..., Raw], server: Server, first: bytes
) -> None:
    peer = raw(server.port)
    peer.send(first)
    assert peer.goodbye()[0] == PROTOCOL_ERROR


@pytest.mark.parametrize(
    "second",
    [
        pytest.param(hello(), id="second-HELLO"),
        pytest.param(message(AUTH, bytes(32)), id="AUTH-without-CHALLENGE"),
        pytest.param(message(FRAME, bytes(23)), id="FRAME-from-client"),
        pytest.param(message(STREAM_INFO, bytes(9)), id="STREAM_INFO-from-client"),
        pytest.param(message(CHALLENGE, bytes(32)), id="CHALLENGE-from-client"),
    ],
)
def test_s3_out_of_order_after_admission(
    raw: Callable[..., Raw], server: Server, second: bytes
) -> None:
    peer, _ = admitted(raw, server)
    peer.send(second)
    code, reason = peer.goodbye()
    assert code == PROTOCOL_ERROR and "unexpected" in reason


def test_s3_hello_and_credit_may_be_pipelined_in_one_chunk(
    raw: Callable[..., Raw], server: Server
) -> None:
    peer = raw(server.port)
    peer.send(hello(1) + credit(2) + ping(77))  # one chunk: 3 credits in all
    got = peer.until(PONG)
    assert got[0][0] == STREAM_INFO and got[-1] == (PONG, struct.pack("!Q", 77))
    frames = frames_in(got + peer.until(FRAME) + peer.until(FRAME) + peer.until(FRAME))
    assert len(frames) >= 3


def test_s3_credit_while_authenticating_is_allowed(
    raw: Callable[..., Raw], running_server: Callable[..., Server]
) -> None:
    server = running_server("test", token=TOKEN, **FAST)
    peer = raw(server.port)
    peer.send(hello(1) + credit(1))
    kind, nonce = peer.read()
    assert kind == CHALLENGE and len(nonce) == 32
    peer.send(ping(5))  # PING is allowed while authenticating too
    assert peer.read() == (PONG, struct.pack("!Q", 5))
    peer.send(message(AUTH, auth_digest(TOKEN, nonce)))
    got = peer.until(FRAME)
    got += peer.until(FRAME)  # HELLO's 1 credit plus CREDIT's 1
    assert got[0][0] == STREAM_INFO and len(frames_in(got)) == 2


def test_s3_wrong_auth_gets_auth_failed(
    raw: Callable[..., Raw], running_server: Callable[..., Server]
) -> None:
    server = running_server("test", token=TOKEN, **FAST)
    peer = raw(server.port)
    peer.send(hello())
    _, nonce = peer.read()
    peer.send(message(AUTH, auth_digest("wrong", nonce)))
    assert peer.goodbye()[0] == AUTH_FAILED


def test_s3_anything_but_auth_after_a_challenge_is_an_error(
    raw: Callable[..., Raw], running_server: Callable[..., Server]
) -> None:
    server = running_server("test", token=TOKEN, **FAST)
    peer = raw(server.port)
    peer.send(hello())
    assert peer.read()[0] == CHALLENGE
    peer.send(hello())
    assert peer.goodbye()[0] == PROTOCOL_ERROR


def test_s3_stream_info_is_resent_when_the_size_becomes_known(
    raw: Callable[..., Raw], server: Server
) -> None:
    # An idle on-demand server has no frame yet: its admission STREAM_INFO says 0x0,
    # and the size arrives in a second STREAM_INFO before the first FRAME.
    peer, messages = admitted(raw, server)
    assert parse_info(messages[0][1])[:2] == (0, 0)
    messages += peer.until(FRAME)
    kinds = [kind for kind, _ in messages]
    assert kinds.count(STREAM_INFO) == 2
    resent = parse_info(messages[kinds.index(STREAM_INFO, 1)][1])
    first = parse_info(messages[0][1])
    assert resent[:2] == (160, 120)
    assert resent[2:] == first[2:]  # codec, fps and name repeat the admission's


def test_s3_stream_info_is_not_resent_while_the_size_stays(
    raw: Callable[..., Raw], server: Server
) -> None:
    peer, messages = admitted(raw, server, window=4)
    for _ in range(6):
        messages += peer.until(FRAME)
        peer.send(credit(1))
    assert [kind for kind, _ in messages].count(STREAM_INFO) == 2  # 0x0, then 160x120


# -- §3 errors and truncation ---------------------------------------------------------


def test_s3_truncated_message_at_half_close_gets_protocol_error(
    raw: Callable[..., Raw], server: Server
) -> None:
    peer, _ = admitted(raw, server)
    peer.send(ping(1)[:11])  # 11 of 16 bytes, then FIN
    peer.sock.shutdown(socket.SHUT_WR)
    messages, reset = peer.all_until_closed()
    assert not reset
    code, reason = parse_goodbye(messages[-1][1])
    assert messages[-1][0] == GOODBYE and code == PROTOCOL_ERROR
    assert "middle of a message" in reason


def test_s3_nothing_is_parsed_after_a_protocol_error(
    raw: Callable[..., Raw], server: Server
) -> None:
    peer, _ = admitted(raw, server)
    peer.send(message(CREDIT, bytes(3)) + ping(9))  # bad CREDIT length, then a valid PING
    messages, _ = peer.all_until_closed()
    assert (PONG, struct.pack("!Q", 9)) not in messages
    assert messages[-1][0] == GOODBYE and parse_goodbye(messages[-1][1])[0] == PROTOCOL_ERROR


# -- §4 credits -----------------------------------------------------------------------


def test_s4_hello_window_is_capped(raw: Callable[..., Raw], server: Server) -> None:
    peer, _ = admitted(raw, server, window=65535)
    got: list[Message] = []
    for _ in range(CREDIT_CAP):
        got += peer.until(FRAME)
    sent = frames_in(got)[-1][0]
    # State, not silence: the server has newer frames but sent none of them.
    wait_until(lambda: server.status()["latest_seq"] >= sent + 5, 5, "newer frames")
    viewer = native_viewer(server)
    assert (viewer["frames_sent"], viewer["last_seq"]) == (CREDIT_CAP, sent)
    peer.send(ping(1))
    assert not frames_in(peer.until(PONG))  # and none was in flight either


@pytest.mark.parametrize("grant", [CREDIT_CAP + 1, 2**32 - 1])
def test_s4_huge_credit_is_capped(raw: Callable[..., Raw], server: Server, grant: int) -> None:
    peer, messages = admitted(raw, server, window=1)
    messages += peer.until(FRAME)
    peer.send(credit(grant, frames_in(messages)[-1][0]))
    for _ in range(CREDIT_CAP):
        messages += peer.until(FRAME)
    sent = frames_in(messages)[-1][0]
    wait_until(lambda: server.status()["latest_seq"] >= sent + 5, 5, "newer frames")
    assert native_viewer(server)["frames_sent"] == 1 + CREDIT_CAP


def test_s4_credit_zero_is_a_no_op(raw: Callable[..., Raw], server: Server) -> None:
    peer, messages = admitted(raw, server, window=1)
    messages += peer.until(FRAME)
    peer.send(credit(0) + ping(3))
    assert not frames_in(peer.until(PONG))
    sent = frames_in(messages)[-1][0]
    wait_until(lambda: server.status()["latest_seq"] >= sent + 5, 5, "newer frames")
    assert native_viewer(server)["frames_sent"] == 1


def test_s4_latest_frame_wins_and_seq_has_gaps(raw: Callable[..., Raw], server: Server) -> None:
    peer, _ = admitted(raw, server, window=1)
    first = frames_in(peer.until(FRAME))[0][0]
    wait_until(lambda: server.status()["latest_seq"] >= first + 4, 5, "newer frames")
    newest = server.status()["latest_seq"]
    peer.send(credit(1, first))
    second = frames_in(peer.until(FRAME))[0][0]
    assert second >= newest > first + 1  # the older ones were skipped, not queued


def test_s2_seq_does_not_restart_with_a_connection_or_capture(
    raw: Callable[..., Raw], running_server: Callable[..., Server]
) -> None:
    # §2 FRAME seq: counted per server process, never reset, so a client's first
    # frame may carry any number; not even an on-demand capture restart resets it.
    server = running_server("test", capture_linger_s=0, **FAST)
    peer, _ = admitted(raw, server)
    first = frames_in(peer.until(FRAME))[0][0]
    wait_until(lambda: server.status()["latest_seq"] >= first + 3, 5, "more frames")
    latest = server.status()["latest_seq"]
    peer.close()
    wait_until(lambda: not server.status()["capturing"], 5, "capture to stop")
    again, _ = admitted(raw, server)
    assert frames_in(again.until(FRAME))[0][0] >= latest > first


def test_s4_a_peer_that_never_reads_is_reset_after_64k_of_replies(
    running_server: Callable[..., Server],
) -> None:
    # §4: PONGs pile up behind a peer that never reads; once they exceed 64 KiB
    # beyond the socket buffers the server resets the connection, without a GOODBYE.
    server = running_server("test", **{**FAST, "heartbeat_timeout_s": 30})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    try:
        sock.sendall(hello(1))
        burst = ping(1) * 4096  # 64 KiB of PINGs → 64 KiB of PONGs
        sent, reset = 0, False
        deadline = time.monotonic() + 30
        while not reset and time.monotonic() < deadline and sent < 64 * 1024 * 1024:
            try:
                sock.settimeout(1)
                sock.sendall(burst)
                sent += len(burst)
            except (ConnectionResetError, BrokenPipeError):
                reset = True
            except TimeoutError:  # the server stopped reading: it is closing us
                pass
        assert reset, f"still connected after {sent} bytes of unread PINGs"
        assert sent > UNREAD_LIMIT  # not cut before the limit
        wait_until(lambda: server.status()["viewer_count"] == 0, 5, "the viewer to leave")
    finally:
        sock.close()


# -- §5 heartbeats, timeouts and codes ------------------------------------------------


def test_s5_ping_is_answered_with_the_same_token(raw: Callable[..., Raw], server: Server) -> None:
    peer, _ = admitted(raw, server)
    peer.send(ping(2**64 - 1))
    assert peer.until(PONG)[-1] == (PONG, struct.pack("!Q", 2**64 - 1))


def test_s5_server_pings_after_admission(raw: Callable[..., Raw], server: Server) -> None:
    peer, _ = admitted(raw, server)
    _, body = peer.until(PING, timeout_s=3 * FAST["heartbeat_interval_s"] + 1)[-1]
    assert len(body) == 8


def test_s5_silent_connection_is_closed_without_a_message(
    raw: Callable[..., Raw], server: Server
) -> None:
    peer = raw(server.port)
    messages, _ = peer.all_until_closed(HANDSHAKE_S + 3)
    assert messages == []  # no protocol is known yet, so no GOODBYE either
    assert time.monotonic() - peer.connected_at >= HANDSHAKE_S * 0.9


def test_s5_unfinished_handshake_gets_timeout(raw: Callable[..., Raw], server: Server) -> None:
    peer = raw(server.port)
    peer.send(hello()[:5])  # "CS", then nothing: a native client that stalls
    code, reason = peer.goodbye(HANDSHAKE_S + 3)
    assert code == TIMEOUT and "handshake" in reason
    assert time.monotonic() - peer.connected_at >= HANDSHAKE_S * 0.9


def test_s5_no_auth_on_a_token_server_gets_auth_failed(
    raw: Callable[..., Raw], running_server: Callable[..., Server]
) -> None:
    server = running_server("test", token=TOKEN, **FAST)
    peer = raw(server.port)
    peer.send(hello())  # a client without a token cannot answer the CHALLENGE
    assert peer.read()[0] == CHALLENGE
    code, reason = peer.goodbye(HANDSHAKE_S + 3)
    assert code == AUTH_FAILED and "authentication required" in reason


def test_s5_silent_viewer_gets_timeout(raw: Callable[..., Raw], server: Server) -> None:
    peer, _ = admitted(raw, server)  # HELLO is the last byte the server hears
    code, reason = peer.goodbye(HEARTBEAT_TIMEOUT_S + 3)
    assert code == TIMEOUT and "heartbeat" in reason
    assert time.monotonic() - peer.connected_at >= HEARTBEAT_TIMEOUT_S


def test_s5_server_full(raw: Callable[..., Raw], running_server: Callable[..., Server]) -> None:
    server = running_server("test", max_viewers=1, **FAST)
    admitted(raw, server)
    peer = raw(server.port)
    peer.send(hello())
    assert peer.goodbye()[0] == SERVER_FULL


def test_s5_shutting_down(raw: Callable[..., Raw]) -> None:
    with Server("test", host="127.0.0.1", port=0, **FAST) as server:
        peer, _ = admitted(raw, server)
        peer.until(FRAME)
        peer.send(credit(1))
        peer.send(ping(1))
        peer.until(PONG)
    messages, _ = peer.all_until_closed()
    assert messages[-1][0] == GOODBYE and parse_goodbye(messages[-1][1])[0] == SHUTTING_DOWN


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(message(PING, bytes(8), version=2), id="wrong-version"),
        pytest.param(message(10, b""), id="unknown-type"),
        pytest.param(struct.pack("!2sBBI", b"CS", 1, GOODBYE, 1003), id="oversized"),
        pytest.param(b"XX\x01\x07", id="bad-magic"),
    ],
)
def test_s5_bad_headers_get_protocol_error(
    raw: Callable[..., Raw], server: Server, bad: bytes
) -> None:
    peer, _ = admitted(raw, server)
    peer.send(bad)
    assert peer.goodbye()[0] == PROTOCOL_ERROR


def test_s5_first_message_with_a_wrong_version(raw: Callable[..., Raw], server: Server) -> None:
    peer = raw(server.port)
    peer.send(message(HELLO, struct.pack("!HH", 2, 0), version=2))
    code, reason = peer.goodbye()
    assert code == PROTOCOL_ERROR and "version 2" in reason and "version 1" in reason


# -- §3/§5 closing --------------------------------------------------------------------


def test_s5_client_goodbye_is_answered_by_a_close_not_a_goodbye(
    raw: Callable[..., Raw], server: Server
) -> None:
    peer, _ = admitted(raw, server, window=8)
    peer.until(FRAME)
    peer.send(goodbye(NORMAL, b"bye"))
    messages, reset = peer.all_until_closed()
    assert not reset
    # Frames already on the wire may still arrive; a GOODBYE does not.
    assert {kind for kind, _ in messages} <= {FRAME, STREAM_INFO, PING, PONG}


def test_s5_goodbye_as_first_message(raw: Callable[..., Raw], server: Server) -> None:
    peer = raw(server.port)
    peer.send(goodbye(NORMAL))
    assert peer.all_until_closed() == ([], False)


# -- §7 sharing the port with HTTP, and TLS ------------------------------------------


def test_s7_anything_but_cs_is_http(raw: Callable[..., Raw], server: Server) -> None:
    peer = raw(server.port)
    peer.send(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    peer.sock.settimeout(5)
    assert peer.sock.recv(12).startswith(b"HTTP/1.")


@pytest.fixture
def tls_server(running_server: Callable[..., Server], tmp_path: Path) -> Server:
    cert, key = self_signed_cert(tmp_path)
    return running_server("test", tls_cert=cert, tls_key=key, **FAST)


def test_s7_camstreams_is_the_whole_protocol_inside_tls(
    raw: Callable[..., Raw], tls_server: Server
) -> None:
    assert tls_server.url.startswith("camstreams://")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    plain = socket.create_connection(("127.0.0.1", tls_server.port), timeout=5)
    peer = raw(tls_server.port, sock=context.wrap_socket(plain))
    peer.send(hello())
    assert peer.read()[0] == STREAM_INFO
    assert frames_in(peer.until(FRAME))


def test_s7_plaintext_camstream_on_a_tls_port_gets_a_plaintext_goodbye(
    raw: Callable[..., Raw], tls_server: Server
) -> None:
    peer = raw(tls_server.port)
    peer.send(hello())
    code, reason = peer.goodbye()
    assert code == PROTOCOL_ERROR and "requires TLS" in reason and "camstreams://" in reason


def test_s7_plaintext_http_on_a_tls_port_gets_a_400(
    raw: Callable[..., Raw], tls_server: Server
) -> None:
    peer = raw(tls_server.port)
    peer.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    peer.sock.settimeout(5)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := peer.sock.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b"https://" in data


def test_s7_silent_tls_port_connection_is_closed_without_a_message(
    raw: Callable[..., Raw], tls_server: Server
) -> None:
    peer = raw(tls_server.port)
    assert peer.all_until_closed(HANDSHAKE_S + 3)[0] == []


def test_s5_goodbye_then_reset_is_handled_quietly(raw: Callable[..., Raw], server: Server) -> None:
    # A client that says GOODBYE and resets at once (a killed viewer): the server's
    # half-close then meets a dead socket (ENOTCONN). That is the peer's doing, not
    # an internal error: no ERROR log (tests/strictness.py fails the test on one).
    for _ in range(30):
        peer, _ = admitted(raw, server)
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.send(goodbye(NORMAL))
        peer.close()
    wait_until(lambda: server.status()["viewer_count"] == 0, 5, "every viewer to leave")


def test_s7_tls_on_a_plaintext_port_gets_an_http_400(
    raw: Callable[..., Raw], server: Server
) -> None:
    # A TLS ClientHello starts with 0x16, not "CS": the HTTP side answers it.
    peer = raw(server.port)
    peer.send(bytes.fromhex("16 03 01 00 05") + b"hello")
    peer.sock.settimeout(5)
    assert peer.sock.recv(64).split(b"\r\n")[0] == b"HTTP/1.0 400 Bad Request"
