"""The server process: banner, clean stop on SIGTERM/SIGINT, the port, on-demand capture.

These run ``python -m camstream serve`` as a child (started and stopped by its
PID) or a :class:`camstream.Server` in a thread, always on 127.0.0.1 with an
ephemeral port.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from camstream.client.threaded import Client
from camstream.errors import ConnectionClosed, UsageError
from camstream.server.server import Server
from camstream.wire.protocol import Connection, GoodbyeCode, Hello, Role
from netfaults import wait_until
from processes import Command, child_env, run_command, stop_cleanly

SMALL = ["--width", "320", "--height", "240"]


def time_wait_count(port: int) -> int:
    """Sockets in TIME_WAIT on local port ``port`` (Linux /proc/net/tcp, state 06)."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(1 for row in rows if int(row[1].split(":")[1], 16) == port and row[3] == "06")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_server_says_goodbye_and_exits_0(signum: int) -> None:
    with Command(["serve", "--source", "test", "--port", "0", *SMALL]) as server:
        port = server.wait_port()
        assert "camstream view camstream://127.0.0.1:" in server.stdout  # how to watch
        assert f"http://127.0.0.1:{port}/" in server.stdout
        with Client(f"127.0.0.1:{port}", reconnect=False) as client:
            first = client.read_frame(timeout_s=10)
            assert (first.width, first.height) == (320, 240)
            server.signal(signum)
            # Frames already on the way may still arrive; then the goodbye.
            with pytest.raises(ConnectionClosed) as info:
                for _ in range(1000):
                    client.read_frame(timeout_s=10)
            assert info.value.code == GoodbyeCode.SHUTTING_DOWN
            assert "shutting down" in str(info.value)
        assert server.wait(15) == 0, server.stderr
        assert "camstream: stopped" in server.stdout
        assert "Traceback" not in server.stderr


def test_restart_on_same_port_right_after_stop() -> None:
    """SO_REUSEADDR: the connections the server closed sit in TIME_WAIT, and that is fine."""
    with Command(["serve", "--source", "test", "--port", "0", *SMALL]) as first:
        port = first.wait_port()
        # Raw peers that read to the server's FIN and only then close: the server
        # closes first, so its side of each connection is left in TIME_WAIT (a
        # client slow to react could otherwise be cut with a reset, leaving none).
        peers = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        try:
            for peer in peers:
                peer.sendall(Connection(Role.CLIENT).send(Hello(8, "restart-test")))
                assert peer.recv(65536)  # the stream has started
            first.signal(signal.SIGTERM)
            for peer in peers:
                while peer.recv(65536):  # frames, the goodbye, then EOF
                    pass
        finally:
            for peer in peers:
                peer.close()
        assert first.wait(15) == 0, first.stderr
    if os.path.exists("/proc/net/tcp"):  # the situation SO_REUSEADDR is for really exists
        assert time_wait_count(port) >= 1
    with Command(["serve", "--source", "test", "--port", str(port), *SMALL]) as second:
        assert second.wait_port() == port, second.stderr
        with Client(f"127.0.0.1:{port}", reconnect=False) as client:
            assert client.read_frame(timeout_s=10).width == 320
        assert stop_cleanly(second, signal.SIGINT) == 0


@pytest.mark.parametrize("source", ["test", "auto"])
def test_port_held_by_another_process_is_a_clear_error(source: str) -> None:
    # With "auto" and no camera (as in CI) a "no camera found" note exists, but it
    # has nothing to do with the port: the error must be the only line.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_command(["serve", "--source", source, "--port", str(port), *SMALL])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "already in use" in lines[0]
    assert "--port" in lines[0]


def test_default_source_falls_back_to_test_pattern_with_one_line() -> None:
    """No --source: camera 0 if it opens, else one line saying so and the test pattern."""
    with Command(["serve", "--port", "0", *SMALL], env=child_env()) as server:
        server.wait_port()
        banner = server.stdout
        if "camera 0" in banner:
            pytest.skip("this machine has a working camera 0")
        assert "test pattern 320x240" in banner
        # stderr is a separate pipe: its note may be read after stdout's banner.
        wait_until(lambda: any("camera" in line for line in server.stderr_lines), 5, "the note")
        notes = [line for line in server.stderr_lines if "camera" in line]
        assert len(notes) == 1, server.stderr
        assert "no camera found" in notes[0] and "test pattern" in notes[0]
        assert stop_cleanly(server, signal.SIGINT) == 0


def test_capture_runs_only_while_someone_watches(
    running_server: Callable[..., Server],
) -> None:
    first_read: list[float] = []

    def camera() -> np.ndarray:
        if not first_read:
            first_read.append(time.monotonic())
        return np.zeros((240, 320, 3), np.uint8)

    server = running_server(camera, fps=30, capture_linger_s=0.3)
    # "Never" has no state to wait for: give a wrongly eager capture the time it
    # would need to start (it starts within milliseconds when it is wanted).
    time.sleep(0.2)
    assert server.status()["capturing"] is False and not first_read
    connected_at = time.monotonic()
    with Client(server.url) as client:
        assert client.read_frame(timeout_s=10).seq == 0  # seq counts from 0 per process
        assert first_read and first_read[0] >= connected_at  # read only once watched
        assert server.status()["capturing"] is True
    wait_until(lambda: server.status()["viewer_count"] == 0, 10, "the viewer to leave")
    # Still capturing during the linger (a quick reconnect costs no restart)...
    left_at = time.monotonic()
    wait_until(lambda: not server.status()["capturing"], 10, "capture to stop")
    assert time.monotonic() - left_at >= 0.2
    # Really stopped: no capture or encoder thread is left that could publish a
    # frame (the encoders end just after the capture thread).
    names = ("camstream-capture", "camstream-encode-")
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith(names)],
        5,
        "the capture threads to end",
    )
    stopped = server.status()
    # The next viewer wakes it up again, with sequence numbers still increasing.
    with Client(server.url) as client:
        wait_until(
            lambda: client.read_frame(timeout_s=10).seq > stopped["latest_seq"],
            10,
            "a newly captured frame",
        )
        assert server.status()["capturing"] is True


def test_always_capture_keeps_capturing_without_viewers(
    running_server: Callable[..., Server],
) -> None:
    server = running_server(
        "test", width=320, height=240, fps=30, capture_linger_s=0.1, always_capture=True
    )
    wait_until(lambda: server.status()["frames_published"] > 0, 10, "frames without viewers")
    with Client(server.url) as client:
        client.read_frame(timeout_s=10)
    wait_until(lambda: server.status()["viewer_count"] == 0, 10, "the viewer to leave")
    before = server.status()["frames_published"]
    wait_until(lambda: server.status()["frames_published"] >= before + 5, 10, "capture to go on")
    assert server.status()["capturing"] is True


def test_entering_a_running_server_again_is_a_usage_error(
    running_server: Callable[..., Server],
) -> None:
    server = running_server("test")
    with pytest.raises(UsageError, match="already running"):
        server.__enter__()


def test_serve_forever_inside_async_code_says_what_to_use() -> None:
    async def main() -> None:
        async with Server("test", port=0) as server:
            with pytest.raises(UsageError, match=r"await server\.serve"):
                server.serve_forever()

    asyncio.run(main())


def test_serve_inside_async_with_waits_for_request_stop() -> None:
    async def main() -> bool:
        async with Server("test", port=0) as server:
            asyncio.get_running_loop().call_later(0.2, server.request_stop)
            await asyncio.wait_for(server.serve(), 10)
            return server.connection_count >= 0 and server.port > 0  # still running here

    assert asyncio.run(main())


def test_serve_forever_in_a_with_block_returns_on_request_stop(
    running_server: Callable[..., Server],
) -> None:
    server = running_server("test")
    threading.Timer(0.2, server.request_stop).start()
    server.serve_forever()  # returns instead of blocking forever
    assert server.port > 0  # the with block, not serve_forever, stops the server


def test_status_right_after_start_shows_no_capture_yet(
    running_server: Callable[..., Server], tmp_path: Path
) -> None:
    # A file is probed (opened and closed) at start; that is not capture.
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 15, (64, 48))
    for value in range(10):
        writer.write(np.full((48, 64, 3), value * 20, np.uint8))
    writer.release()
    status = running_server(str(clip)).status()
    assert status["capturing"] is False
    assert status["images_captured"] == 0 and status["frames_encoded"] == 0
    assert status["viewer_count"] == 0


def test_a_camera_the_server_does_not_have_is_a_clear_final_error(
    running_server: Callable[..., Server],
) -> None:
    server = running_server("test")
    started = time.monotonic()
    # reconnect on: retrying cannot help, so it must not hide the error
    with Client(f"{server.url}/nope") as client, pytest.raises(ConnectionClosed) as caught:
        client.read_frame(timeout_s=10)
    assert caught.value.code == GoodbyeCode.NO_SUCH_STREAM
    assert "no camera named 'nope'" in str(caught.value)
    assert time.monotonic() - started < 5
    # The default camera has a name too, and both addresses reach it.
    for url in (server.url, f"{server.url}/main"):
        with Client(url, reconnect=False) as client:
            client.read_frame(timeout_s=10)
