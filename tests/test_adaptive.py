"""Adaptive delivery end to end: a throttled viewer steps down and back up, others don't care.

The thin link is a Python proxy on 127.0.0.1 that forwards at most N bytes/s
(tests/thin_link.py): no root needed. The controller and ladder themselves are
tested on a simulated link in test_delivery_*.py; here the real transports feed
them (native acks, HTTP TCP_INFO).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import camstream
from camstream import Client, Server
from netfaults import wait_until
from thin_link import ThinLink

WIDTH, HEIGHT, FPS = 640, 480, 15


def textured_frames() -> Iterator[np.ndarray]:
    """Camera-like: texture that moves; each 640x480 JPEG is ~200 KB at q80."""
    rng = np.random.default_rng(7)
    coarse = rng.integers(0, 256, (HEIGHT // 2, (WIDTH + 64) // 2, 3), dtype=np.uint8)
    base = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)
    index = 0
    while True:
        shift = index % 64
        yield np.ascontiguousarray(base[:, shift : shift + WIDTH])
        index += 1


@pytest.fixture
def server(running_server: Callable[..., Server]) -> Server:
    return running_server(textured_frames(), fps=FPS)


def widths(client: Client, count: int) -> list[int]:
    return [client.read_frame(timeout_s=10).width for _ in range(count)]


@pytest.mark.timeout(120)
def test_a_throttled_viewer_steps_down_and_back_up_while_a_fast_one_keeps_everything(
    server: Server,
) -> None:
    with ThinLink(server.port, rate_bytes_s=200_000) as link:  # 1.6 Mbit/s for ~12 Mbit/s
        thin = Client(f"127.0.0.1:{link.port}", reconnect=False).open()
        fast = Client(server.url, reconnect=False).open()
        try:
            # The thin viewer steps down to a tier its link carries...
            wait_until(lambda: thin.read_frame(timeout_s=10).width < WIDTH, 15, "a step down")
            stepped = widths(thin, 10)
            assert max(stepped) < WIDTH, stepped
            # ...while the fast viewer on the same server keeps full size and rate.
            assert set(widths(fast, 10)) == {WIDTH}
            assert fast.stats.fps >= FPS * 0.7
            status = server.status()
            tiers = {v["delivery"]["tier"] for v in status["viewers"]}
            assert "full" in tiers and len(tiers) == 2, tiers
            # Each tier of a frame is encoded once, for every viewer on it.
            assert 0 < status["renditions"]["encodes_per_frame"] <= 1.0
            thin_view = next(v for v in status["viewers"] if v["delivery"]["tier"] != "full")
            assert thin_view["delivery"]["link_rate_mbit_s"] > 0  # shown in /status

            link.rate_bytes_s = float("inf")  # the throttle is lifted
            # Probes that failed while throttled lengthen the wait before the next
            # one (up to 30 s, halved once there is plenty of room): no flapping.
            wait_until(lambda: thin.read_frame(timeout_s=10).width == WIDTH, 45, "a step up")
        finally:
            thin.close()
            fast.close()


def _first_part_width(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as stream:
        data = b""
        while b"\xff\xd9" not in data:
            data += stream.read(4096)
    start = data.index(b"\xff\xd8")
    image = camstream.decode(data[start : data.index(b"\xff\xd9") + 2])
    return int(image.shape[1])


def test_http_overrides_pick_a_fixed_tier(server: Server) -> None:
    base = f"{server.http_url}stream.mjpg"
    assert _first_part_width(f"{base}?width=320") == 320
    assert _first_part_width(f"{base}?width=320&quality=50") == 320
    assert _first_part_width(f"{base}?adaptive=0") == WIDTH
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{base}?width=abc", timeout=10)
    assert caught.value.code == 400 and "width" in caught.value.read().decode()
    caught.value.close()


def test_native_overrides_and_what_videocapture_returns(server: Server) -> None:
    with Client(server.url, max_width=320, reconnect=False) as client:
        assert set(widths(client, 5)) == {320}
        assert client.stats.frame_size == (320, 240)
    # cv2 code assumes one shape: read() scales a tier up to the stream's size...
    capture = camstream.VideoCapture(server.url, max_width=320, timeout_s=10)
    try:
        ok, image = capture.read()
        assert ok and image is not None and image.shape == (HEIGHT, WIDTH, 3)
    finally:
        capture.release()
    # ...unless the raw tier is asked for.
    raw = camstream.VideoCapture(server.url, max_width=320, scale_to_stream=False, timeout_s=10)
    try:
        ok, image = raw.read()
        assert ok and image is not None and image.shape == (240, 320, 3)
    finally:
        raw.release()


def test_no_adaptive_sends_everyone_the_full_stream(
    running_server: Callable[..., Server],
) -> None:
    server = running_server(textured_frames(), fps=FPS, adaptive=False)
    with Client(server.url, max_width=320, reconnect=False) as client:
        assert set(widths(client, 5)) == {WIDTH}  # the server does not adapt at all
        time.sleep(0)
    viewers: list[dict[str, Any]] = server.status()["viewers"]
    assert all(v["delivery"] is None for v in viewers)
