"""A thin link for tests, without root: a TCP proxy that forwards at most N bytes/s.

Only the server -> client direction is throttled (that is where frames flow).
The proxy's sockets have small buffers, as a shaped link has a short queue, so
a backlog builds up where it would on a real thin link: in the sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from camstream.bus.loop_thread import LoopThread

_CHUNK = 8192
_SOCKET_BUFFER = 32 * 1024


class ThinLink:
    def __init__(self, upstream_port: int, rate_bytes_s: float) -> None:
        self.upstream_port = upstream_port
        self.rate_bytes_s = rate_bytes_s
        self.port = 0
        self._thread = LoopThread("thin-link")
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def __enter__(self) -> ThinLink:
        self._thread.start()
        self.port = self._thread.call(self._start())
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._thread.call(self._stop())
        finally:
            self._thread.stop()

    async def _start(self) -> int:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._accept, sock=sock)
        port: int = sock.getsockname()[1]
        return port

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = socket.socket()
        upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        upstream.setblocking(False)
        await asyncio.get_running_loop().sock_connect(upstream, ("127.0.0.1", self.upstream_port))
        up_reader, up_writer = await asyncio.open_connection(sock=upstream)
        downstream = writer.get_extra_info("socket")
        downstream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
        self._writers += [writer, up_writer]
        for coro in (self._pump(reader, up_writer, None), self._pump(up_reader, writer, True)):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, throttle: bool | None
    ) -> None:
        try:
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
                if throttle:
                    await asyncio.sleep(len(data) / self.rate_bytes_s)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
