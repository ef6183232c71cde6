"""Peers that hold connections cannot lock viewers out: per-address limits, slots
for peers with the token, Connection: close, write deadlines, pipelining bound.

Many peers come from different loopback addresses (127.0.0.2, 127.0.0.3, ...),
as many attackers would: Linux routes all of 127.0.0.0/8 to lo.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import pytest

from camstream.client.threaded import Client
from camstream.config import ServerConfig
from conftest import MjpegReader
from netfaults import wait_until

if TYPE_CHECKING:
    from camstream.server.server import Server

TOKEN = "s3cret-Token_42"
SLACK_S = 3.0  # scheduling slack on a busy, shared 2-core machine


def connect(port: int, source: str = "127.0.0.1", *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def closed_within(sock: socket.socket, timeout_s: float) -> bool:
    """Does the server close ``sock`` within ``timeout_s``? Reads (and drops) what it sends."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(1 << 20):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


# -- 2. connection limits ---------------------------------------------------------------


def test_one_address_holds_at_most_its_share(
    running_server: Callable[..., Server], sockets: list[socket.socket]
) -> None:
    server = running_server("test", width=160, height=120, fps=10, handshake_timeout_s=30.0)
    share = ServerConfig().max_connections_per_address
    assert share == 32  # the documented default
    sockets += [connect(server.port, "127.0.0.2") for _ in range(share)]
    wait_until(lambda: server.connection_count == share, 5, f"{share} held connections")
    with connect(server.port, "127.0.0.2") as one_more:
        assert closed_within(one_more, 5)  # closed at once, without a word
    assert server.connection_count == share
    # Another address is not affected.
    with Client(server.url, reconnect=False) as client:
        client.read_frame(timeout_s=10)


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        ("GET /healthz", b"200"),
        ("GET /app.js", b"200"),
        ("GET /", b"200"),
        ("GET /status", b"401"),
        ("GET /snapshot.jpg?token=wrong", b"401"),
        ("GET /nope", b"404"),
    ],
)
def test_untrusted_answers_close_the_connection(
    running_server: Callable[..., Server], request_line: str, status: bytes
) -> None:
    server = running_server("test", width=160, height=120, fps=10, token=TOKEN)
    with connect(server.port) as sock:
        sock.sendall(f"{request_line} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        assert answer.split(b" ")[1] == status
        assert b"\r\nConnection: close\r\n" in answer.partition(b"\r\n\r\n")[0] + b"\r\n"
        assert closed_within(sock, 5)


def test_a_request_with_the_token_keeps_its_connection(
    running_server: Callable[..., Server],
) -> None:
    server = running_server("test", width=160, height=120, fps=10, token=TOKEN)
    with connect(server.port) as sock:
        for _ in range(3):  # three requests on one connection
            sock.sendall(
                f"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                "\r\n".encode()
            )
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += sock.recv(65536)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" not in head
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += sock.recv(65536)


def test_idle_pollers_cannot_keep_a_viewer_with_the_token_out(
    running_server: Callable[..., Server],
    monkeypatch: pytest.MonkeyPatch,
    sockets: list[socket.socket],
) -> None:
    monkeypatch.setattr("camstream.server.server.max_connections_for", lambda _viewers: 40)
    server = running_server(
        "test", width=160, height=120, fps=10, token=TOKEN, handshake_timeout_s=60.0
    )
    port = server.port
    # Pollers: each /healthz is answered, and its connection closed, not kept alive.
    for i in range(12):
        with connect(port, f"127.0.0.{10 + i % 6}") as poller:
            poller.sendall(
                b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
            )
            assert closed_within(poller, 10)
    # Between polls, a poller is a connection that says nothing: 48 of them,
    # from 8 addresses (6 each, under the per-address limit).
    sockets += [connect(port, f"127.0.0.{10 + i % 8}") for i in range(48)]
    # They fill the untrusted share (30 of 40 slots); the older ones gave way.
    wait_until(lambda: server.connection_count == 30, 10, "the untrusted share held")
    # A native viewer and an HTTP client with the token still get in.
    with Client(server.url, reconnect=False, token=TOKEN, connect_timeout_s=10) as client:
        client.read_frame(timeout_s=10)
        with connect(port) as http:
            http.sendall(
                f"GET /snapshot.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}"
                "\r\nConnection: close\r\n\r\n".encode()
            )
            parts: list[bytes] = []
            read_until_closed(http, parts)
            answer = b"".join(parts)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
        client.read_frame(timeout_s=10)  # and the viewer is still served
    assert server.connection_count <= 40


def read_until_closed(sock: socket.socket, parts: list[bytes], timeout_s: float = 10) -> None:
    """Read until the server closes; the bytes go into ``parts``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            return
        parts.append(chunk)
    raise AssertionError("the server did not close the connection")


# -- 3. write deadlines and pipelining ---------------------------------------------------

NOISE = np.random.default_rng(7).integers(0, 256, (480, 640, 3), np.uint8)  # ~400 KB as JPEG


def noise_frames() -> Iterator[np.ndarray]:
    while True:
        yield NOISE


def test_mjpeg_readers_that_never_read_lose_their_slots(
    running_server: Callable[..., Server], sockets: list[socket.socket]
) -> None:
    server = running_server(noise_frames(), fps=10, max_viewers=64, write_timeout_s=1.0)
    port = server.port
    for i in range(64):
        sock = connect(port, f"127.0.0.{20 + i % 4}", rcvbuf=4096)
        sock.sendall(b"GET /stream.mjpg HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        sockets.append(sock)
    wait_until(lambda: server.status()["viewer_count"] == 64, 15, "64 MJPEG viewers")
    # They never read: within the write deadline (1 s) plus slack, every one is cut.
    wait_until(lambda: server.status()["viewer_count"] == 0, 1.0 + 3 * SLACK_S, "slots freed")
    reader = MjpegReader(port)
    try:
        assert reader.status == 200
        _, body = reader.read_part()
        assert body.startswith(b"\xff\xd8")
    finally:
        reader.close()


def test_pipelined_static_requests_never_read_are_cut(
    running_server: Callable[..., Server], sockets: list[socket.socket]
) -> None:
    server = running_server("test", width=160, height=120, fps=10, write_timeout_s=1.0)
    sock = connect(server.port, rcvbuf=4096)
    sockets.append(sock)
    with contextlib.suppress(OSError):
        sock.sendall(b"GET /app.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 300)
    wait_until(lambda: server.connection_count == 0, 1.0 + SLACK_S, "the connection cut")


def test_a_stalled_response_is_cut_at_the_write_deadline(
    running_server: Callable[..., Server], sockets: list[socket.socket]
) -> None:
    """Trusted keep-alive requests (snapshots) that are never read: the write deadline."""
    server = running_server(noise_frames(), fps=10, write_timeout_s=1.0)
    sock = connect(server.port, rcvbuf=4096)
    sockets.append(sock)
    sock.sendall(b"GET /snapshot.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 8)  # under the bound
    wait_until(lambda: server.connection_count == 1, 5, "the connection open")
    time.sleep(0.5)
    wait_until(lambda: server.connection_count == 0, 1.0 + SLACK_S, "the connection cut")


def test_too_many_pipelined_requests_cut_the_connection_at_once(
    running_server: Callable[..., Server], sockets: list[socket.socket]
) -> None:
    # A write deadline far away: only the pipelining bound can cut it in time.
    server = running_server("test", width=160, height=120, fps=10, write_timeout_s=60.0)
    sock = connect(server.port, rcvbuf=4096)
    sockets.append(sock)
    with contextlib.suppress(OSError):
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 300)
    wait_until(lambda: server.connection_count == 0, 2 * SLACK_S, "the connection cut")
    # Cut before any of them was answered: not one response was queued for it.
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    assert received == b""


# -- 2. the admission decision, pure -----------------------------------------------------


def test_admission_decisions() -> None:
    from camstream.server.transports.admission import Decision, Limits, decide

    limits = Limits(max_connections=8, max_per_address=3, untrusted_share=0.75)

    def run(from_address: int, total: int, untrusted: int, evictable: int) -> Decision:
        return decide(
            limits, from_address=from_address, total=total, untrusted=untrusted, evictable=evictable
        )

    assert run(0, 0, 0, 0) is Decision.ACCEPT
    assert run(3, 3, 3, 3) is Decision.REFUSE  # its address holds its share
    assert run(2, 5, 5, 5) is Decision.ACCEPT  # 5 untrusted < 6
    assert run(0, 6, 6, 6) is Decision.EVICT_OLDEST_UNTRUSTED  # the untrusted share is used up
    assert run(0, 6, 6, 0) is Decision.REFUSE  # ... and none can give way yet
    assert run(0, 6, 2, 2) is Decision.ACCEPT  # viewers with the token take the rest
    assert run(0, 8, 2, 2) is Decision.EVICT_OLDEST_UNTRUSTED  # every slot taken
    assert run(0, 8, 0, 0) is Decision.REFUSE  # all viewers with the token: never evicted
