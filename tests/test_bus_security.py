"""NATS credentials and TLS pass through to the client (one real nats-server)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from camstream.bus import NatsFrameSource, NatsOptions, NatsPublisher
from camstream.frame import Codec, Frame
from nats_cluster import running_cluster
from netfaults import self_signed_cert, wait_until


def frames_flow(url: str, **options: Any) -> int:
    """Publish for a moment with ``options`` and count the frames a source gets."""
    nats_options = NatsOptions.from_url(url, **options)
    with NatsPublisher(nats_options) as publisher:
        wait_until(lambda: publisher.stats().stream_ready, 10, "the publisher to connect")

        async def scenario() -> int:
            async with NatsFrameSource(nats_options) as source:
                await source.wait_connected(10)
                feed = source.watch("cam1")
                got = 0
                deadline = time.monotonic() + 2
                seq = 0
                while time.monotonic() < deadline and got < 5:
                    seq += 1
                    publisher.publish("cam1", Frame(seq, time.time_ns(), 8, 8, Codec.JPEG, b"j"))
                    try:
                        item = await asyncio.wait_for(feed.__anext__(), 0.1)
                    except asyncio.TimeoutError:
                        continue
                    got += isinstance(item, Frame)
                return got

        return asyncio.run(scenario())


def assert_refused(url: str, because: str, **options: Any) -> None:
    """A publisher with ``options`` is refused, with ``because`` in its last error."""
    nats_options = NatsOptions.from_url(url, connect_timeout_s=0.5, **options)
    with NatsPublisher(nats_options) as publisher:
        wait_until(
            lambda: because in (publisher.stats().last_error or "").lower(),
            10,
            f"an error about {because!r} (last: {publisher.stats().last_error})",
        )
        assert not publisher.stats().connected


def test_a_token_is_passed_to_nats(tmp_path: Path) -> None:
    with running_cluster(tmp_path, size=1, extra_args=["--auth", "s3cret-token"]) as server:
        assert frames_flow(server.url, token="s3cret-token") == 5
        assert_refused(server.url, "authorization", token="wrong")


def test_tls_with_user_and_password(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    args = ["--tls", "--tlscert", cert, "--tlskey", key, "--user", "cam", "--pass", "pw"]
    with running_cluster(tmp_path, size=1, extra_args=args) as server:
        url = server.url.replace("nats://", "tls://")
        assert frames_flow(url, tls_ca_file=cert, user="cam", password="pw") == 5
        assert_refused(url, "authorization", tls_ca_file=cert, user="cam", password="no")
        # Without our CA the server's certificate is not trusted.
        assert_refused(url, "certificate", user="cam", password="pw")
