"""Real third-party clients against a real server: Chromium, FFmpeg, OpenCV, aiohttp.

Each group skips with the reason when its tool is missing (scripts/test
installs them on Debian).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import aiohttp
import cv2
import numpy as np
import pytest

from camstream.frame import Frame
from camstream.wire.protocol import Connection, Credit, Hello, Ping, Pong, Role, StreamInfo
from conftest import jpeg_frame, wait_state

if TYPE_CHECKING:
    from playwright.sync_api import Page

WIDTH, HEIGHT = 320, 240

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="ffmpeg/ffprobe not installed (apt-get install ffmpeg)",
)


# -- Chromium -----------------------------------------------------------------------


def element_pixels(page: Page, selector: str) -> Any:
    png = page.locator(selector).screenshot()
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


@pytest.mark.browser
def test_page_shows_the_live_stream_and_reconnects(running_server: Any, page: Page) -> None:
    server = running_server("test", fps=15, width=WIDTH, height=HEIGHT)
    problems: list[str] = []  # script errors, CSP violations, failed loads
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(server.http_url)
    wait_state(page, "live")
    size = page.eval_on_selector("#video", "img => [img.naturalWidth, img.naturalHeight]")
    assert size == [WIDTH, HEIGHT]
    first = element_pixels(page, "#video")
    time.sleep(0.5)
    second = element_pixels(page, "#video")
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 0.5, "the image did not change"
    # Stats: fps, frame age and resolution from the stream, viewers from /status.
    page.wait_for_function("() => document.getElementById('viewers').textContent === '1'")
    assert page.text_content("#res") == f"{WIDTH}\N{MULTIPLICATION SIGN}{HEIGHT}"
    assert float(page.text_content("#fps") or 0) > 3
    assert (page.text_content("#age") or "").endswith("ms")
    assert page.is_visible("#fullscreen")
    assert not page.is_visible("#overlay")
    assert problems == []

    port = server.port
    server.__exit__(None, None, None)  # the fixture's own exit is then a no-op
    wait_state(page, "reconnecting")
    assert page.is_visible("#overlay")
    assert page.text_content("#overlay-title") == "reconnecting…"
    # Long enough for the backoff to reach its cap (0.25-0.5, 0.5-1, 0.75-1.5 s):
    # the restart then meets the page at its slowest.
    time.sleep(2.0)

    # The same port again (the listener sets SO_REUSEADDR): the page must be
    # live within about two seconds of the server being back.
    running_server("test", fps=15, width=WIDTH, height=HEIGHT, port=port)
    restarted_at = time.monotonic()
    wait_state(page, "live", timeout_s=10)
    reconnect_s = time.monotonic() - restarted_at
    print(f"page live again {reconnect_s:.2f} s after the restart")
    assert reconnect_s < 2.5, f"page took {reconnect_s:.2f} s to come back"
    assert not page.is_visible("#overlay")


@pytest.mark.browser
def test_a_plain_img_shows_each_frame_without_waiting_for_the_next(
    web_harness: Any, page: Page
) -> None:
    """crbug 527446: with the delimiter sent late, Chromium would show frame N-1."""
    harness = web_harness()
    page.set_content(
        f'<body style="margin:0"><img id="v" src="{harness.url}/stream.mjpg"></body>',
        wait_until="domcontentloaded",
    )
    harness.wait_viewers(1)
    for seq in (1, 2):  # and never a frame after the one we look for
        harness.publish(jpeg_frame(seq))
        expected = np.array([(seq * 37) % 256, (seq * 91) % 256, 128])
        deadline = time.monotonic() + 5
        while True:
            if page.eval_on_selector("#v", "img => img.naturalWidth") == WIDTH:
                corner = element_pixels(page, "#v")[:20, -20:].reshape(-1, 3).mean(axis=0)
                if np.abs(corner - expected).max() < 12:
                    break
            assert time.monotonic() < deadline, f"frame {seq} not shown"
            time.sleep(0.05)


# -- FFmpeg ---------------------------------------------------------------------------


@pytest.mark.ffmpeg
@needs_ffmpeg
def test_ffmpeg_reads_frames_with_a_strict_boundary(running_server: Any) -> None:
    server = running_server("test", fps=20, width=WIDTH, height=HEIGHT)
    url = server.http_url + "stream.mjpg"
    strict = ["-f", "mpjpeg", "-strict_mime_boundary", "1"]
    show_stream = ["-show_entries", "stream=codec_name,width,height"]
    probe = subprocess.run(
        ["ffprobe", "-v", "error", *strict, *show_stream, "-of", "json", url],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stderr == ""
    (stream,) = json.loads(probe.stdout)["streams"]
    assert stream == {"codec_name": "mjpeg", "width": WIDTH, "height": HEIGHT}

    frames = 12
    output = ["-frames:v", str(frames), "-f", "framecrc", "-"]  # one CRC line per frame
    quiet = ["-hide_banner", "-nostdin", "-v", "error", "-xerror"]
    decode = subprocess.run(
        ["ffmpeg", *quiet, *strict, "-i", url, *output],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert decode.returncode == 0, decode.stderr
    assert decode.stderr == "", decode.stderr  # no decode errors or warnings
    lines = decode.stdout.splitlines()
    assert f"#dimensions 0: {WIDTH}x{HEIGHT}" in lines
    assert len([line for line in lines if not line.startswith("#")]) == frames


# -- OpenCV ---------------------------------------------------------------------------


def test_cv2_videocapture_reads_the_stream(running_server: Any) -> None:
    server = running_server("test", fps=20, width=WIDTH, height=HEIGHT)
    capture = cv2.VideoCapture(server.http_url + "stream.mjpg", cv2.CAP_FFMPEG)
    try:
        assert capture.isOpened()
        for _ in range(5):
            ok, image = capture.read()
            assert ok
            assert image.shape == (HEIGHT, WIDTH, 3)
    finally:
        capture.release()


# -- many viewers, one encode ------------------------------------------------------------


async def http_viewer(session: aiohttp.ClientSession, url: str, until: float) -> int:
    """Counts the JPEG parts aiohttp's own multipart reader gets until ``until``."""
    frames = 0
    async with session.get(url) as response:
        reader = aiohttp.MultipartReader.from_response(response)
        while time.monotonic() < until:
            part = await reader.next()
            assert isinstance(part, aiohttp.BodyPartReader)
            data = await part.read()
            assert data[:2] == b"\xff\xd8"
            frames += 1
    return frames


async def native_viewer(port: int, until: float) -> int:
    """A native client from the protocol module alone: credits, one frame at a time."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = Connection(Role.CLIENT)
    frames = 0
    try:
        writer.write(conn.send(Hello(credit_window=2)))
        while time.monotonic() < until:
            for event in conn.receive_data(await reader.read(65536)):
                if isinstance(event, StreamInfo):
                    assert (event.width, event.height) in ((WIDTH, HEIGHT), (0, 0))
                elif isinstance(event, Frame):
                    frames += 1
                    writer.write(conn.send(Credit(1, event.seq)))
                elif isinstance(event, Ping):
                    writer.write(conn.send(Pong(event.token)))
    finally:
        writer.close()
        await writer.wait_closed()
    return frames


def test_twenty_http_and_five_native_viewers_share_one_encode(running_server: Any) -> None:
    fps, window_s = 10, 3.0
    server = running_server("test", fps=fps, width=WIDTH, height=HEIGHT)

    async def watch() -> tuple[list[int], list[int], dict[str, Any], dict[str, Any]]:
        until = time.monotonic() + 1.0 + window_s
        async with aiohttp.ClientSession() as session:
            http = [
                asyncio.ensure_future(http_viewer(session, server.http_url + "stream.mjpg", until))
                for _ in range(20)
            ]
            native = [asyncio.ensure_future(native_viewer(server.port, until)) for _ in range(5)]
            await asyncio.sleep(1.0)  # everyone connected and capture running
            before = server.status()
            await asyncio.sleep(window_s)
            after = server.status()
            return await asyncio.gather(*http), await asyncio.gather(*native), before, after

    # In a thread of its own: Playwright's sync API keeps an event loop
    # running in this one while the module's browser is open.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        result = pool.submit(asyncio.run, watch()).result(timeout=30)
    http_counts, native_counts, before, after = result
    assert min(http_counts + native_counts) >= fps * window_s * 0.5, (http_counts, native_counts)
    kinds = sorted(v["kind"] for v in before["viewers"])
    assert kinds == ["http"] * 20 + ["native"] * 5

    def delta(key: str) -> int:
        return int(after[key]) - int(before[key])

    encoded = delta("frames_encoded")
    captured = delta("images_captured") - delta("images_dropped_before_encode")
    # One encode per captured image, however many viewers: about the source
    # rate over the window, not 25 times it.
    assert abs(encoded - captured) <= 2, (before, after)
    assert fps * window_s * 0.6 <= encoded <= fps * window_s * 1.4, encoded
    assert after["frames_published"] <= after["frames_encoded"]


# -- lossless mode: HTTP stays JPEG ---------------------------------------------------------


@pytest.mark.ffmpeg
@needs_ffmpeg
def test_png_mode_keeps_http_players_working(running_server: Any) -> None:
    server = running_server("test", fps=15, width=WIDTH, height=HEIGHT, codec="png")
    url = server.http_url + "stream.mjpg"
    quiet = ["-hide_banner", "-nostdin", "-v", "error", "-xerror"]
    decode = subprocess.run(
        ["ffmpeg", *quiet, "-f", "mpjpeg", "-i", url, "-frames:v", "3", "-f", "framecrc", "-"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert decode.returncode == 0, decode.stderr  # not "Unexpected Content-Type: image/png"
    assert f"#dimensions 0: {WIDTH}x{HEIGHT}" in decode.stdout.splitlines()

    with urllib.request.urlopen(server.http_url + "snapshot.jpg", timeout=10) as response:
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.read()[:2] == b"\xff\xd8"
    with urllib.request.urlopen(server.http_url + "snapshot.png", timeout=10) as response:
        assert response.headers["Content-Type"] == "image/png"
        assert response.read()[:8] == b"\x89PNG\r\n\x1a\n"


def test_snapshot_png_on_a_jpeg_server_says_how_to_get_one(running_server: Any) -> None:
    server = running_server("test", fps=15, width=WIDTH, height=HEIGHT)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(server.http_url + "snapshot.png", timeout=10)
    assert caught.value.code == 404
    assert "--png" in caught.value.read().decode()
