"""Hostile clients against a live server, while a good viewer keeps watching.

One server, one good viewer (``reconnect=False``: a single dropped connection
would fail the test), then attack after attack. In every phase the viewer's
frame count must keep growing with no long gap, each attacker must be dealt
with as specified, and at the end the server's connections, this process's
open file descriptors and its threads must be back to where they started.

Run with ``-s`` to see what was measured (drop times, fd and thread counts).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from camstream.client.threaded import Client
from camstream.server.server import Server
from camstream.wire.protocol import (
    PROTOCOL_VERSION,
    Connection,
    Credit,
    Goodbye,
    GoodbyeCode,
    Hello,
    Ping,
    Role,
    StreamInfo,
)
from netfaults import (
    CLIENT,
    FAST,
    HANDSHAKE_S,
    HEARTBEAT_TIMEOUT_S,
    FrameLog,
    RawPeer,
    open_fds,
    thread_count,
    wait_until,
)

SLACK_S = 1.0  # scheduling slack on a busy 2-core machine


def connect(port: int, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    return sock


def read_until_closed(sock: socket.socket, timeout_s: float) -> bytes:
    """Everything the server sends until it closes (a reset counts as closing)."""
    deadline = time.monotonic() + timeout_s
    data = b""
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except TimeoutError:
            raise AssertionError(f"still open after {timeout_s} s; got {data[:80]!r}") from None
        if not chunk:
            return data
        data += chunk


def is_closed_by_peer(sock: socket.socket) -> bool:
    """True once the server has closed ``sock``; reads (and drops) what it said before."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass  # e.g. the GOODBYE that precedes the server's FIN
        return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(5)


def goodbye_of(data: bytes) -> Goodbye:
    """The GOODBYE at the end of what a server sent to a misbehaving raw peer."""
    events = Connection(Role.CLIENT).receive_data(data)
    assert events and isinstance(events[-1], Goodbye), events
    return events[-1]


# -- the attacks ----------------------------------------------------------------


def garbage(port: int, notes: dict[str, Any]) -> None:
    """Random bytes (sniffed as HTTP) and random bytes after a camstream magic."""
    for i in range(20):
        with connect(port) as sock:
            noise = os.urandom(4096)
            sock.sendall((b"CS" + noise) if i % 2 else (b"\xff" + noise))
            answer = read_until_closed(sock, 2 + SLACK_S)
            if i % 2:  # camstream framing: a GOODBYE saying what was wrong
                assert goodbye_of(answer).code is GoodbyeCode.PROTOCOL_ERROR
            else:  # HTTP: aiohttp answers 400
                assert answer[:12] in (b"HTTP/1.1 400", b"HTTP/1.0 400"), answer[:60]


def huge_lengths(port: int, notes: dict[str, Any]) -> None:
    """Headers claiming a 4 GB body: refused at the header, nothing is buffered."""
    four_gb = struct.pack(
        "!2sBBI", b"CS", PROTOCOL_VERSION, 1, 0xFFFFFFFF
    )  # a HELLO "with 4 GB of name"
    with connect(port) as sock:
        started = time.monotonic()
        sock.sendall(four_gb)
        goodbye = goodbye_of(read_until_closed(sock, 2))
        notes["4GB header refused in s"] = round(time.monotonic() - started, 3)
    assert goodbye.code is GoodbyeCode.PROTOCOL_ERROR and "refusing to buffer" in goodbye.reason
    peer = RawPeer(port)  # the same after a valid handshake, as a CREDIT
    try:
        peer.hello()
        peer.receive(2, StreamInfo)
        peer.send(struct.pack("!2sBBI", b"CS", PROTOCOL_VERSION, 6, 0xFFFFFFFF) + b"\0" * 1000)
        peer.wait_closed(2)
        assert isinstance(peer.events[-1], Goodbye)
        assert peer.events[-1].code is GoodbyeCode.PROTOCOL_ERROR
    finally:
        peer.close()


def slowloris(port: int, notes: dict[str, Any]) -> None:
    """Silent peers and peers dribbling a byte every 0.1 s, native and HTTP."""
    native = Connection(Role.CLIENT).send(Hello(2))
    http = b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    socks = [(connect(port), b"") for _ in range(5)]
    socks += [(connect(port), native) for _ in range(5)]
    socks += [(connect(port), http) for _ in range(5)]
    started = time.monotonic()
    closed_at: dict[int, float] = {}
    sent = 0
    while len(closed_at) < len(socks):
        assert time.monotonic() - started < HANDSHAKE_S + SLACK_S, (
            f"open: {len(socks) - len(closed_at)}"
        )
        for i, (sock, script) in enumerate(socks):
            if i in closed_at:
                continue
            if is_closed_by_peer(sock):
                closed_at[i] = time.monotonic() - started
            elif sent < len(script):
                try:
                    sock.send(script[sent : sent + 1])
                except OSError:
                    closed_at[i] = time.monotonic() - started
        sent += 1
        time.sleep(0.1)
    notes["slowloris dropped after s (max)"] = round(max(closed_at.values()), 3)
    for sock, _ in socks:
        sock.close()


def half_open(port: int, notes: dict[str, Any], server: Server) -> None:
    """Handshake, then never read and never send: the heartbeat timeout drops it.

    Two of them have a tiny receive buffer, so the server's frames cannot all
    leave: closing must not wait for them forever.
    """
    socks = []
    for i in range(4):
        sock = connect(port, rcvbuf=2048 if i < 2 else None)
        sock.sendall(Connection(Role.CLIENT).send(Hello(2)))
        socks.append(sock)
    wait_until(
        lambda: server.status()["viewer_count"] == 5, 3, "the half-open peers to be admitted"
    )
    started = time.monotonic()
    wait_until(
        lambda: server.status()["viewer_count"] == 1,
        HEARTBEAT_TIMEOUT_S + 0.5 + SLACK_S,
        "the half-open peers to be dropped",
    )
    notes["half-open detached after s"] = round(time.monotonic() - started, 3)
    wait_until(lambda: server.connection_count == 1, 2 + SLACK_S, "their sockets to close")
    notes["half-open sockets closed after s"] = round(time.monotonic() - started, 3)
    for sock in socks:
        sock.close()


def not_reading(port: int, notes: dict[str, Any], server: Server) -> None:
    """Pings (so it is alive) but never reads: credits bound what the server sends.

    (Its receive buffer keeps the default size: with a tiny one, loopback TCP
    drops the ACKs for its own pings and they stall in retransmission backoff,
    which is a different test: see ``half_open``.)
    """
    peer = RawPeer(port)
    try:
        peer.hello(credit_window=2)
        wait_until(lambda: server.status()["viewer_count"] == 2, 3, "the peer to be admitted")
        for token in range(15):
            peer.send(peer.conn.send(Ping(token)))
            time.sleep(0.1)
        stats = [v for v in server.status()["viewers"] if v["frames_sent"] <= 2]
        assert len(stats) == 1, server.status()["viewers"]
        notes["not-reading peer: frames sent"] = stats[0]["frames_sent"]
        notes["not-reading peer: frames skipped"] = stats[0]["frames_dropped"]
    finally:
        peer.close()


def absurd_http(port: int, notes: dict[str, Any]) -> None:
    requests = {
        "huge header line": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        "thousands of headers": b"GET / HTTP/1.1\r\n" + b"X-H: v\r\n" * 5000 + b"\r\n",
        "huge request line": b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
        "bad request line": b"\x01\x02 NOT HTTP AT ALL\r\n\r\n",
        "bad version": b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    }
    statuses = {}
    for name, request in requests.items():
        with connect(port) as sock:
            # The server may answer and close before we finish sending.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(request)
            answer = read_until_closed(sock, 2 + SLACK_S)
        statuses[name] = answer[:12].decode("latin1")
        assert answer.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")) or answer == b"", (
            name,
            answer[:80],
        )
    notes["absurd HTTP answers"] = statuses


def rapid_cycles(port: int, notes: dict[str, Any]) -> None:
    """200 connect/disconnect cycles: plain close, reset, half a hello, a hello, half a request."""
    openers = [b"", b"", b"CS", Connection(Role.CLIENT).send(Hello(2)), b"GET / HT"]
    started = time.monotonic()
    for i in range(200):
        sock = connect(port)
        if opener := openers[i % len(openers)]:
            sock.sendall(opener)
        if i % 2:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    notes["200 cycles took s"] = round(time.monotonic() - started, 3)


# -- the test -----------------------------------------------------------------------


@pytest.fixture
def watched_server(running_server: Callable[..., Server]) -> Iterator[tuple[Server, FrameLog]]:
    server = running_server("test", **FAST)
    with FrameLog(server.url, reconnect=False, **CLIENT) as viewer:
        yield server, viewer


def test_hostile_clients_never_disturb_a_good_viewer(
    watched_server: tuple[Server, FrameLog],
) -> None:
    server, viewer = watched_server
    port = server.port
    time.sleep(0.3)  # let the pipeline and the viewer settle before the baseline
    baseline_fds, baseline_threads = open_fds(), thread_count()
    notes: dict[str, Any] = {"baseline fds": baseline_fds, "baseline threads": baseline_threads}
    phases: list[tuple[str, Callable[[], None]]] = [
        ("garbage", lambda: garbage(port, notes)),
        ("4 GB headers", lambda: huge_lengths(port, notes)),
        ("slowloris", lambda: slowloris(port, notes)),
        ("half-open", lambda: half_open(port, notes, server)),
        ("not reading", lambda: not_reading(port, notes, server)),
        ("absurd HTTP", lambda: absurd_http(port, notes)),
        ("rapid cycles", lambda: rapid_cycles(port, notes)),
    ]
    for name, attack in phases:
        started = time.monotonic()
        attack()
        time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))  # every phase lasts >= 0.5 s
        ended = time.monotonic()
        assert viewer.error is None, f"{name}: the good viewer lost its connection: {viewer.error}"
        frames = viewer.frames_between(started, ended)
        gap = viewer.max_gap_s(started, ended)
        notes[f"viewer during {name}"] = f"{frames} frames, max gap {gap:.2f} s"
        assert frames >= 3, f"{name}: the good viewer got only {frames} frames"
        assert gap < 1.0, f"{name}: the good viewer waited {gap:.2f} s for a frame"

    wait_until(lambda: server.connection_count == 1, 3, "only the good viewer's connection")
    wait_until(
        lambda: open_fds() <= baseline_fds + 1 and thread_count() <= baseline_threads + 1,
        3,
        f"fds/threads back to {baseline_fds}/{baseline_threads}",
    )
    notes["final fds"], notes["final threads"] = open_fds(), thread_count()
    assert server.status()["viewer_count"] == 1
    print("\nhostile-client measurements:")
    for key, value in notes.items():
        print(f"  {key}: {value}")


def test_connections_past_the_cap(
    running_server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle peers without the token give way to new ones; viewers never do."""
    monkeypatch.setattr("camstream.server.server.max_connections_for", lambda _viewers: 4)
    server = running_server("test", **{**FAST, "handshake_timeout_s": 10.0})
    # Untrusted connections may fill 3 of the 4 slots; the next one takes the
    # oldest one's slot.
    held = [connect(server.port) for _ in range(3)]
    try:
        wait_until(lambda: server.connection_count == 3, 3, "three held connections")
        with connect(server.port) as newcomer:
            assert read_until_closed(held[0], 2) == b""  # the oldest gave way
            wait_until(lambda: server.connection_count == 3, 3, "still three connections")
            newcomer.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert read_until_closed(newcomer, 5).startswith(b"HTTP/1.1 200")
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: server.connection_count == 0, 3, "the held connections to be released")
    # Four viewers (trusted) fill every slot: a fifth connection is closed at once.
    # One at a time: with 4 slots, a fourth handshake while three are under way
    # would already be past the untrusted share, and the oldest would give way.
    viewers: list[Client] = []
    try:
        for _ in range(4):
            viewers.append(Client(server.url, reconnect=False, **CLIENT).open())
            viewers[-1].read_frame(timeout_s=10)
        with connect(server.port) as extra:
            assert read_until_closed(extra, 2) == b""  # closed without a word
        assert server.connection_count == 4
        for viewer in viewers:
            viewer.read_frame(timeout_s=10)  # none of them was dropped
    finally:
        for viewer in viewers:
            viewer.close()


def test_stop_is_prompt_with_hostile_peers_connected() -> None:
    """Silent, mid-head, mid-hello and never-reading peers: stop() still takes < 3 s."""
    server = Server("test", host="127.0.0.1", port=0, **{**FAST, "handshake_timeout_s": 30.0})
    server.__enter__()
    socks = [connect(server.port) for _ in range(3)]
    took = -1.0
    try:
        socks[0].sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a")  # mid-head
        socks[1].sendall(Connection(Role.CLIENT).send(Hello(2))[:3])  # mid-hello
        stalled = connect(server.port, rcvbuf=2048)  # admitted, then never reads
        socks.append(stalled)
        stalled.sendall(Connection(Role.CLIENT).send(Hello(8)))
        wait_until(lambda: server.status()["viewer_count"] == 1, 3, "the stalled peer's admission")
        fds_running = open_fds()
        started = time.monotonic()
        server.__exit__(None, None, None)
        took = time.monotonic() - started
    finally:
        server.__exit__(None, None, None)  # a no-op once stopped
        for sock in socks:
            sock.close()
    assert took < 3.0, f"stop() took {took:.2f} s"
    print(f"\nstop() with 4 hostile peers took {took:.2f} s (fds while running: {fds_running})")


def test_a_viewer_that_breaks_the_protocol_after_streaming_only_loses_itself(
    watched_server: tuple[Server, FrameLog],
) -> None:
    server, viewer = watched_server
    peer = RawPeer(server.port)
    try:
        peer.hello()
        peer.receive(2, StreamInfo)
        peer.send(peer.conn.send(Credit(1, 0)) + Connection(Role.CLIENT).send(Hello(2)))
        peer.wait_closed(2)
        assert any(isinstance(e, Goodbye) and "HELLO" in e.reason for e in peer.events)
    finally:
        peer.close()
    before = len(viewer.times)
    wait_until(lambda: len(viewer.times) > before + 3, 3, "more frames for the good viewer")
