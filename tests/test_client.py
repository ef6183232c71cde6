"""The blocking client (and its VideoCapture wrapper) against a scripted server on 127.0.0.1."""

from __future__ import annotations

import itertools
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from camstream.client.session import Session, goodbye_error
from camstream.client.threaded import Client
from camstream.client.tracker import Backoff, Outcome, Tracker, classify
from camstream.client.videocapture import VideoCapture
from camstream.config import ClientConfig
from camstream.errors import (
    AuthenticationError,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    LocalProtocolError,
    RemoteProtocolError,
    ServerFullError,
)
from camstream.frame import Codec, Frame
from camstream.wire.protocol import (
    Connection,
    Credit,
    Goodbye,
    GoodbyeCode,
    Hello,
    Ping,
    Role,
    StreamInfo,
)
from camstream.wire.tls import server_context
from imaging import streaming_server
from scripted_server import HEIGHT, WIDTH, ScriptedServer, make_image, wait_until

FAST: dict[str, Any] = {
    "heartbeat_interval_s": 0.1,
    "heartbeat_timeout_s": 0.6,
    "reconnect_initial_s": 0.05,
    "reconnect_max_s": 0.2,
    "connect_timeout_s": 2.0,
}


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as srv:
        yield srv


def client_for(srv: ScriptedServer, **options: Any) -> Client:
    return Client(srv.url, **{**FAST, **options})


def assert_looks_like(image: np.ndarray, seq: int) -> None:
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    diff = np.abs(image.astype(np.int16) - make_image(seq).astype(np.int16))
    assert diff.mean() < 3, f"decoded image differs from pattern {seq}: mean {diff.mean():.1f}"


# -- the happy path -----------------------------------------------------------


def test_frames_arrive_in_order_and_decode_to_the_sent_images(server: ScriptedServer) -> None:
    with client_for(server) as client:
        info = client.wait_connected(5)
        assert (info.width, info.height, info.codec) == (WIDTH, HEIGHT, Codec.JPEG)
        for seq in range(1, 6):
            server.publish(seq)
            received = client.read_received(timeout_s=5)
            assert received.seq == seq
            assert_looks_like(received.image, seq)
            assert received.image is received.image  # decoded once, cached
            assert 0 <= received.age_s < 2
        stats = client.stats
    assert stats.frames_received == stats.frames_read == 5
    assert stats.frames_dropped == 0 and stats.bytes_received > 0
    assert server.record.hellos[0].credit_window == ClientConfig().credit_window
    assert server.record.hellos[0].client_name == "camstream-client"


def test_the_client_never_lets_more_than_the_credit_window_be_in_flight(
    server: ScriptedServer,
) -> None:
    server.start_pushing(fps=200)
    with client_for(server, credit_window=3) as client:
        for _ in range(10):
            client.read_frame(timeout_s=5)
            time.sleep(0.02)
        wait_until(lambda: len(server.record.credits) >= server.record.frames_sent - 3)
    wait_until(lambda: server.record.goodbyes != [], what="the client's goodbye")
    credits = server.record.credits
    assert server.record.max_outstanding <= 3
    assert all(c.credits == 1 for c in credits)
    assert [c.ack_seq for c in credits] == sorted(c.ack_seq for c in credits)
    assert server.record.goodbyes[-1].code is GoodbyeCode.NORMAL  # close() says goodbye


def test_a_slow_reader_gets_fresh_frames_not_a_backlog(server: ScriptedServer) -> None:
    server.start_pushing(fps=50)
    with client_for(server) as client:
        client.read_frame(timeout_s=5)
        seqs, ages = [], []
        for _ in range(8):
            time.sleep(0.1)
            received = client.read_received(timeout_s=2)
            seqs.append(received.seq)
            ages.append(received.age_s)
        stats = client.stats
    gaps = [b - a for a, b in itertools.pairwise(seqs)]
    # Skipped, never repeated (the server pushes ~5 frames per read; fewer on a loaded box).
    assert min(gaps) >= 1 and sum(gaps) / len(gaps) >= 1.5, seqs
    assert max(ages) < 0.2, ages  # fresh: at most one frame interval old, plus scheduling
    assert stats.frames_dropped > 0 and stats.fps > 10
    assert stats.last_age_s is not None and stats.last_age_s < 0.2


def test_iteration_yields_frames_and_ends_cleanly_at_end_of_stream(server: ScriptedServer) -> None:
    server.publish(1)
    seen = []
    with client_for(server) as client:
        for received in client:
            seen.append(received.seq)
            if received.seq < 3:
                server.publish(received.seq + 1)
            else:
                server.goodbye_all(GoodbyeCode.END_OF_STREAM, "the file ended")
        with pytest.raises(ConnectionClosed, match="the file ended"):
            client.read_frame(timeout_s=1)
        assert client.state == "closed"
    assert seen == [1, 2, 3]
    assert server.record.connections == 1  # the end of the stream is not retried


def test_close_is_idempotent_and_ends_reads_and_iteration(server: ScriptedServer) -> None:
    client = client_for(server).open()
    client.wait_connected(5)
    client.close()
    client.close()
    assert client.state == "closed"
    with pytest.raises(ConnectionClosed):
        client.read_frame(timeout_s=0)
    assert list(client) == []
    wait_until(lambda: len(server.record.goodbyes) == 1)


def test_pings_are_answered_and_sent(server: ScriptedServer) -> None:
    server.ping_interval_s = 0.05
    with client_for(server) as client:
        client.wait_connected(5)
        wait_until(lambda: server.record.pongs >= 2, what="pongs from the client")
        # Without frames, only the client's own pings keep the connection alive.
        time.sleep(0.8)
        assert client.state == "streaming" and client.stats.reconnects == 0


def test_a_reader_blocked_in_read_is_woken_by_a_frame(server: ScriptedServer) -> None:
    with client_for(server) as client:
        client.wait_connected(5)
        timer = threading.Timer(0.2, server.publish)
        timer.start()
        try:
            assert client.read_frame(timeout_s=5).seq == 1
        finally:
            timer.join()
        with pytest.raises(TimeoutError, match="no new frame"):
            client.read_frame(timeout_s=0.05)


# -- authentication and admission ---------------------------------------------


def test_the_right_token_is_accepted_from_config_address_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with ScriptedServer(token="s3cret") as srv:
        srv.publish()
        with client_for(srv, token="s3cret") as client:
            assert client.read_frame(timeout_s=5).seq == 1
        with Client(f"{srv.url}?token=s3cret", **FAST) as client:
            assert client.read_frame(timeout_s=5).seq == 1
        monkeypatch.setenv("CAMSTREAM_TOKEN", "s3cret")
        with client_for(srv) as client:
            assert client.read_frame(timeout_s=5).seq == 1


def _connection_thread_alive(client: Client) -> bool:
    """Whether ``client``'s connection thread (which would reconnect) still runs."""
    return any(t.name == f"camstream-client {client.url}" for t in threading.enumerate())


def test_a_wrong_token_raises_authentication_error_and_is_not_retried() -> None:
    with ScriptedServer(token="s3cret") as srv, client_for(srv, token="wrong") as client:
        with pytest.raises(AuthenticationError, match="wrong token") as info:
            client.read_frame(timeout_s=5)
        assert info.value.code == GoodbyeCode.AUTH_FAILED
        with pytest.raises(AuthenticationError):
            client.wait_connected(1)
        # Not retried: the thread that would reconnect has ended (a state, where a
        # pause would only show that a retry had not happened *yet*).
        wait_until(lambda: not _connection_thread_alive(client), what="the client thread to end")
        assert srv.record.connections == 1 and client.state == "closed"


def test_a_missing_token_says_how_to_provide_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAMSTREAM_TOKEN", raising=False)
    with ScriptedServer(token="s3cret") as srv, client_for(srv) as client:
        with pytest.raises(AuthenticationError, match="CAMSTREAM_TOKEN"):
            client.read_frame(timeout_s=5)
        wait_until(lambda: srv.record.goodbyes != [])
        assert srv.record.goodbyes[0].code is GoodbyeCode.AUTH_FAILED


def test_a_full_server_raises_server_full_error_and_is_not_retried() -> None:
    full = (GoodbyeCode.SERVER_FULL, "server full: 1 viewers already connected")
    with ScriptedServer(hello_goodbye=full) as srv, client_for(srv) as client:
        with pytest.raises(ServerFullError, match="1 viewers"):
            client.wait_connected(5)
        wait_until(lambda: not _connection_thread_alive(client), what="the client thread to end")
        assert srv.record.connections == 1


# -- failures and reconnects ----------------------------------------------------


def test_reconnects_after_the_server_restarts_on_the_same_port(server: ScriptedServer) -> None:
    server.publish()
    with client_for(server) as client:
        assert client.read_frame(timeout_s=5).seq == 1
        server.stop()
        wait_until(lambda: client.state == "reconnecting", what="reconnecting")
        time.sleep(0.3)  # a few refused attempts, with backoff
        server.start()
        wait_until(lambda: client.state == "streaming", what="streaming again")
        server.publish()
        received = client.read_frame(timeout_s=5)
        if received.seq == 1:  # the server's newest frame when we came back; then ours
            received = client.read_frame(timeout_s=5)
        assert received.seq == 2
        assert client.stats.reconnects == 1
    assert server.record.connections == 2


def test_a_silent_server_is_detected_by_heartbeat_timeout(server: ScriptedServer) -> None:
    with client_for(server) as client:
        client.wait_connected(5)
        server.mode = "stall"
        start = time.monotonic()
        wait_until(lambda: client.state == "reconnecting", timeout_s=3)
        elapsed = time.monotonic() - start
        assert 0.4 < elapsed < 1.5, elapsed
        assert "heartbeat timeout" in (client.stats.last_error or "")
        server.mode = "normal"
        wait_until(lambda: client.state == "streaming", what="streaming again")
        assert client.stats.reconnects == 1


def test_garbage_from_the_server_drops_that_connection_and_reconnects(
    server: ScriptedServer,
) -> None:
    with client_for(server) as client:
        client.wait_connected(5)
        server.mode = "garbage"
        wait_until(lambda: "bad magic" in (client.stats.last_error or ""), what="bad magic")
        assert "HTTP" in (client.stats.last_error or "")
        server.mode = "normal"
        wait_until(lambda: client.state == "streaming" and client.stats.reconnects >= 1)


def test_shutting_down_goodbye_reconnects(server: ScriptedServer) -> None:
    with client_for(server) as client:
        client.wait_connected(5)
        server.goodbye_all(GoodbyeCode.SHUTTING_DOWN, "restarting")
        wait_until(lambda: client.stats.reconnects == 1, what="a reconnect")
        assert "restarting" in (client.stats.last_error or "")


def test_without_reconnect_a_refused_connection_raises_connect_error(
    server: ScriptedServer,
) -> None:
    url = server.url
    server.stop()
    with Client(url, reconnect=False) as client:
        with pytest.raises(ConnectError, match="cannot connect"):
            client.wait_connected(5)
        with pytest.raises(ConnectError):
            client.read_frame(timeout_s=1)


def test_without_reconnect_a_drop_ends_reads_with_the_reason(server: ScriptedServer) -> None:
    with client_for(server, reconnect=False) as client:
        client.wait_connected(5)
        server.stop()
        with pytest.raises(ConnectionClosed, match="server closed the connection"):
            client.read_frame(timeout_s=5)


def test_a_flood_ignoring_credit_is_absorbed_by_dropping_frames(server: ScriptedServer) -> None:
    server.mode = "flood"
    server.start_pushing(fps=300)
    with client_for(server) as client:
        client.read_frame(timeout_s=5)
        time.sleep(0.3)
        client.read_frame(timeout_s=5)
        assert client.stats.frames_dropped > 0 and client.state == "streaming"


def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    with ScriptedServer(tls=server_context(str(cert), str(key))) as srv:
        srv.publish()
        url = srv.url.replace("camstream://", "camstreams://")
        with Client(url, tls_ca=str(cert), **FAST) as client:
            assert_looks_like(client.read(timeout_s=5), 1)
        # The system store does not trust it: a permanent error, not endless retries.
        with Client(url, **FAST) as client, pytest.raises(ConnectError, match="certificate"):
            client.wait_connected(5)


# -- options --------------------------------------------------------------------


def test_unknown_options_are_rejected_by_name() -> None:
    with pytest.raises(ConfigError, match="heartbeat_typo"):
        Client("127.0.0.1:1", heartbeat_typo=1)
    with pytest.raises(ConfigError):
        Client("127.0.0.1:1", heartbeat_interval_s=-1)


# -- the sans-IO session and helpers ------------------------------------------------


def _server_bytes(*events: object) -> bytes:
    server = Connection(Role.SERVER)
    server.receive_data(Connection(Role.CLIENT).send(Hello()))
    out = b""
    for event in events:
        out += server.send(event)  # type: ignore[arg-type]
    return out


def test_session_credits_each_frame_and_maps_goodbye_after_delivering_frames() -> None:
    session = Session(ClientConfig(), None, now=0.0)
    assert session.data_to_send()  # the hello
    info = StreamInfo(4, 2, Codec.JPEG, 30.0)
    frame = Frame(7, 0, 4, 2, Codec.JPEG, b"x")
    data = _server_bytes(info, frame, Goodbye(GoodbyeCode.SERVER_FULL, "full"))
    items = session.receive_data(data, now=1.0)
    assert items == [info, frame]
    server = streaming_server()
    assert server.receive_data(session.data_to_send()) == [Credit(1, ack_seq=7)]
    with pytest.raises(ServerFullError, match="full"):
        session.check()


def test_session_pings_on_schedule_and_times_out_when_silent() -> None:
    config = ClientConfig(heartbeat_interval_s=1.0, heartbeat_timeout_s=3.0)
    session = Session(config, None, now=0.0)
    session.receive_data(_server_bytes(StreamInfo(4, 2, Codec.JPEG, 30.0)), now=0.0)
    session.data_to_send()
    session.poll(0.5)
    assert session.data_to_send() == b""
    session.poll(1.0)
    server = streaming_server()
    assert isinstance(server.receive_data(session.data_to_send())[0], Ping)
    with pytest.raises(ConnectionClosed, match="heartbeat timeout"):
        session.poll(3.0)


def test_session_rejects_garbage_with_a_clear_reason() -> None:
    session = Session(ClientConfig(), None, now=0.0)
    with pytest.raises(RemoteProtocolError, match="bad magic"):
        session.receive_data(b"HTTP/1.1 200 OK\r\n", now=0.0)


def test_classification_decides_what_is_retried() -> None:
    assert (
        classify(goodbye_error(Goodbye(GoodbyeCode.AUTH_FAILED)), reconnect=True) is Outcome.FATAL
    )
    assert (
        classify(goodbye_error(Goodbye(GoodbyeCode.SERVER_FULL)), reconnect=True) is Outcome.FATAL
    )
    end = goodbye_error(Goodbye(GoodbyeCode.END_OF_STREAM))
    assert classify(end, reconnect=True) is Outcome.END
    shutdown = goodbye_error(Goodbye(GoodbyeCode.SHUTTING_DOWN, "bye"))
    assert classify(shutdown, reconnect=True) is Outcome.RETRY
    assert classify(shutdown, reconnect=False) is Outcome.FATAL
    assert classify(ConnectionRefusedError(), reconnect=True) is Outcome.RETRY
    assert classify(RemoteProtocolError("bad magic"), reconnect=True) is Outcome.RETRY
    assert classify(ValueError("a bug"), reconnect=True) is Outcome.FATAL
    assert classify(LocalProtocolError("our bug"), reconnect=True) is Outcome.FATAL


def test_backoff_doubles_to_the_maximum_with_small_jitter() -> None:
    backoff = Backoff(0.1, 1.0, rand=lambda: 0.5)
    assert [round(backoff.next_delay(), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.1)
    jittery = Backoff(1.0, 1.0)
    assert all(0.9 <= jittery.next_delay() <= 1.1 for _ in range(50))


def test_tracker_keeps_only_the_newest_frame_and_counts_drops() -> None:
    tracker = Tracker()
    for seq in range(1, 5):
        tracker.put(Frame(seq, time.time_ns(), 4, 2, Codec.JPEG, b"x"))
    received = tracker.take()
    assert received is not None and received.seq == 4
    assert tracker.take() is None
    stats = tracker.stats()
    assert (stats.frames_received, stats.frames_read, stats.frames_dropped) == (4, 1, 3)


# -- VideoCapture ----------------------------------------------------------------


def test_video_capture_reads_like_opencv(server: ScriptedServer) -> None:
    server.publish(3)
    with VideoCapture(server.url, timeout_s=5, **FAST) as cap:
        assert cap.isOpened()
        ok, image = cap.read()
        assert ok and image is not None
        assert_looks_like(image, 3)
        assert cap.get(cv2.CAP_PROP_FRAME_WIDTH) == WIDTH
        assert cap.get(cv2.CAP_PROP_FRAME_HEIGHT) == HEIGHT
        assert cap.get(cv2.CAP_PROP_FPS) == 30.0
        assert cap.get(cv2.CAP_PROP_POS_FRAMES) == 3
        assert cap.last_frame is not None and cap.last_frame.seq == 3
        server.publish(4)
        assert cap.grab()
        ok, image = cap.retrieve()
        assert ok and image is not None and image.shape == (HEIGHT, WIDTH, 3)
        cap.release()
        assert not cap.isOpened()
        assert cap.read() == (False, None)


def test_video_capture_returns_false_when_the_server_is_gone(server: ScriptedServer) -> None:
    with VideoCapture(server.url, timeout_s=0.3, reconnect=False, **FAST) as cap:
        server.stop()
        assert cap.read() == (False, None)
        assert not cap.isOpened()
        assert cap.last_error
    url = server.url
    with VideoCapture(url, timeout_s=0.5, reconnect=False) as cap:
        assert not cap.isOpened()
        assert cap.read() == (False, None)
        assert "cannot connect" in (cap.last_error or "")


def test_the_address_path_names_the_camera_in_the_hello(server: ScriptedServer) -> None:
    with Client(f"127.0.0.1:{server.port}/front", reconnect=False, max_width=320) as client:
        client.wait_connected(5)
    hello = server.record.hellos[0]
    assert hello.stream == "front" and hello.max_width == 320 and hello.adaptive
