"""The asyncio client: the same behaviour as :class:`camstream.Client`, on an event loop.

One background task owns the connection: it grants credit for each frame as
soon as its bytes are complete and keeps only the newest frame in a slot, with
an :class:`asyncio.Event` to wake readers. Decoding happens in :meth:`read`, in
a worker thread (OpenCV releases the GIL), so the loop keeps receiving.
The protocol logic is shared with the thread client via
:mod:`camstream.client.session`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

from ..config import ClientConfig, StreamAddress
from ..errors import CamstreamError, CamstreamTimeoutError, ConnectionClosed, UsageError
from ..frame import Frame
from ..wire.protocol import GoodbyeCode, StreamInfo
from .session import (
    RECV_BUFFER_BYTES,
    Session,
    connect_error,
    lost_error,
    resolve_target,
)
from .tracker import Backoff, Tracker
from .values import ClientState, ClientStats, Image, ReceivedFrame

__all__ = ["AsyncClient"]

_CLOSE_TIMEOUT_S = 1.0  # how long close() waits for the goodbye to flush (TLS close_notify)


class AsyncClient:
    """Receives a camstream stream on the running event loop.

    Takes the same arguments as :class:`~camstream.client.threaded.Client`::

        async with AsyncClient("camstream://127.0.0.1:8080") as client:
            async for received in client:
                show(received.image)
    """

    def __init__(
        self,
        address: str | StreamAddress,
        *,
        config: ClientConfig | None = None,
        **overrides: Any,
    ) -> None:
        self._target = resolve_target(address, config, overrides)
        self._tracker = Tracker()
        self._changed = asyncio.Event()  # set whenever a frame, a state or an error arrives
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Cancellation wakes the task for close(), so the tick only paces heartbeats.
        self._tick_s = self._target.config.heartbeat_interval_s / 2

    # -- lifecycle ---------------------------------------------------------

    @property
    def url(self) -> str:
        return self._target.address.url

    @property
    def config(self) -> ClientConfig:
        return self._target.config

    async def open(self) -> AsyncClient:
        """Start connecting in a background task; returns at once."""
        if self._closing:
            raise UsageError("this client was closed; create a new one")
        if self._task is None:
            self._tracker.state = "connecting"
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def close(self) -> None:
        """Say goodbye, close the connection and end the task. Safe to call twice."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # asyncio.wait, unlike awaiting the task, neither raises the task's
            # CancelledError nor swallows a cancellation of close() itself.
            await asyncio.wait({task})
        self._tracker.discard()
        self._tracker.finish(ConnectionClosed("client closed", GoodbyeCode.NORMAL), clean=True)
        self._changed.set()

    async def __aenter__(self) -> AsyncClient:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def wait_connected(self, timeout_s: float | None = None) -> StreamInfo:
        """Wait until streaming; raise the stored error, or TimeoutError."""
        tracker = self._tracker
        try:
            await self._wait_for(
                lambda: tracker.state == "streaming" or tracker.finished, timeout_s
            )
        except asyncio.TimeoutError:
            raise CamstreamTimeoutError(
                f"not connected to {self.url} within {timeout_s} s "
                f"(state {tracker.state}, last error: {tracker.last_error or 'none'})"
            ) from None
        if tracker.state == "streaming" and tracker.stream_info is not None:
            return tracker.stream_info
        assert tracker.failure is not None
        raise tracker.failure

    # -- reading -----------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self._tracker.state

    @property
    def stream_info(self) -> StreamInfo | None:
        return self._tracker.stream_info

    @property
    def stats(self) -> ClientStats:
        return self._tracker.stats()

    async def read_received(self, timeout_s: float | None = None) -> ReceivedFrame:
        """The newest frame not returned before; see :meth:`Client.read_received`."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        tracker = self._tracker
        while True:
            received = tracker.take_or_raise()
            if received is not None:
                return received
            if self._task is None:
                raise UsageError("client is not open: call open() or use 'async with'")
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise CamstreamTimeoutError(
                    f"no new frame within {timeout_s} s (state {tracker.state})"
                )
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def read_frame(self, timeout_s: float | None = None) -> Frame:
        return (await self.read_received(timeout_s)).frame

    async def read(self, timeout_s: float | None = None) -> Image:
        """The newest image, decoded in a worker thread so the loop keeps receiving."""
        received = await self.read_received(timeout_s)
        return await asyncio.to_thread(lambda: received.image)

    async def __aiter__(self) -> AsyncIterator[ReceivedFrame]:
        """Yield frames as they come; ends at end of stream or close()."""
        while True:
            try:
                received = await self.read_received()
            except ConnectionClosed as exc:
                if self._tracker.ends_iteration(exc):
                    return
                raise
            yield received

    async def _wait_for(self, predicate: Callable[[], bool], timeout_s: float | None) -> None:
        async def wait() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout_s)

    # -- the connection task -----------------------------------------------

    async def _run(self) -> None:
        config = self._target.config
        backoff = Backoff(config.reconnect_initial_s, config.reconnect_max_s)
        while not self._closing:
            try:
                await self._connect_and_stream(backoff)
            except Exception as exc:  # every failure is either retried or handed to the reader
                if self._closing:
                    return
                delay = self._tracker.after_failure(exc, backoff, reconnect=config.reconnect)
                self._changed.set()
                if delay is None:
                    return
                await asyncio.sleep(delay)

    async def _connect_and_stream(self, backoff: Backoff) -> None:
        address, config = self._target.address, self._target.config
        context = self._target.ssl_context
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    address.host,
                    address.port,
                    ssl=context,
                    server_hostname=address.host if context else None,
                    limit=RECV_BUFFER_BYTES,
                ),
                config.connect_timeout_s,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            raise connect_error(self.url, exc) from exc
        session = Session(config, self._target.token, time.monotonic(), self._target.address.stream)
        try:
            await self._stream(reader, writer, session, backoff)
        except OSError as exc:
            raise lost_error(exc) from exc
        finally:
            if self._closing:
                with contextlib.suppress(OSError, RuntimeError):
                    writer.write(session.goodbye())
            writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError, CamstreamError):
                await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT_S)

    async def _stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        session: Session,
        backoff: Backoff,
    ) -> None:
        tracker = self._tracker
        writer.write(session.data_to_send())
        # Checking the flag as well as being cancelled matters on Python < 3.12,
        # where wait_for() can swallow a cancellation that races with a read.
        while not self._closing:
            try:
                data: bytes | None = await asyncio.wait_for(
                    reader.read(RECV_BUFFER_BYTES), self._tick_s
                )
            except asyncio.TimeoutError:
                data = None
            now = time.monotonic()
            if data == b"":
                raise session.eof_error()
            if data:
                items = session.receive_data(data, now)
                writer.write(session.data_to_send())  # the credits, before anything else
                tracker.bytes_received += len(data)
                for item in items:
                    if isinstance(item, Frame):
                        tracker.put(item)
                    else:
                        tracker.connected(item)
                        backoff.reset()
                self._changed.set()
                session.check()
            session.poll(now)
            outgoing = session.data_to_send()
            if outgoing:
                writer.write(outgoing)
