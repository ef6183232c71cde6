"""Faults the server and its viewers survive: camera loss, end of file, restarts, stalls.

Every test drives a real server and a real :class:`camstream.Client` on
127.0.0.1; timeouts are short (heartbeat 0.2 s / 1 s) so faults show quickly.
Run with ``-s`` to see the measured detection and recovery times.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from camstream.client.threaded import Client
from camstream.errors import ConnectionClosed, SourceError
from camstream.server.server import Server
from camstream.sources import Source, TestPatternSource
from camstream.sources.pattern import render_placeholder
from camstream.wire.protocol import GoodbyeCode, StreamInfo
from netfaults import CLIENT as SHARED_CLIENT
from netfaults import FAST, HEARTBEAT_TIMEOUT_S, FrameLog, TcpProxy, wait_until

CLIENT = {**SHARED_CLIENT, "connect_timeout_s": 1.0}


class FlakySource(Source):
    """The test pattern, as a camera that can be unplugged and plugged back in on command."""

    description = "flaky camera"
    nominal_fps = 20.0

    def __init__(self) -> None:
        super().__init__()
        self.unplugged = threading.Event()
        self.opens = 0
        self.failed_opens = 0
        self._pattern = TestPatternSource(160, 120, 20)

    def open(self) -> None:
        if self.unplugged.is_set():
            self.failed_opens += 1
            raise SourceError("flaky camera could not be opened: no such device")
        self._pattern.open()
        self.opens += 1

    def read(self) -> np.ndarray | None:
        if self.unplugged.is_set():
            raise SourceError("flaky camera stopped delivering frames (unplugged?)")
        return self._pattern.read()

    def close(self) -> None:
        self._pattern.close()

    def interrupt(self) -> None:
        self._pattern.interrupt()


def write_video(path: Path, frames: int, fps: float = 20.0) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    assert writer.isOpened(), "OpenCV cannot write MJPG/AVI here"
    for i in range(frames):
        image = np.full((120, 160, 3), (i * 20) % 256, np.uint8)
        writer.write(image)
    writer.release()
    return str(path)


def assert_shows_text(image: np.ndarray, text: str, captured_at_ns: int) -> None:
    """``image`` is camstream's placeholder saying ``text``, compared pixel by pixel.

    The reference is rendered the way the server renders it (at the frame's
    capture time, for the clock line); a different headline of the same length
    must be clearly further away, so the comparison really reads the text.
    """
    height, width = image.shape[:2]
    now = captured_at_ns / 1e9

    def distance(headline: str) -> float:
        reference = render_placeholder(headline, width, height, now=now)
        return float(cv2.absdiff(image, reference).mean())

    matching, other = distance(text), distance("X" * len(text))
    assert matching < 4, f"{matching:.1f} levels from the {text!r} placeholder"
    assert other > 2 * matching + 1, (matching, other)


@pytest.fixture
def proxies() -> Iterator[Callable[[int], TcpProxy]]:
    made: list[TcpProxy] = []

    def make(port: int) -> TcpProxy:
        made.append(TcpProxy(port))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


def test_camera_lost_shows_no_signal_then_comes_back(
    running_server: Callable[..., Server],
) -> None:
    source = FlakySource()
    server = running_server(source, **FAST)
    with Client(server.url, reconnect=False, **CLIENT) as client:
        assert not client.read_frame(timeout_s=10).placeholder
        source.unplugged.set()
        lost_at = time.monotonic()
        placeholder = wait_until(
            lambda: (f := client.read_received(timeout_s=5)).frame.placeholder and f, 5, "NO SIGNAL"
        )
        no_signal_after = time.monotonic() - lost_at
        assert server.status()["signal_lost"] is True
        image = placeholder.image  # a real picture a viewer can show
        assert image.shape[:2] == (120, 160)
        assert_shows_text(image, "NO SIGNAL", placeholder.frame.captured_at_ns)
        wait_until(lambda: source.failed_opens >= 2, 5, "a few failed reopen attempts")
        source.unplugged.clear()
        back_at = time.monotonic()
        wait_until(
            lambda: not client.read_frame(timeout_s=5).placeholder, 5, "the picture to come back"
        )
        back_after = time.monotonic() - back_at
        assert client.stats.reconnects == 0  # the viewer never lost its connection
    assert source.opens >= 2  # the server reopened the source by itself
    assert server.status()["signal_lost"] is False
    print(
        f"\nNO SIGNAL after {no_signal_after:.2f} s; picture back {back_after:.2f} s after replug"
    )


def test_file_end_is_a_clean_end_of_stream(
    running_server: Callable[..., Server], tmp_path: Path
) -> None:
    video = write_video(tmp_path / "short.avi", frames=8)
    server = running_server(video, **FAST)
    with Client(server.url, reconnect=True, **CLIENT) as client:  # reconnect would not help
        frames = [received.frame for received in client]  # ends by itself
        with pytest.raises(ConnectionClosed) as caught:
            client.read_frame(timeout_s=1)
    assert caught.value.code == GoodbyeCode.END_OF_STREAM
    assert 1 <= len(frames) <= 8
    assert [f.seq for f in frames] == sorted(f.seq for f in frames)
    # The server stays up; the next viewer gets the file from the start again.
    with Client(server.url, reconnect=False, **CLIENT) as again:
        replayed = [received.frame for received in again]
    assert len(replayed) >= 1
    assert replayed[0].seq > frames[-1].seq


def test_file_loops_when_asked(running_server: Callable[..., Server], tmp_path: Path) -> None:
    video = write_video(tmp_path / "loop.avi", frames=5)
    server = running_server(video, loop=True, **{**FAST, "fps": 40})
    with Client(server.url, reconnect=False, **CLIENT) as client:
        seqs = [client.read_frame(timeout_s=5).seq for _ in range(15)]  # 3 times the file
    assert seqs == sorted(seqs) and len(set(seqs)) == 15
    assert server.status()["ended"] is None


def test_viewer_reconnects_by_itself_after_a_server_restart() -> None:
    first = Server("test", host="127.0.0.1", port=0, **FAST)
    first.__enter__()
    port = first.port
    second: Server | None = None
    try:
        with Client(first.url, **CLIENT) as client:  # reconnect on, at most 2 s between tries
            client.read_frame(timeout_s=10)
            first.__exit__(None, None, None)
            wait_until(lambda: client.state == "reconnecting", 3, "the viewer to notice")
            time.sleep(1.0)  # the server stays down for a while
            second = Server("test", host="127.0.0.1", port=port, **FAST)
            second.__enter__()
            back_at = time.monotonic()
            seq = client.read_frame(timeout_s=5).seq
            took = time.monotonic() - back_at
            assert client.state == "streaming" and client.stats.reconnects == 1
        assert took < 2.5, f"reconnected {took:.2f} s after the server came back"
        print(f"\nviewer streaming again {took:.2f} s after the restart (first seq {seq})")
    finally:
        first.__exit__(None, None, None)
        if second is not None:
            second.__exit__(None, None, None)


def test_network_stall_is_detected_on_both_ends(
    running_server: Callable[..., Server], proxies: Callable[[int], TcpProxy]
) -> None:
    server = running_server("test", **FAST)
    proxy = proxies(server.port)
    with Client(f"camstream://127.0.0.1:{proxy.port}", **CLIENT) as client:
        client.read_frame(timeout_s=10)
        assert server.status()["viewer_count"] == 1
        proxy.stall()
        stalled_at = time.monotonic()
        wait_until(lambda: client.state == "reconnecting", 3, "the viewer to notice the stall")
        client_after = time.monotonic() - stalled_at
        wait_until(lambda: server.status()["viewer_count"] == 0, 3, "the server to notice")
        server_after = time.monotonic() - stalled_at
        assert client.stats.last_error is not None and "heartbeat" in client.stats.last_error
        proxy.resume()
        resumed_at = time.monotonic()
        wait_until(lambda: client.state == "streaming", 5, "the viewer to reconnect")
        client.read_frame(timeout_s=5)
        recovered_after = time.monotonic() - resumed_at
    limit = HEARTBEAT_TIMEOUT_S + 0.2 + 1.0  # timeout + one check interval + slack
    assert client_after < limit and server_after < limit
    print(
        f"\nstall noticed by the viewer after {client_after:.2f} s, by the server after "
        f"{server_after:.2f} s; streaming {recovered_after:.2f} s after the network came back"
    )


@pytest.mark.expect_error_log(r"unexpected error while handling a message; closing this session")
def test_a_failing_session_callback_costs_only_that_session(
    running_server: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    server = running_server("test", **FAST)
    with FrameLog(server.url, reconnect=False, **CLIENT) as viewer:
        healthy = server.producer.stream_info

        def broken() -> StreamInfo:
            raise RuntimeError("injected fault")

        server.producer.stream_info = broken  # type: ignore[method-assign]
        try:
            with (
                Client(server.url, reconnect=False, **CLIENT) as victim,
                pytest.raises(ConnectionClosed, match="internal server error"),
            ):
                victim.read_frame(timeout_s=5)
        finally:
            server.producer.stream_info = healthy  # type: ignore[method-assign]
        assert "injected fault" in caplog.text
        with Client(server.url, reconnect=False, **CLIENT) as later:
            later.read_frame(timeout_s=5)
        count = len(viewer.times)
        wait_until(lambda: len(viewer.times) > count + 3, 3, "the good viewer's next frames")
        assert viewer.error is None
