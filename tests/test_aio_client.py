"""The asyncio client against the scripted server: the same contract as the thread client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import numpy as np
import pytest

from camstream.client.aio import AsyncClient
from camstream.errors import (
    AuthenticationError,
    ConnectError,
    ConnectionClosed,
    ServerFullError,
)
from camstream.wire.protocol import GoodbyeCode
from scripted_server import HEIGHT, WIDTH, ScriptedServer, make_image

FAST: dict[str, Any] = {
    "heartbeat_interval_s": 0.1,
    "heartbeat_timeout_s": 0.6,
    "reconnect_initial_s": 0.05,
    "reconnect_max_s": 0.2,
    "connect_timeout_s": 2.0,
}


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as srv:
        yield srv


def client_for(srv: ScriptedServer, **options: Any) -> AsyncClient:
    return AsyncClient(srv.url, **{**FAST, **options})


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 15))


async def until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        await asyncio.sleep(0.01)


def test_frames_arrive_in_order_and_decode(server: ScriptedServer) -> None:
    async def scenario() -> None:
        async with client_for(server) as client:
            info = await client.wait_connected(5)
            assert (info.width, info.height) == (WIDTH, HEIGHT)
            for seq in range(1, 4):
                server.publish(seq)
                received = await client.read_received(5)
                assert received.seq == seq
            image = received.image
            diff = np.abs(image.astype(np.int16) - make_image(3).astype(np.int16))
            assert image.shape == (HEIGHT, WIDTH, 3) and diff.mean() < 3
            server.publish(4)
            image = await client.read(5)
            assert image.dtype == np.uint8
            assert client.stats.frames_read == 4

    run(scenario)
    assert server.record.goodbyes and server.record.goodbyes[0].code is GoodbyeCode.NORMAL


def test_credit_window_and_fresh_frames_for_a_slow_reader(server: ScriptedServer) -> None:
    server.start_pushing(fps=50)

    async def scenario() -> None:
        async with client_for(server, credit_window=2) as client:
            await client.read_frame(5)
            seqs = []
            for _ in range(6):
                await asyncio.sleep(0.1)
                received = await client.read_received(2)
                assert received.age_s < 0.2
                seqs.append(received.seq)
            assert seqs == sorted(set(seqs)) and seqs[-1] - seqs[0] >= 10, seqs
            assert client.stats.frames_dropped > 0

    run(scenario)
    assert server.record.max_outstanding <= 2


async def _new_tasks_done(before: set[asyncio.Task[Any]], timeout_s: float = 5) -> None:
    """Wait until every task started since ``before`` was taken has finished."""
    deadline = time.monotonic() + timeout_s
    while pending := [t for t in asyncio.all_tasks() - before if not t.done()]:
        assert time.monotonic() < deadline, f"still running: {pending}"
        await asyncio.sleep(0.01)


def test_auth_success_and_failure() -> None:
    async def scenario(srv: ScriptedServer) -> None:
        async with client_for(srv, token="s3cret") as client:
            assert (await client.read_frame(5)).seq == 1
        before = asyncio.all_tasks()
        async with client_for(srv, token="wrong") as client:
            with pytest.raises(AuthenticationError, match="wrong token"):
                await client.read_frame(5)
            # Not retried: the client's task, which would reconnect, has ended.
            await _new_tasks_done(before)
            assert client.state == "closed"

    with ScriptedServer(token="s3cret") as srv:
        srv.publish()
        run(lambda: scenario(srv))
        assert srv.record.connections == 2  # the failure was not retried


def test_server_full() -> None:
    async def scenario(srv: ScriptedServer) -> None:
        async with client_for(srv) as client:
            with pytest.raises(ServerFullError):
                await client.wait_connected(5)

    with ScriptedServer(hello_goodbye=(GoodbyeCode.SERVER_FULL, "full")) as srv:
        run(lambda: scenario(srv))


def test_reconnect_after_restart_heartbeat_timeout_and_garbage(server: ScriptedServer) -> None:
    async def scenario() -> None:
        async with client_for(server) as client:
            await client.wait_connected(5)
            server.stop()
            await until(lambda: client.state == "reconnecting")
            server.start()
            await until(lambda: client.state == "streaming")
            assert client.stats.reconnects == 1

            server.mode = "stall"
            start = time.monotonic()
            await until(lambda: client.state == "reconnecting", timeout_s=3)
            assert 0.4 < time.monotonic() - start < 1.5
            assert "heartbeat timeout" in (client.stats.last_error or "")
            server.mode = "garbage"
            await until(lambda: "bad magic" in (client.stats.last_error or ""))
            server.mode = "normal"
            await until(lambda: client.state == "streaming")
            assert client.stats.reconnects >= 2

    run(scenario)


def test_iteration_ends_cleanly_at_end_of_stream(server: ScriptedServer) -> None:
    async def scenario() -> list[int]:
        seen = []
        server.publish(1)
        async with client_for(server) as client:
            async for received in client:
                seen.append(received.seq)
                if received.seq < 3:
                    server.publish(received.seq + 1)
                else:
                    server.goodbye_all(GoodbyeCode.END_OF_STREAM, "the file ended")
            with pytest.raises(ConnectionClosed, match="the file ended"):
                await client.read_frame(1)
        return seen

    assert asyncio.run(asyncio.wait_for(scenario(), 15)) == [1, 2, 3]


def test_close_ends_reads_and_without_reconnect_a_refused_connect_raises(
    server: ScriptedServer,
) -> None:
    async def scenario() -> None:
        client = await client_for(server).open()
        await client.wait_connected(5)
        await client.close()
        await client.close()
        with pytest.raises(ConnectionClosed):
            await client.read_frame(0)
        assert [r async for r in client] == []
        url = server.url
        server.stop()
        async with AsyncClient(url, reconnect=False) as refused:
            with pytest.raises(ConnectError, match="cannot connect"):
                await refused.read_frame(5)

    run(scenario)
