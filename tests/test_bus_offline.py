"""NATS is unreachable: the publisher never blocks its caller, the source says NO SIGNAL."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from camstream.bus import NatsFrameSource, NatsOptions, NatsPublisher, NoSignal
from camstream.frame import Codec, Frame


def dead_url() -> str:
    """A loopback port nobody listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"nats://127.0.0.1:{sock.getsockname()[1]}"


def test_publishing_without_nats_is_cheap_bounded_and_counted() -> None:
    options = NatsOptions.from_url(dead_url(), connect_timeout_s=0.2, reconnect_wait_s=0.1)
    with NatsPublisher(options) as publisher:
        frames = [
            Frame(seq, time.time_ns(), 8, 8, Codec.JPEG, b"x" * 50_000) for seq in range(2000)
        ]
        spent: list[float] = []

        def producer() -> None:  # a capture/encode thread
            start = time.perf_counter()
            for frame in frames:
                publisher.publish("cam1" if frame.seq % 2 else "cam2", frame)
            spent.append(time.perf_counter() - start)

        thread = threading.Thread(target=producer)
        thread.start()
        thread.join(10)
        assert spent and spent[0] / len(frames) < 0.001, f"{spent[0] / len(frames)} s per frame"
        deadline = time.monotonic() + 5
        while publisher.stats().dropped_disconnected + publisher.stats().dropped_superseded < 2000:
            assert time.monotonic() < deadline, publisher.stats()
            time.sleep(0.01)
        stats = publisher.stats()
        assert not stats.connected and stats.frames_published == 0
        assert stats.last_error is not None
        # At most one frame per camera is held: the rest were superseded.
        assert len(publisher._slots) <= 2


def test_a_source_without_nats_reports_no_signal_after_the_bound() -> None:
    async def scenario() -> None:
        options = NatsOptions.from_url(dead_url(), connect_timeout_s=0.2, reconnect_wait_s=0.1)
        async with NatsFrameSource(options, stale_after_s=0.5) as source:
            feed = source.watch("cam1")
            start = time.monotonic()
            item = await asyncio.wait_for(feed.__anext__(), 3)
            assert isinstance(item, NoSignal)
            assert 0.5 <= time.monotonic() - start < 1.5
            assert source.connected_server is None
            await source.unfollow("cam1")
            assert source.stats() == {}
            assert await asyncio.wait_for(anext(aiter(feed), None), 1) is None  # closed

    asyncio.run(scenario())
