"""Shared fixtures.

``running_server``
    A factory that starts a real :class:`camstream.Server` in a background
    thread (its sync context manager) on ``127.0.0.1`` and an ephemeral port,
    and stops every server it started when the test ends, pass or fail::

        def test_something(running_server):
            server = running_server("test", fps=10, width=320, height=240)
            urllib.request.urlopen(server.http_url + "status")   # HTTP
            Client(server.url)                                     # native

    The first argument is any source ``Server`` accepts (``"test"``, a file, an
    iterable of BGR images, ...); keywords are ``ServerConfig`` options. Keep
    resolutions small (320x240) unless a size matters: CI machines are shared.

``browser`` / ``page``
    Headless Debian Chromium through Playwright (one browser per test module,
    a fresh context per test); skipped when ``/usr/bin/chromium`` or
    Playwright is missing. ``wait_state(page, "live")`` waits for the viewer
    page's state.

``web_harness``
    The HTTP app (``transports.web.build_app``) alone, over a bare
    :class:`~camstream.server.hub.Hub` whose frames the test publishes by hand. It
    makes frame timing exact (e.g. "one frame, then nothing") without a
    capture pipeline. See :class:`WebHarness`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

import cv2
import numpy as np
import pytest
from aiohttp import web

from camstream.config import ServerConfig
from camstream.frame import Codec, Frame
from camstream.server.hub import Hub
from camstream.server.transports.web import WebContext, build_app

# Skips fail in CI; an undeclared ERROR log from camstream fails any test (strictness.py).
from strictness import (  # noqa: F401
    no_unexpected_error_logs,
    pytest_collectreport,
    pytest_runtest_makereport,
)

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from playwright.sync_api import Browser, Page

    from camstream.server.server import Server

T = TypeVar("T")


@pytest.fixture
def running_server() -> Iterator[Callable[..., Server]]:
    """Factory: ``running_server(source="test", **config_options) -> Server`` (started)."""
    # Imported here, not at module level, so that tests which do not need a
    # server still run while the server's dependencies are broken.
    from camstream.server.server import Server

    with contextlib.ExitStack() as stack:

        def start(source: Any = "test", **options: Any) -> Server:
            options.setdefault("host", "127.0.0.1")
            options.setdefault("port", 0)
            return stack.enter_context(Server(source, **options))

        yield start


def jpeg_frame(
    seq: int,
    *,
    width: int = 320,
    height: int = 240,
    placeholder: bool = False,
    noise: bool = False,
) -> Frame:
    """A real JPEG whose content depends on ``seq`` (so successive frames differ).

    ``noise`` makes it incompressible (about 3 bytes per pixel), for tests that
    need frames bigger than the socket buffers.
    """
    if noise:
        image = np.random.default_rng(seq).integers(0, 256, (height, width, 3), np.uint8)
    else:
        image = np.zeros((height, width, 3), np.uint8)
        image[:, :] = ((seq * 37) % 256, (seq * 91) % 256, 128)
    cv2.putText(image, str(seq), (10, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 2, (255,) * 3, 3)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return Frame(seq, time.time_ns(), width, height, Codec.JPEG, data.tobytes(), placeholder)


class WebHarness:
    """The web app on its own event loop thread, fed by frames the test publishes.

    ``status`` is what ``/status`` returns (and what ``/healthz`` judges); tests
    may change it. ``on_demand`` records the hub's capture wake-ups; if
    ``auto_fps`` is set, a publisher runs at that rate while viewers are attached
    (like on-demand capture).
    """

    def __init__(self, config: ServerConfig, auto_fps: float | None = None) -> None:
        self.config = config
        self.auto_fps = auto_fps
        self.status: dict[str, Any] = {"capturing": True, "signal_lost": False, "source": "fake"}
        self.on_demand: list[bool] = []
        self.seq = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._publisher: asyncio.Task[None] | None = None
        self.hub = Hub(on_demand=self._on_demand)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = 10) -> T:
        """Run ``coro`` on the harness loop and return its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout_s)

    def publish(self, frame: Frame | None = None) -> Frame:
        """Publish ``frame`` (default: the next numbered JPEG) and return it."""
        if frame is None:
            self.seq += 1
            frame = jpeg_frame(self.seq)
        published = frame

        async def run() -> None:
            self.hub.publish(published)

        self.call(run())
        return published

    def end(self, reason: str) -> None:
        async def run() -> None:
            self.hub.end(reason)

        self.call(run())

    def viewer_count(self) -> int:
        async def run() -> int:
            return self.hub.count()

        return self.call(run())

    def wait_viewers(self, count: int, timeout_s: float = 5) -> None:
        deadline = time.monotonic() + timeout_s
        while self.viewer_count() != count:
            have = self.viewer_count()
            assert time.monotonic() < deadline, f"expected {count} viewers, have {have}"
            time.sleep(0.02)

    def start(self) -> WebHarness:
        self._thread.start()

        async def run() -> int:
            context = WebContext(config=self.config, hub=self.hub, status=lambda: self.status)
            app = build_app(context)
            self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await self._runner.setup()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            # SockSite owns the socket from here on and closes it on cleanup.
            await web.SockSite(self._runner, sock).start()
            return port

        self.port = self.call(run())
        return self

    def stop(self) -> None:
        """Stop the app (as the server does: end the hub, then clean up); idempotent."""
        if self._loop.is_closed():
            return

        async def run() -> None:
            if self._publisher is not None:
                self._publisher.cancel()
            self.hub.end("harness stopped")
            if self._runner is not None:
                await self._runner.cleanup()

        try:
            self.call(run(), timeout_s=15)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()

    def _on_demand(self, wanted: bool) -> None:
        self.on_demand.append(wanted)
        if self.auto_fps is None:
            return
        if wanted and self._publisher is None:
            self._publisher = self._loop.create_task(self._publish_forever(self.auto_fps))
        elif not wanted and self._publisher is not None:
            self._publisher.cancel()
            self._publisher = None

    async def _publish_forever(self, fps: float) -> None:
        while True:
            self.seq += 1
            self.hub.publish(jpeg_frame(self.seq))
            await asyncio.sleep(1 / fps)


@pytest.fixture
def web_harness() -> Iterator[Callable[..., WebHarness]]:
    """Factory: ``web_harness(auto_fps=None, **config_options) -> WebHarness`` (started)."""
    harnesses: list[WebHarness] = []

    def start(auto_fps: float | None = None, **options: Any) -> WebHarness:
        harness = WebHarness(ServerConfig(**options), auto_fps=auto_fps)
        harnesses.append(harness)
        return harness.start()

    yield start
    for harness in harnesses:
        harness.stop()


class MjpegReader:
    """A raw-socket HTTP/1.0 MJPEG client that checks the wire format as it reads.

    HTTP/1.0 keeps the body free of chunked encoding, so the bytes read are
    exactly the multipart bytes the server wrote. ``receive_buffer_bytes``
    shrinks SO_RCVBUF, as a slow client on a slow link would have.
    """

    def __init__(
        self,
        port: int,
        path: str = "/stream.mjpg",
        *,
        receive_buffer_bytes: int | None = None,
        request_headers: dict[str, str] | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer_bytes is not None:
            # Before connect(), so the window scale is negotiated for it.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
        self.sock.settimeout(timeout_s)
        self.sock.connect(("127.0.0.1", port))
        extra = "".join(f"{k}: {v}\r\n" for k, v in (request_headers or {}).items())
        self.sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
        self.buffer = b""
        head = self._read_until(b"\r\n\r\n").decode("latin1").split("\r\n")
        self.status = int(head[0].split()[1])
        self.headers = {
            k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in head[1:])
        }
        boundary = self.headers.get("content-type", "").partition("boundary=")[2]
        self.delimiter = f"--{boundary}\r\n".encode()

    def _fill(self, timeout_s: float | None = None) -> None:
        if timeout_s is not None:
            self.sock.settimeout(timeout_s)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the stream")
        self.buffer += chunk

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        data, _, self.buffer = self.buffer.partition(marker)
        return data

    def _read_exact(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._fill()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def peek(self, count: int, timeout_s: float) -> bytes:
        """The next ``count`` bytes without consuming them; fewer if they do not arrive in time."""
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(TimeoutError):
            while len(self.buffer) < count and time.monotonic() < deadline:
                self._fill(max(0.01, deadline - time.monotonic()))
        self.sock.settimeout(5.0)
        return self.buffer[:count]

    def read_part(self) -> tuple[dict[str, str], bytes]:
        """One part: (lower-cased headers, body). Checks the delimiter before it."""
        # The CRLF that ends the previous body belongs to this delimiter.
        if self.peek(2, 5.0) == b"\r\n":
            self._read_exact(2)
        line = self._read_exact(len(self.delimiter))
        assert line == self.delimiter, f"expected the delimiter, got {line!r}"
        head = self._read_until(b"\r\n\r\n").decode("ascii").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head)}
        body = self._read_exact(int(headers["content-length"]))
        return headers, body

    def read_body_bytes(self, count: int) -> bytes:
        return self._read_exact(count)

    def close(self, *, reset: bool = False) -> None:
        if reset:  # RST instead of FIN, like a crashed or killed client
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


@pytest.fixture
def open_mjpeg() -> Iterator[Callable[..., MjpegReader]]:
    """Factory: ``open_mjpeg(port, path="/stream.mjpg", **options) -> MjpegReader``.

    Every reader is closed when the test ends.
    """
    readers: list[MjpegReader] = []

    def open_(port: int, path: str = "/stream.mjpg", **options: Any) -> MjpegReader:
        reader = MjpegReader(port, path, **options)
        readers.append(reader)
        return reader

    yield open_
    for reader in readers:
        reader.close()


# -- Chromium (Playwright) ------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module (not per session: Playwright's sync
    API keeps an event loop running in the main thread while it is open)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context (its own storage), closed after the test."""
    context = browser.new_context(viewport={"width": 640, "height": 560})
    try:
        yield context.new_page()
    finally:
        context.close()


def wait_state(page: Page, state: str, timeout_s: float = 10) -> None:
    """Wait until the viewer page's ``body[data-state]`` is ``state``."""
    # A function, not an expression string: the page's CSP forbids eval.
    page.wait_for_function(
        f"() => document.body.dataset.state === {json.dumps(state)}", timeout=timeout_s * 1000
    )
