"""The camstream server: source → capture pipeline → hub → transports, on one port.

One listening socket serves both protocols. The first bytes of a connection
decide: ``CS`` is a native camstream client, anything else goes to the aiohttp
application (browsers, VLC, ffmpeg, ``cv2.VideoCapture("http://…")``).

Three ways to run it::

    Server(source="test").serve_forever()        # blocking, Ctrl-C to stop

    with Server(source=frames, port=0) as server:  # background thread
        print(server.url)

    async with Server(source="test") as server:    # inside your event loop
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from .capture import CapturePipeline
from .codec import make_encoder
from .config import ServerConfig
from .errors import ConfigError
from .frame import Frame
from .hub import Hub
from .protocol import GoodbyeCode, StreamInfo
from .server_status import build_status
from .sources import CameraSource, FileSource, Source, SourceSpec, UrlSource, open_default_source
from .sources import open_source as _open_source
from .tls import server_context
from .transports.listener import Listener, bind_listener, max_connections_for
from .transports.tcp import NativeSession, SessionContext
from .transports.web import WebContext, build_app

__all__ = ["Server"]

logger = logging.getLogger(__name__)

# How long stop() lets viewers read their goodbye before cutting connections.
_STOP_GRACE_S = 0.5
# aiohttp: how long shutdown waits for a request handler; idle keep-alive lifetime.
_HTTP_SHUTDOWN_TIMEOUT_S = 2.0
_HTTP_KEEPALIVE_S = 15.0


class Server:
    """Streams one source to any number of native and HTTP viewers.

    ``source`` is a camera index, a device path, a video file, a URL, ``"test"``,
    ``"auto"`` (camera 0, else the test pattern), or any iterable or callable
    yielding BGR ``uint8`` numpy images. Options are those of
    :class:`~camstream.config.ServerConfig`.
    """

    def __init__(
        self, source: SourceSpec = "auto", *, config: ServerConfig | None = None, **options: Any
    ) -> None:
        if config is not None and options:
            raise ConfigError("pass either config= or keyword options, not both")
        self.config = config if config is not None else ServerConfig(**options)
        self.source_note: str | None = None
        self.source = self._resolve_source(source)
        self.hub = Hub(on_demand=self._on_demand)
        self._pipeline = CapturePipeline(
            self.source,
            make_encoder(
                self.config.codec,
                quality=self.config.quality,
                png_compression=self.config.png_compression,
            ),
            self._frame_from_thread,
            on_end=self._end_from_thread,
            workers=self.config.encode_workers,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: Listener | None = None
        self._runner: web.AppRunner | None = None
        self._sessions: weakref.WeakSet[NativeSession] = weakref.WeakSet()
        self._capture_wanted = self.config.always_capture
        self._capture_task: asyncio.Task[None] | None = None
        self._started_at = time.monotonic()
        self._bound: tuple[str, int] | None = None
        self._thread: threading.Thread | None = None
        self._stop_requested: asyncio.Event | None = None

    def _resolve_source(self, spec: SourceSpec) -> Source:
        c = self.config
        if isinstance(spec, str) and spec == "auto":
            source, note = open_default_source(width=c.width, height=c.height, fps=c.fps)
            self.source_note = note
            return source
        return _open_source(spec, width=c.width, height=c.height, fps=c.fps, loop=c.loop)

    # -- addresses ---------------------------------------------------------

    @property
    def port(self) -> int:
        if self._bound is None:
            raise RuntimeError("the server is not started")
        return self._bound[1]

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def url(self) -> str:
        """The native address for ``camstream view`` and :class:`camstream.Client`."""
        scheme = "camstreams" if self.config.tls else "camstream"
        return f"{scheme}://{_url_host(self.host)}:{self.port}"

    @property
    def http_url(self) -> str:
        scheme = "https" if self.config.tls else "http"
        return f"{scheme}://{_url_host(self.host)}:{self.port}/"

    # -- async lifecycle ---------------------------------------------------

    async def start(self) -> None:
        """Check the source, bind the port and start accepting viewers."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        if isinstance(self.source, (CameraSource, FileSource, UrlSource)):
            await loop.run_in_executor(None, _probe, self.source)
        ssl_context: ssl.SSLContext | None = None
        if self.config.tls_cert is not None and self.config.tls_key is not None:
            ssl_context = server_context(self.config.tls_cert, self.config.tls_key)
        # The token reaches the HTTP routes through the config (config.token).
        app = build_app(WebContext(config=self.config, hub=self.hub, status=self.status))
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=_HTTP_SHUTDOWN_TIMEOUT_S,
            keepalive_timeout=_HTTP_KEEPALIVE_S,
        )
        await self._runner.setup()
        try:
            sock = bind_listener(self.config.host, self.config.port)
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        self._bound = (self.config.host, sock.getsockname()[1])
        self._listener = Listener(
            sock,
            native=self.new_native_session,
            http=self.new_http_session,
            ssl_context=ssl_context,
            handshake_timeout_s=self.config.handshake_timeout_s,
            max_connections=max_connections_for(self.config.max_viewers),
        )
        self._listener.start()
        self._started_at = time.monotonic()
        if self._capture_wanted:
            self._on_demand(True)

    async def stop(self) -> None:
        """Say goodbye to viewers, stop capture, release the source and the port.

        Bounded: connections that do not close by themselves within a second or
        two (a peer that stopped reading) are cut.
        """
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop_accepting()
        for session in list(self._sessions):
            session.goodbye(GoodbyeCode.SHUTTING_DOWN, "server shutting down")
        self.hub.end("server shutting down")
        if self._runner is not None:
            runner, self._runner = self._runner, None
            try:
                await runner.cleanup()
            except Exception:
                logger.exception("error while shutting the HTTP application down")
        if listener is not None:
            await listener.abort_all(_STOP_GRACE_S)
        if self._capture_task is not None:
            self._capture_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._capture_task
        await asyncio.get_running_loop().run_in_executor(None, self._pipeline.stop)

    @property
    def connection_count(self) -> int:
        """Open connections of any kind, including those still in a handshake."""
        return 0 if self._listener is None else self._listener.connection_count

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def serve(self, on_ready: Callable[[Server], None] | None = None) -> None:
        """Run until :meth:`request_stop` (or a signal in :meth:`serve_forever`)."""
        self._stop_requested = asyncio.Event()
        await self.start()
        try:
            if on_ready is not None:
                on_ready(self)
            await self._stop_requested.wait()
        finally:
            await self.stop()

    def request_stop(self) -> None:
        """Ask :meth:`serve` to return; safe from any thread."""
        if self._loop is not None and self._stop_requested is not None:
            self._loop.call_soon_threadsafe(self._stop_requested.set)

    def serve_forever(self, on_ready: Callable[[Server], None] | None = None) -> None:
        """Serve until Ctrl-C or SIGTERM; a second Ctrl-C exits at once."""

        async def main() -> None:
            loop = asyncio.get_running_loop()
            signals = 0

            def on_signal() -> None:
                nonlocal signals
                signals += 1
                if signals > 1:
                    sys.stderr.write("camstream: forced exit\n")
                    os._exit(130)
                self.request_stop()

            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, on_signal)
            await self.serve(on_ready)

        asyncio.run(main())

    # -- background-thread lifecycle (sync context manager) -----------------

    def __enter__(self) -> Server:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)
                loop.close()
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
                loop.run_until_complete(self.stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="camstream-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread is None or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None

    # -- wiring ------------------------------------------------------------

    def new_native_session(
        self, accepted_at: float, on_lost: Callable[[], None] | None = None
    ) -> NativeSession:
        ctx = SessionContext(config=self.config, hub=self.hub, stream_info=self._stream_info)
        session = NativeSession(ctx, accepted_at=accepted_at, on_lost=on_lost)
        self._sessions.add(session)
        return session

    def new_http_session(self) -> asyncio.Protocol | None:
        """aiohttp's protocol for one connection; ``None`` once the server is stopping."""
        if self._runner is None or self._runner.server is None:
            return None
        protocol: asyncio.Protocol = self._runner.server()
        return protocol

    def _stream_info(self) -> StreamInfo:
        latest = self.hub.latest
        width, height = (latest.width, latest.height) if latest else (0, 0)
        return StreamInfo(
            width=width,
            height=height,
            codec=self.config.codec,
            fps=self.source.nominal_fps or 0.0,
            server_name=self.config.server_name,
        )

    def _frame_from_thread(self, frame: Frame) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.hub.publish, frame)

    def _end_from_thread(self, reason: str) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._source_ended, reason)

    def _source_ended(self, reason: str) -> None:
        # Even with always_capture, an ended file waits for the next viewer to replay it.
        self.hub.end(reason)
        self._capture_wanted = False

    def _on_demand(self, wanted: bool) -> None:
        self._capture_wanted = wanted or self.config.always_capture
        if self._loop is None:
            return  # not started yet; start() honours _capture_wanted
        if self._capture_task is None or self._capture_task.done():
            self._capture_task = self._loop.create_task(self._reconcile_capture())

    async def _reconcile_capture(self) -> None:
        try:
            await self._reconcile_capture_once()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Never let a failing start/stop kill the loop or go unseen; the next
            # viewer arriving or leaving tries again.
            logger.exception("starting or stopping capture failed")

    async def _reconcile_capture_once(self) -> None:
        # The pipeline's own thread is the truth: a file that ended stopped it
        # without us, and the next viewer must be able to start it again.
        loop = asyncio.get_running_loop()
        while True:
            running = self._pipeline.running
            if self._capture_wanted and not running:
                await loop.run_in_executor(None, self._pipeline.start)
            elif not self._capture_wanted and running:
                await asyncio.sleep(self.config.capture_linger_s)
                if not self._capture_wanted:
                    await loop.run_in_executor(None, self._pipeline.stop)
            else:
                return

    # -- status ------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """A JSON-ready snapshot of the source, the pipeline and every viewer."""
        return build_status(
            config=self.config,
            source=self.source,
            pipeline=self._pipeline,
            hub=self.hub,
            capturing=self._pipeline.running,
            uptime_s=time.monotonic() - self._started_at,
            connections=self.connection_count,
        )


def _probe(source: Source) -> None:
    """Open and close the source once, so a bad camera or file fails at start-up."""
    source.open()
    source.close()


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):  # a wildcard bind, shown as a reachable address
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
