"""camstream.VideoCapture: the cv2.VideoCapture look-alike, over the network."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import cv2
import numpy as np
import pytest
from aiohttp import web

import camstream
from camstream.client.videocapture import native_address_for
from camstream.server.server import Server


def test_http_addresses_map_to_the_same_port_natively() -> None:
    assert native_address_for("http://h:9000/stream.mjpg") == "camstream://h:9000"
    assert native_address_for("https://h/") == "camstreams://h:443"
    assert native_address_for("http://h/?token=a b") == "camstream://h:80?token=a+b"
    assert native_address_for("http://[::1]:8080/") == "camstream://[::1]:8080"


def test_the_servers_http_url_opens_like_cv2_would_and_fps_is_the_streams(
    running_server: Callable[..., Server],
) -> None:
    server = running_server("test", width=320, height=240, fps=20)
    capture = camstream.VideoCapture(f"{server.http_url}stream.mjpg", timeout_s=10)
    try:
        assert capture.isOpened(), capture.last_error
        ok, image = capture.read()
        assert ok and image is not None and image.shape == (240, 320, 3)
        assert capture.get(cv2.CAP_PROP_FPS) == 20.0
    finally:
        capture.release()


def _frames() -> Iterator[np.ndarray]:
    image = np.zeros((48, 64, 3), np.uint8)
    while True:
        image += 1  # uint8 wraps around
        yield image


def test_fps_of_a_source_without_a_nominal_rate_is_the_measured_rate(
    running_server: Callable[..., Server],
) -> None:
    server = running_server(_frames(), fps=25)  # an iterable: no nominal fps to announce
    capture = camstream.VideoCapture(server.url, timeout_s=10)
    try:
        for _ in range(30):
            assert capture.read()[0], capture.last_error
        assert 5.0 < capture.get(cv2.CAP_PROP_FPS) <= 40.0
    finally:
        capture.release()


@pytest.fixture
def other_mjpeg_server() -> Iterator[str]:
    """Some other HTTP server on 127.0.0.1: not camstream."""
    import asyncio
    import threading

    loop = asyncio.new_event_loop()
    app = web.Application()

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app.router.add_get("/video", hello)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/video"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.run_until_complete(runner.cleanup())
        loop.close()


def test_another_http_server_gets_a_clear_error_that_says_what_to_use(
    other_mjpeg_server: str,
) -> None:
    capture = camstream.VideoCapture(other_mjpeg_server, timeout_s=5, reconnect=False)
    assert not capture.isOpened()
    assert capture.last_error is not None
    assert "cv2.VideoCapture(url)" in capture.last_error
    assert capture.read() == (False, None)
