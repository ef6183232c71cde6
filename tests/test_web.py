"""The HTTP transport: MJPEG wire format, snapshot, status, health, page, bad clients.

Most tests drive the web app over a bare hub (``web_harness``), publishing
frames by hand so timing is exact; the last ones use a real server.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import cv2
import numpy as np
import pytest

from camstream.frame import Frame
from camstream.server.transports.mjpeg import BOUNDARY, CONTENT_TYPE
from conftest import jpeg_frame

DELIMITER = f"\r\n--{BOUNDARY}\r\n".encode()


Reply = tuple[int, dict[str, str], bytes]


def get(url: str, *, method: str = "GET", timeout_s: float = 10) -> Reply:
    """(status, lower-cased headers, body), for error statuses too."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return response.status, headers, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection and return everything until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# -- MJPEG wire format -------------------------------------------------------


def test_stream_response_and_part_headers(web_harness: Any, open_mjpeg: Any) -> None:
    harness = web_harness()
    reader = open_mjpeg(harness.port)
    assert reader.status == 200
    assert reader.headers["content-type"] == CONTENT_TYPE
    assert "no-cache" in reader.headers["cache-control"]
    assert "no-store" in reader.headers["cache-control"]
    assert reader.headers["pragma"] == "no-cache"
    harness.wait_viewers(1)
    sent = [harness.publish(), None]
    headers, body = reader.read_part()
    frame = sent[0]
    assert isinstance(frame, Frame)
    assert body == frame.data  # the hub's bytes, not re-encoded
    assert headers["content-type"] == "image/jpeg"
    assert int(headers["content-length"]) == len(frame.data)
    assert float(headers["x-timestamp"]) == pytest.approx(frame.captured_at_ns / 1e9, abs=1e-5)
    assert int(headers["x-frame-seq"]) == frame.seq
    assert "x-frame-placeholder" not in headers


def test_each_part_is_terminated_at_once_not_by_the_next_frame(
    web_harness: Any, open_mjpeg: Any
) -> None:
    harness = web_harness()
    reader = open_mjpeg(harness.port)
    harness.wait_viewers(1)
    harness.publish()
    reader.read_part()
    # No second frame is published, yet the delimiter that ends the part is here.
    assert reader.peek(len(DELIMITER), timeout_s=2) == DELIMITER
    second = harness.publish()
    assert reader.read_part()[1] == second.data


@pytest.mark.parametrize(
    ("request_headers", "path"),
    [
        ({"Sec-Fetch-Dest": "image"}, "/stream.mjpg"),  # <img src>
        ({"Sec-Fetch-Dest": "document"}, "/stream.mjpg"),  # the URL opened in a tab
        ({"Accept": "image/webp,image/*,*/*;q=0.8"}, "/stream.mjpg"),  # <img>, older browser
        ({}, "/stream.mjpg?advance_headers=1"),
    ],
    ids=["img", "tab", "old-img", "forced"],
)
def test_browsers_rendering_the_stream_get_the_next_headers_in_advance(
    web_harness: Any, open_mjpeg: Any, request_headers: dict[str, str], path: str
) -> None:
    """crbug 527446: Chromium shows a part once the next part's header block is complete."""
    harness = web_harness()
    reader = open_mjpeg(harness.port, path, request_headers=request_headers)
    advance = b"Content-Type: image/jpeg\r\n\r\n"
    preamble = DELIMITER[2:] + advance
    assert reader.peek(len(preamble), timeout_s=2) == preamble
    harness.wait_viewers(1)
    reader.read_body_bytes(len(preamble))
    for _ in range(2):
        frame = harness.publish()
        body = reader.read_body_bytes(len(frame.data))
        assert body == frame.data
        # No next frame yet, but its whole header block is here already.
        assert reader.peek(len(DELIMITER + advance), timeout_s=2) == DELIMITER + advance
        reader.read_body_bytes(len(DELIMITER + advance))


def test_players_and_fetch_get_complete_parts(web_harness: Any, open_mjpeg: Any) -> None:
    harness = web_harness()
    fetch = open_mjpeg(harness.port, request_headers={"Sec-Fetch-Dest": "empty"})
    forced = open_mjpeg(
        harness.port, "/stream.mjpg?advance_headers=0", request_headers={"Sec-Fetch-Dest": "image"}
    )
    harness.wait_viewers(2)
    frame = harness.publish()
    for reader in (fetch, forced):
        headers, body = reader.read_part()
        assert body == frame.data and int(headers["content-length"]) == len(frame.data)


def test_a_reader_that_falls_behind_gets_the_newest_frame(
    web_harness: Any, open_mjpeg: Any
) -> None:
    harness = web_harness()
    # A frame far bigger than the socket buffers: the pipe stays full while
    # the reader does not read, as with a slow client.
    reader = open_mjpeg(harness.port, receive_buffer_bytes=8192)
    harness.wait_viewers(1)
    first = harness.publish(jpeg_frame(1, width=1280, height=720, noise=True))
    assert len(first.data) > 500_000
    later = [harness.publish(jpeg_frame(seq)) for seq in range(2, 7)]
    assert reader.read_part()[1] == first.data
    _headers, body = reader.read_part()
    assert body == later[-1].data  # frames 2-5 were skipped, not queued
    assert reader.peek(len(DELIMITER) + 1, timeout_s=0.3) == DELIMITER
    stats = next(v for v in harness.hub.viewers if v.kind == "http")
    assert (stats.frames_sent, stats.frames_dropped) == (2, 4)


def test_placeholder_frames_are_marked(web_harness: Any, open_mjpeg: Any) -> None:
    harness = web_harness()
    reader = open_mjpeg(harness.port)
    harness.wait_viewers(1)
    harness.publish(jpeg_frame(1, placeholder=True))
    assert reader.read_part()[0]["x-frame-placeholder"] == "1"


def test_stream_ends_cleanly_when_the_source_ends(web_harness: Any, open_mjpeg: Any) -> None:
    harness = web_harness()
    reader = open_mjpeg(harness.port)
    harness.wait_viewers(1)
    harness.publish()
    reader.read_part()
    harness.end("end of file")
    with pytest.raises(EOFError):
        for _ in range(10):
            reader.read_part()
    harness.wait_viewers(0)


def test_head_stream_attaches_no_viewer(web_harness: Any) -> None:
    harness = web_harness()
    status, headers, body = get(harness.url + "/stream.mjpg", method="HEAD")
    assert status == 200
    assert headers["content-type"] == CONTENT_TYPE
    assert body == b""
    assert harness.on_demand == []


def test_viewer_limit_applies_to_http(web_harness: Any, open_mjpeg: Any) -> None:
    harness = web_harness(max_viewers=1)
    open_mjpeg(harness.port)
    harness.wait_viewers(1)
    status, headers, body = get(harness.url + "/stream.mjpg")
    assert status == 503
    assert headers["retry-after"] == "5"
    assert b"server full" in body


# -- bad clients ---------------------------------------------------------------


def test_clients_that_vanish_cost_only_their_own_connection(
    web_harness: Any, open_mjpeg: Any, caplog: pytest.LogCaptureFixture
) -> None:
    harness = web_harness()
    good = open_mjpeg(harness.port)
    idle = open_mjpeg(harness.port)  # will leave while no frame is coming
    mid_part = open_mjpeg(harness.port, receive_buffer_bytes=4096)
    harness.wait_viewers(3)
    big = jpeg_frame(1, width=1280, height=720)
    harness.seq = 1
    harness.publish(big)
    good.read_part()
    mid_part.read_body_bytes(1000)  # part of the headers and the body, then gone
    mid_part.close(reset=True)
    idle.close()
    harness.wait_viewers(1, timeout_s=5)
    for _ in range(3):
        frame = harness.publish()
        assert good.read_part()[1] == frame.data
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # a TLS hello
        b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
    ],
    ids=["tls-hello", "bad-content-length", "huge-header", "garbage"],
)
def test_malformed_requests_are_refused_and_streams_go_on(
    web_harness: Any, open_mjpeg: Any, request_bytes: bytes
) -> None:
    harness = web_harness()
    viewer = open_mjpeg(harness.port)
    harness.wait_viewers(1)
    reply = raw_exchange(harness.port, request_bytes)
    assert reply == b"" or reply.split(b" ", 2)[1].startswith(b"4"), reply[:80]
    frame = harness.publish()
    assert viewer.read_part()[1] == frame.data
    assert harness.viewer_count() == 1


def test_shutdown_is_not_held_up_by_a_client_that_stopped_reading(
    web_harness: Any, open_mjpeg: Any
) -> None:
    harness = web_harness()
    stuck = open_mjpeg(harness.port, receive_buffer_bytes=8192)
    harness.wait_viewers(1)
    harness.publish(jpeg_frame(1, width=1280, height=720, noise=True))
    stuck.peek(100, timeout_s=2)  # the part has started; the rest cannot leave
    started = time.monotonic()
    harness.stop()
    assert time.monotonic() - started < 3  # not aiohttp's 60 s shutdown timeout


# -- snapshot -------------------------------------------------------------------


def test_snapshot_serves_a_fresh_latest_frame_without_waking_capture(web_harness: Any) -> None:
    harness = web_harness()
    frame = harness.publish()
    status, headers, body = get(harness.url + "/snapshot.jpg")
    assert status == 200
    assert body == frame.data
    assert headers["content-type"] == "image/jpeg"
    assert int(headers["x-frame-seq"]) == frame.seq
    assert "no-store" in headers["cache-control"]
    assert harness.on_demand == []


def test_snapshot_wakes_idle_capture_and_lets_it_sleep_again(web_harness: Any) -> None:
    harness = web_harness(auto_fps=20)
    started = time.time()
    status, headers, body = get(harness.url + "/snapshot.jpg")
    assert status == 200
    assert float(headers["x-timestamp"]) >= started  # captured after we asked
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (240, 320, 3)
    assert harness.on_demand == [True, False]
    assert harness.viewer_count() == 0


def test_snapshot_of_an_ended_stream_is_503_with_the_reason(web_harness: Any) -> None:
    harness = web_harness()

    async def attach_watcher() -> None:
        # Someone is still watching the ended stream; with no viewer at all, a new
        # one would replay the source instead (see test_faults).
        harness.hub.attach("native", "watcher")

    harness.call(attach_watcher())
    harness.end("end of file")
    status, _, body = get(harness.url + "/snapshot.jpg")
    assert status == 503
    assert b"end of file" in body
    assert harness.viewer_count() == 1


# -- status and health ------------------------------------------------------------


def test_status_is_the_servers_json(web_harness: Any) -> None:
    harness = web_harness()
    harness.status = {"source": "fake", "viewers": [], "frames_encoded": 7}
    status, headers, body = get(harness.url + "/status")
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert "no-cache" in headers["cache-control"]
    assert json.loads(body) == harness.status


def test_healthz_reports_each_state(web_harness: Any) -> None:
    harness = web_harness()

    def health() -> tuple[int, dict[str, Any]]:
        status, _, body = get(harness.url + "/healthz")
        return status, json.loads(body)

    harness.status = {"capturing": False, "signal_lost": False}
    assert health()[0] == 200  # capture sleeps on demand: healthy
    assert health()[1]["state"] == "idle"

    harness.status = {"capturing": True, "signal_lost": False}
    assert health()[1]["state"] == "starting"
    harness.publish()
    code, body = health()
    assert (code, body["ok"], body["state"]) == (200, True, "streaming")

    stale = jpeg_frame(2)
    harness.publish(Frame(2, stale.captured_at_ns - 30 * 10**9, 320, 240, stale.codec, stale.data))
    code, body = health()
    assert (code, body["state"]) == (503, "stalled")
    assert "no new frame" in body["reason"]

    harness.publish(jpeg_frame(3, placeholder=True))
    code, body = health()
    assert (code, body["state"]) == (503, "signal_lost")

    harness.status = {"capturing": True, "signal_lost": True}
    harness.publish(jpeg_frame(4))
    assert health()[0] == 503

    harness.end("end of file")
    code, body = health()
    assert (code, body["ok"], body["state"]) == (503, False, "ended")
    assert "end of file" in body["reason"]


# -- the page -----------------------------------------------------------------------


def test_page_and_its_assets_come_from_this_server_only(web_harness: Any) -> None:
    harness = web_harness()
    status, headers, page = get(harness.url + "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert b'src="app.js"' in page and b'href="app.css"' in page
    assert b"viewport" in page  # usable on a phone
    for path, kind in (("/app.js", "text/javascript"), ("/app.css", "text/css")):
        status, headers, asset = get(harness.url + path)
        assert status == 200 and headers["content-type"].startswith(kind)
        for text in (page, asset):
            assert b"http://" not in text and b"https://" not in text
    assert get(harness.url + "/app.js.map")[0] == 404
    assert get(harness.url + "/../setup.py")[0] == 404


# -- with a real server ----------------------------------------------------------------


def noise_frames(width: int, height: int) -> Any:
    """Endless random images: JPEG cannot compress them, so frames are large."""
    rng = np.random.default_rng(1)
    pool = [rng.integers(0, 256, (height, width, 3), np.uint8) for _ in range(4)]
    index = 0
    while True:
        yield pool[index % len(pool)]
        index += 1


class PartWatcher:
    """Parses a multipart stream fed in pieces; reports a frame's age when its headers arrive."""

    def __init__(self, delimiter: bytes, on_header: Any) -> None:
        self.delimiter = delimiter
        self.on_header = on_header
        self.buffer = b""
        self.body_left = 0

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.body_left:
                taken = min(self.body_left, len(self.buffer))
                self.buffer, self.body_left = self.buffer[taken:], self.body_left - taken
                if self.body_left:
                    return
            start = self.buffer.find(self.delimiter)
            end = self.buffer.find(b"\r\n\r\n", start)
            if start < 0 or end < 0:
                return
            lines = self.buffer[start + len(self.delimiter) : end].decode().split("\r\n")
            fields = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}
            self.on_header(time.time() - float(fields["x-timestamp"]))
            self.buffer = self.buffer[end + 4 :]
            self.body_left = int(fields["content-length"])


def test_slow_readers_get_fresh_frames_not_a_backlog(running_server: Any, open_mjpeg: Any) -> None:
    """Bytes in flight are bounded per viewer, so slow readers skip frames.

    Two slow readers at about 1 frame per second: one on a slow link (reads a
    trickle of bytes all the time), one that reads a whole frame and then
    sleeps. On the slow link every frame is fresh when it starts arriving; the
    sleeper's frame waited for it in the pipe at most about its own sleep.
    """
    server = running_server(noise_frames(640, 480), fps=15)
    trickle = open_mjpeg(server.port, receive_buffer_bytes=16384)
    sleeper = open_mjpeg(server.port, receive_buffer_bytes=16384)
    headers, body = trickle.read_part()
    frame_bytes = len(body)
    assert frame_bytes > 200_000  # big enough that buffers hold less than a frame
    sleeper.read_part()

    trickle_ages: list[float] = []
    sleeper_ages: list[float] = []
    watcher = PartWatcher(trickle.delimiter, on_header=trickle_ages.append)
    watcher.feed(trickle.buffer)
    trickle.sock.settimeout(1.0)
    step_bytes = frame_bytes // 20  # about one frame per second, in 50 ms steps
    next_sleeper_read = time.monotonic() + 1.0
    deadline = time.monotonic() + 4.5
    while time.monotonic() < deadline:
        watcher.feed(trickle.sock.recv(step_bytes))
        time.sleep(0.05)
        if time.monotonic() >= next_sleeper_read:
            headers, _ = sleeper.read_part()
            sleeper_ages.append(time.time() - float(headers["x-timestamp"]))
            next_sleeper_read += 1.0

    assert len(trickle_ages) >= 2, trickle_ages
    assert max(trickle_ages) < 0.5, trickle_ages
    assert len(sleeper_ages) >= 3, sleeper_ages
    assert max(sleeper_ages) < 1.5, sleeper_ages  # one sleep, not a growing queue
    stats = {v["address"]: v for v in server.status()["viewers"]}
    assert all(v["frames_dropped"] > 0 for v in stats.values())
