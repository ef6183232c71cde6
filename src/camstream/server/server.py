"""The camstream server: source → capture pipeline → hub → transports, on one port.

One listening socket serves both protocols. The first bytes of a connection
decide: ``CS`` is a native camstream client, anything else goes to the aiohttp
application (browsers, VLC, ffmpeg, ``cv2.VideoCapture("http://…")``).

Three ways to run it::

    Server(source="test").serve_forever()        # blocking, Ctrl-C to stop

    with Server(source=frames, port=0) as server:  # background thread
        print(server.url)
        server.serve_forever()                     # optional: block until Ctrl-C

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

from ..config import ServerConfig
from ..errors import ConfigError, UsageError
from ..sources import Source, SourceSpec, open_default_source
from ..sources import open_source as _open_source
from ..wire.protocol import GoodbyeCode
from ..wire.tls import server_context
from .hub import Hub
from .producer import DEFAULT_CAMERA, Producer
from .status import server_status
from .transports.edge import new_request_handler
from .transports.httplog import server_logger
from .transports.listener import Listener, bind_listener, max_connections_for
from .transports.native import NativeSession, SessionContext
from .transports.peer_log import BAD_PEERS
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
        self.producer = Producer(DEFAULT_CAMERA, self._resolve_source(source), self.config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: Listener | None = None
        self._runner: web.AppRunner | None = None
        self._sessions: weakref.WeakSet[NativeSession] = weakref.WeakSet()
        self._started_at = time.monotonic()
        self._bound: tuple[str, int] | None = None
        self._thread: threading.Thread | None = None
        self._stop_requested: asyncio.Event | None = None
        self._foreground_stop = threading.Event()
        self._peer_log_task: asyncio.Task[None] | None = None

    @property
    def source(self) -> Source:
        return self.producer.source

    @property
    def hub(self) -> Hub:
        return self.producer.hub

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
            raise UsageError("the server is not started: use it in a with block or call start()")
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
        if self._listener is not None:
            raise UsageError("this server is already running; start it once")
        self._loop = asyncio.get_running_loop()
        await self.producer.start()
        ssl_context: ssl.SSLContext | None = None
        if self.config.tls_cert is not None and self.config.tls_key is not None:
            ssl_context = server_context(self.config.tls_cert, self.config.tls_key)
        # The token reaches the HTTP routes through the config (config.token).
        app = build_app(
            WebContext(
                config=self.config,
                hub=self.hub,
                status=self.status,
                find_camera=self._find_stream,
                renditions=self.producer.renditions,
                source_fps=lambda: self.producer.stream_info().fps,
            )
        )
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            # aiohttp's error log would quote a bad request line, ?token= included.
            logger=server_logger(),
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
            max_per_address=self.config.max_connections_per_address,
            write_timeout_s=self.config.write_timeout_s,
            send_buffer_bytes=self.config.http_send_buffer_bytes,
        )
        self._listener.start()
        self._started_at = time.monotonic()
        # Bad peers are counted, not logged one by one: one summary per minute.
        self._peer_log_task = asyncio.get_running_loop().create_task(BAD_PEERS.run())
        self.producer.start_capture_if_wanted()

    async def stop(self) -> None:
        """Say goodbye to viewers, stop capture, release the source and the port.

        Bounded: connections that do not close by themselves within a second or
        two (a peer that stopped reading) are cut.
        """
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop_accepting()
        if self._peer_log_task is not None:
            self._peer_log_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._peer_log_task
            self._peer_log_task = None
            BAD_PEERS.flush()
        for session in list(self._sessions):
            session.goodbye(GoodbyeCode.SHUTTING_DOWN, "server shutting down")
        self.producer.end("server shutting down")
        if self._runner is not None:
            runner, self._runner = self._runner, None
            try:
                await runner.cleanup()
            except Exception:
                logger.exception("error while shutting the HTTP application down")
        if listener is not None:
            await listener.abort_all(_STOP_GRACE_S)
        await self.producer.stop()

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
        """Run until :meth:`request_stop` (or a signal in :meth:`serve_forever`).

        Inside ``async with server:`` it only waits, and the block stops the server.
        """
        self._stop_requested = asyncio.Event()
        if self._foreground_stop.is_set():  # asked to stop before we got here
            self._stop_requested.set()
        started_here = self._listener is None
        if started_here:
            await self.start()
        try:
            if on_ready is not None:
                on_ready(self)
            await self._stop_requested.wait()
        finally:
            if started_here:
                await self.stop()

    def request_stop(self) -> None:
        """Ask :meth:`serve` or :meth:`serve_forever` to return; safe from any thread."""
        self._foreground_stop.set()
        if self._loop is not None and self._stop_requested is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._stop_requested.set)

    def serve_forever(self, on_ready: Callable[[Server], None] | None = None) -> None:
        """Serve until Ctrl-C or SIGTERM (or :meth:`request_stop`); a second Ctrl-C exits at once.

        Works on its own, and inside ``with Server(...) as server:``, where it
        blocks until Ctrl-C and leaves the stopping to the ``with`` block.
        """
        if self._thread is not None:
            if on_ready is not None:
                on_ready(self)
            self._wait_in_foreground()
            return
        if self._loop is not None and self._loop.is_running():
            raise UsageError(
                "serve_forever() blocks its thread; inside async code use 'await server.serve()' "
                "or 'async with server:'"
            )

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

    def _wait_in_foreground(self) -> None:
        """Block the calling thread until Ctrl-C, SIGTERM or request_stop()."""
        presses = 0

        def on_signal(signum: int, _frame: object) -> None:
            nonlocal presses
            presses += 1
            if presses > 1:
                sys.stderr.write("camstream: forced exit\n")
                os._exit(130)
            self._foreground_stop.set()

        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            # Short waits, so the main thread runs Python signal handlers promptly.
            while not self._foreground_stop.wait(0.2):
                if self._thread is None or not self._thread.is_alive():
                    return
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # -- background-thread lifecycle (sync context manager) -----------------

    def __enter__(self) -> Server:
        if self._thread is not None or self._listener is not None:
            raise UsageError("this server is already running; enter 'with' once")
        self._foreground_stop.clear()
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
        self,
        accepted_at: float,
        on_lost: Callable[[], None] | None = None,
        on_trusted: Callable[[], None] | None = None,
    ) -> NativeSession:
        ctx = SessionContext(
            config=self.config, find_stream=self._find_stream, viewer_count=self.hub.count
        )
        session = NativeSession(
            ctx, accepted_at=accepted_at, on_lost=on_lost, on_trusted=on_trusted
        )
        self._sessions.add(session)
        return session

    def _find_stream(self, name: str) -> Producer | None:
        # "" is the first camera: what camstream://host:port (no path) has always meant.
        if name in ("", self.producer.name):
            return self.producer
        return None

    def new_http_session(self) -> asyncio.Protocol | None:
        """aiohttp's protocol for one connection; ``None`` once the server is stopping."""
        if self._runner is None or self._runner.server is None:
            return None
        return new_request_handler(self._runner.server)

    # -- status ------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """A JSON-ready snapshot of the source, the pipeline and every viewer."""
        return server_status(
            config=self.config,
            uptime_s=time.monotonic() - self._started_at,
            connections=self.connection_count,
            camera=self.producer.status(),
        )


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):  # a wildcard bind, shown as a reachable address
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
