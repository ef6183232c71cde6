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
import errno
import os
import signal
import socket
import ssl
import sys
import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from ._version import __version__
from .capture import CapturePipeline
from .codec import make_encoder
from .config import ServerConfig
from .errors import AddressInUseError, ConfigError
from .frame import Frame
from .hub import Hub
from .protocol import MAGIC, GoodbyeCode, StreamInfo
from .sources import CameraSource, FileSource, Source, SourceSpec, UrlSource, open_default_source
from .sources import open_source as _open_source
from .tls import server_context
from .transports.tcp import NativeSession, SessionContext
from .transports.web import WebContext, build_app

__all__ = ["Server"]

_SNIFF_BYTES = len(MAGIC)


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening socket with SO_REUSEADDR, so a restart never hits TIME_WAIT."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
            raise AddressInUseError(
                f"port {port} on {host} is already in use by another process; "
                "stop that process or choose another port with --port"
            ) from None
        if exc.errno == errno.EACCES:
            raise AddressInUseError(
                f"permission denied binding {host}:{port}; ports below 1024 need root, "
                "choose another port with --port"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


class _Sniffer(asyncio.Protocol):
    """Reads the first bytes of a connection, then hands it to the right protocol."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        timeout = self._server.config.handshake_timeout_s
        self._timer = asyncio.get_running_loop().call_later(timeout, transport.close)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._buffer.startswith(MAGIC):
            self._switch(self._server.new_native_session())
        elif len(self._buffer) >= _SNIFF_BYTES or not MAGIC.startswith(self._buffer):
            self._switch(self._server.new_http_session())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _switch(self, protocol: asyncio.Protocol) -> None:
        assert self._transport is not None
        if self._timer is not None:
            self._timer.cancel()
        self._transport.set_protocol(protocol)
        protocol.connection_made(self._transport)
        protocol.data_received(self._buffer)


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
        self._listener: asyncio.Server | None = None
        self._runner: web.AppRunner | None = None
        self._sessions: weakref.WeakSet[NativeSession] = weakref.WeakSet()
        self._capture_wanted = self.config.always_capture
        self._capture_running = False
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
        sock = bind_listener(self.config.host, self.config.port)
        self._bound = (self.config.host, sock.getsockname()[1])
        ssl_context: ssl.SSLContext | None = None
        if self.config.tls_cert is not None and self.config.tls_key is not None:
            ssl_context = server_context(self.config.tls_cert, self.config.tls_key)
        app = build_app(WebContext(config=self.config, hub=self.hub, status=self.status))
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        self._listener = await loop.create_server(
            lambda: _Sniffer(self), sock=sock, ssl=ssl_context
        )
        self._started_at = time.monotonic()
        if self._capture_wanted:
            self._on_demand(True)

    async def stop(self) -> None:
        """Say goodbye to viewers, stop capture, release the source and the port."""
        if self._listener is not None:
            self._listener.close()
        for session in list(self._sessions):
            session.goodbye(GoodbyeCode.SHUTTING_DOWN, "server shutting down")
        self.hub.end("server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None
        if self._capture_task is not None:
            self._capture_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._capture_task
        await asyncio.get_running_loop().run_in_executor(None, self._pipeline.stop)
        self._capture_running = False

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
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None

    # -- wiring ------------------------------------------------------------

    def new_native_session(self) -> NativeSession:
        session = NativeSession(
            SessionContext(config=self.config, hub=self.hub, stream_info=self._stream_info)
        )
        self._sessions.add(session)
        return session

    def new_http_session(self) -> asyncio.Protocol:
        assert self._runner is not None and self._runner.server is not None
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
                loop.call_soon_threadsafe(self.hub.end, reason)

    def _on_demand(self, wanted: bool) -> None:
        self._capture_wanted = wanted or self.config.always_capture
        if self._loop is None:
            return  # not started yet; start() honours _capture_wanted
        if self._capture_task is None or self._capture_task.done():
            self._capture_task = self._loop.create_task(self._reconcile_capture())

    async def _reconcile_capture(self) -> None:
        loop = asyncio.get_running_loop()
        while self._capture_running != self._capture_wanted:
            if self._capture_wanted:
                self.hub.restart()
                await loop.run_in_executor(None, self._pipeline.start)
                self._capture_running = True
            else:
                await asyncio.sleep(self.config.capture_linger_s)
                if self._capture_wanted:
                    continue
                await loop.run_in_executor(None, self._pipeline.stop)
                self._capture_running = False

    # -- status ------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """A JSON-ready snapshot of the source, the pipeline and every viewer."""
        stats = self._pipeline.stats
        latest = self.hub.latest
        viewers = [vars_of(v.stats()) for v in self.hub.viewers]
        return {
            "server": self.config.server_name,
            "version": __version__,
            "uptime_s": round(time.monotonic() - self._started_at, 3),
            "source": self.source.description,
            "codec": self.config.codec.name.lower(),
            "quality": self.config.quality,
            "width": latest.width if latest else None,
            "height": latest.height if latest else None,
            "capturing": self._capture_running,
            "signal_lost": self._pipeline.signal_lost,
            "ended": self.hub.ended_reason,
            "capture_fps": round(stats.capture_fps, 2),
            "encode_fps": round(stats.encode_fps, 2),
            "publish_fps": round(self.hub.published.rate(), 2),
            "images_captured": stats.images_captured,
            "frames_encoded": stats.frames_encoded,
            "images_dropped_before_encode": stats.images_dropped,
            "frames_published": self.hub.frames_published,
            "source_failures": stats.source_failures,
            "last_encode_ms": round(stats.last_encode_ms, 3),
            "latest_seq": latest.seq if latest else None,
            "latest_age_s": round(latest.age_s(), 4) if latest else None,
            "viewer_count": len(viewers),
            "viewers": viewers,
        }


def vars_of(stats: object) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in stats.__slots__}  # type: ignore[attr-defined]


def _probe(source: Source) -> None:
    """Open and close the source once, so a bad camera or file fails at start-up."""
    source.open()
    source.close()


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind, shown as reachable
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
