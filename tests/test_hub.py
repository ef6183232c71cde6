"""The hub's latest-frame-wins fan-out, on an event loop but without sockets."""

from __future__ import annotations

import asyncio
import time

from camstream.frame import Codec, Frame
from camstream.server.hub import Hub


def make_frame(seq: int, *, age_s: float = 0.0) -> Frame:
    captured = time.time_ns() - int(age_s * 1e9)
    return Frame(seq, captured, 4, 2, Codec.JPEG, bytes([seq % 256]) * 10)


def test_one_publish_reaches_every_viewer_as_the_same_object() -> None:
    async def scenario() -> None:
        hub = Hub()
        viewers = [hub.attach("native", f"v{i}") for i in range(3)]
        frame = make_frame(1)
        hub.publish(frame)
        received = [await v.next_frame() for v in viewers]
        assert all(r is frame for r in received)  # encoded once, shared, never copied

    asyncio.run(scenario())


def test_a_slow_viewer_gets_the_newest_frame_and_counts_the_skipped_ones() -> None:
    async def scenario() -> None:
        hub = Hub()
        slow = hub.attach("native", "slow")
        for seq in range(1, 11):
            hub.publish(make_frame(seq))
        frame = await slow.next_frame()
        assert frame is not None and frame.seq == 10
        assert slow.frames_dropped == 9
        assert slow.take_nowait() is None  # no backlog left behind

    asyncio.run(scenario())


def test_next_frame_waits_for_a_publish() -> None:
    async def scenario() -> None:
        hub = Hub()
        viewer = hub.attach("http", "a")
        waiter = asyncio.ensure_future(viewer.next_frame())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        hub.publish(make_frame(5))
        frame = await asyncio.wait_for(waiter, 1)
        assert frame is not None and frame.seq == 5

    asyncio.run(scenario())


def test_out_of_order_publish_is_ignored() -> None:
    async def scenario() -> None:
        hub = Hub()
        viewer = hub.attach("native", "a")
        hub.publish(make_frame(7))
        hub.publish(make_frame(6))  # a late result from a parallel encoder
        frame = await viewer.next_frame()
        assert frame is not None and frame.seq == 7
        assert hub.latest is not None and hub.latest.seq == 7
        assert hub.frames_published == 1

    asyncio.run(scenario())


def test_on_demand_fires_on_first_attach_and_last_detach() -> None:
    async def scenario() -> None:
        calls: list[bool] = []
        hub = Hub(on_demand=calls.append)
        a = hub.attach("native", "a")
        b = hub.attach("http", "b")
        hub.detach(a)
        assert calls == [True]
        hub.detach(b)
        hub.detach(b)  # idempotent
        assert calls == [True, False]

    asyncio.run(scenario())


def test_new_viewer_starts_with_a_fresh_latest_frame_but_not_a_stale_one() -> None:
    async def scenario() -> None:
        hub = Hub()
        hub.publish(make_frame(1, age_s=5.0))
        stale = hub.attach("native", "late")
        assert stale.take_nowait() is None
        hub.publish(make_frame(2))
        fresh = hub.attach("native", "later")
        frame = fresh.take_nowait()
        assert frame is not None and frame.seq == 2

    asyncio.run(scenario())


def test_end_delivers_the_last_frame_then_none() -> None:
    async def scenario() -> None:
        hub = Hub()
        viewer = hub.attach("native", "a")
        hub.publish(make_frame(3))
        hub.end("end of stream")
        first = await viewer.next_frame()
        assert first is not None and first.seq == 3
        assert await viewer.next_frame() is None
        assert hub.attach("native", "b").take_nowait() is None
        assert hub.ended_reason == "end of stream"

    asyncio.run(scenario())


def test_viewer_stats_count_what_was_sent() -> None:
    async def scenario() -> None:
        hub = Hub()
        viewer = hub.attach("native", "127.0.0.1:5")
        frame = make_frame(1)
        hub.publish(frame)
        taken = await viewer.next_frame()
        assert taken is not None
        viewer.record_sent(taken, 100)
        stats = viewer.stats()
        assert (stats.frames_sent, stats.bytes_sent, stats.last_seq) == (1, 100, 1)
        assert stats.kind == "native" and stats.address == "127.0.0.1:5"
        assert stats.fps > 0

    asyncio.run(scenario())


def test_a_new_audience_after_the_end_starts_again() -> None:
    async def scenario() -> None:
        calls: list[bool] = []
        hub = Hub(on_demand=calls.append)
        viewer = hub.attach("native", "a")
        hub.end("end of stream")
        assert await viewer.next_frame() is None
        hub.detach(viewer)
        again = hub.attach("native", "b")  # the first viewer of a new audience
        assert hub.ended_reason is None and calls == [True, False, True]
        hub.publish(make_frame(9))
        frame = await again.next_frame()
        assert frame is not None and frame.seq == 9

    asyncio.run(scenario())
