"""Conformance, §5-§7 of docs/protocol.md: timeouts, codes, closing, TLS, the shared port.

See ``test_conformance.py``: a real server driven with raw bytes from the spec.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from camstream import Server
from netfaults import FAST, HANDSHAKE_S, HEARTBEAT_TIMEOUT_S, self_signed_cert, wait_until
from rawwire import (
    AUTH_FAILED,
    CHALLENGE,
    FRAME,
    GOODBYE,
    HELLO,
    NORMAL,
    PING,
    PONG,
    PROTOCOL_ERROR,
    SERVER_FULL,
    SHUTTING_DOWN,
    STREAM_INFO,
    TIMEOUT,
    TOKEN,
    RawFactory,
    admitted,
    credit,
    frames_in,
    goodbye,
    hello,
    message,
    parse_goodbye,
    ping,
    raw_peers,
)


@pytest.fixture
def raw() -> Iterator[RawFactory]:
    with raw_peers() as open_:
        yield open_


@pytest.fixture
def server(running_server: Callable[..., Server]) -> Server:
    return running_server("test", **FAST)


# -- §5 heartbeats, timeouts and codes ------------------------------------------------


def test_s5_ping_is_answered_with_the_same_token(raw: RawFactory, server: Server) -> None:
    peer, _ = admitted(raw, server)
    peer.send(ping(2**64 - 1))
    assert peer.until(PONG)[-1] == (PONG, struct.pack("!Q", 2**64 - 1))


def test_s5_server_pings_after_admission(raw: RawFactory, server: Server) -> None:
    peer, _ = admitted(raw, server)
    _, body = peer.until(PING, timeout_s=3 * FAST["heartbeat_interval_s"] + 1)[-1]
    assert len(body) == 8


def test_s5_silent_connection_is_closed_without_a_message(raw: RawFactory, server: Server) -> None:
    peer = raw(server.port)
    messages, _ = peer.all_until_closed(HANDSHAKE_S + 3)
    assert messages == []  # no protocol is known yet, so no GOODBYE either
    assert time.monotonic() - peer.connected_at >= HANDSHAKE_S * 0.9


def test_s5_unfinished_handshake_gets_timeout(raw: RawFactory, server: Server) -> None:
    peer = raw(server.port)
    peer.send(hello()[:5])  # "CS", then nothing: a native client that stalls
    code, reason = peer.goodbye(HANDSHAKE_S + 3)
    assert code == TIMEOUT and "handshake" in reason
    assert time.monotonic() - peer.connected_at >= HANDSHAKE_S * 0.9


def test_s5_no_auth_on_a_token_server_gets_auth_failed(
    raw: RawFactory, running_server: Callable[..., Server]
) -> None:
    server = running_server("test", token=TOKEN, **FAST)
    peer = raw(server.port)
    peer.send(hello())  # a client without a token cannot answer the CHALLENGE
    assert peer.read()[0] == CHALLENGE
    code, reason = peer.goodbye(HANDSHAKE_S + 3)
    assert code == AUTH_FAILED and "authentication required" in reason


def test_s5_silent_viewer_gets_timeout(raw: RawFactory, server: Server) -> None:
    peer, _ = admitted(raw, server)  # HELLO is the last byte the server hears
    code, reason = peer.goodbye(HEARTBEAT_TIMEOUT_S + 3)
    assert code == TIMEOUT and "heartbeat" in reason
    assert time.monotonic() - peer.connected_at >= HEARTBEAT_TIMEOUT_S


def test_s5_server_full(raw: RawFactory, running_server: Callable[..., Server]) -> None:
    server = running_server("test", max_viewers=1, **FAST)
    admitted(raw, server)
    peer = raw(server.port)
    peer.send(hello())
    assert peer.goodbye()[0] == SERVER_FULL


def test_s5_shutting_down(raw: RawFactory) -> None:
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
        pytest.param(message(PING, bytes(8), version=1), id="wrong-version"),
        pytest.param(message(10, b""), id="unknown-type"),
        pytest.param(struct.pack("!2sBBI", b"CS", 2, GOODBYE, 1003), id="oversized"),
        pytest.param(b"XX\x02\x07", id="bad-magic"),
    ],
)
def test_s5_bad_headers_get_protocol_error(raw: RawFactory, server: Server, bad: bytes) -> None:
    peer, _ = admitted(raw, server)
    peer.send(bad)
    assert peer.goodbye()[0] == PROTOCOL_ERROR


def test_s5_first_message_with_a_wrong_version(raw: RawFactory, server: Server) -> None:
    peer = raw(server.port)
    peer.send(message(HELLO, struct.pack("!HH", 2, 0), version=1))  # a camstream 0.1 client
    code, reason = peer.goodbye()
    assert code == PROTOCOL_ERROR and "version 2" in reason and "version 1" in reason


# -- §3/§5 closing --------------------------------------------------------------------


def test_s5_client_goodbye_is_answered_by_a_close_not_a_goodbye(
    raw: RawFactory, server: Server
) -> None:
    peer, _ = admitted(raw, server, window=8)
    peer.until(FRAME)
    peer.send(goodbye(NORMAL, b"bye"))
    messages, reset = peer.all_until_closed()
    assert not reset
    # Frames already on the wire may still arrive; a GOODBYE does not.
    assert {kind for kind, _ in messages} <= {FRAME, STREAM_INFO, PING, PONG}


def test_s5_goodbye_as_first_message(raw: RawFactory, server: Server) -> None:
    peer = raw(server.port)
    peer.send(goodbye(NORMAL))
    assert peer.all_until_closed() == ([], False)


# -- §7 sharing the port with HTTP, and TLS ------------------------------------------


def test_s7_anything_but_cs_is_http(raw: RawFactory, server: Server) -> None:
    peer = raw(server.port)
    peer.send(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    peer.sock.settimeout(5)
    assert peer.sock.recv(12).startswith(b"HTTP/1.")


@pytest.fixture
def tls_server(running_server: Callable[..., Server], tmp_path: Path) -> Server:
    cert, key = self_signed_cert(tmp_path)
    return running_server("test", tls_cert=cert, tls_key=key, **FAST)


def test_s7_camstreams_is_the_whole_protocol_inside_tls(
    raw: RawFactory, tls_server: Server
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
    raw: RawFactory, tls_server: Server
) -> None:
    peer = raw(tls_server.port)
    peer.send(hello())
    code, reason = peer.goodbye()
    assert code == PROTOCOL_ERROR and "requires TLS" in reason and "camstreams://" in reason


def test_s7_plaintext_http_on_a_tls_port_gets_a_400(raw: RawFactory, tls_server: Server) -> None:
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
    raw: RawFactory, tls_server: Server
) -> None:
    peer = raw(tls_server.port)
    assert peer.all_until_closed(HANDSHAKE_S + 3)[0] == []


def test_s5_goodbye_then_reset_is_handled_quietly(raw: RawFactory, server: Server) -> None:
    # A client that says GOODBYE and resets at once (a killed viewer): the server's
    # half-close then meets a dead socket (ENOTCONN). That is the peer's doing, not
    # an internal error: no ERROR log (tests/strictness.py fails the test on one).
    for _ in range(30):
        peer, _ = admitted(raw, server)
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.send(goodbye(NORMAL))
        peer.close()
    wait_until(lambda: server.status()["viewer_count"] == 0, 5, "every viewer to leave")


def test_s7_tls_on_a_plaintext_port_gets_an_http_400(raw: RawFactory, server: Server) -> None:
    # A TLS ClientHello starts with 0x16, not "CS": the HTTP side answers it.
    peer = raw(server.port)
    peer.send(bytes.fromhex("16 03 01 00 05") + b"hello")
    peer.sock.settimeout(5)
    assert peer.sock.recv(64).split(b"\r\n")[0] == b"HTTP/1.0 400 Bad Request"
