"""The processes of the links benchmark: camera-like source + server, delay relay, viewer.

Each role runs as ``python benchmarks/_links_roles.py ROLE JSON`` inside a network
namespace (``ip netns exec``), started and stopped by PID by ``links.py``. A role
prints one JSON line when ready (``{"ready": true, ...}``) and, for the viewer,
one JSON line with its samples at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np

# -- the camera-like scene ------------------------------------------------------


def camera_like(width: int = 1280, height: int = 720, seed: int = 7) -> Callable[[int], np.ndarray]:
    """A textured, panning, noisy scene with a moving object; 720p q80 is about 150 KB.

    Flat test patterns compress to a few KB and hide every bandwidth problem;
    camera images are full of texture and sensor noise. This one is a panned
    crop of a textured background (sines, smooth noise, rectangles), a moving
    bright disc, and per-frame Gaussian noise (sigma 4) from a bank of fields.
    """
    rng = np.random.default_rng(seed)
    bw, bh = width + width // 4, height + height // 4
    yy, xx = np.mgrid[0:bh, 0:bw].astype(np.float32)
    base = 120 + 45 * np.sin(xx / 41.0) * np.cos(yy / 29.0) + 25 * np.sin((xx + 2 * yy) / 17.0)
    smooth = rng.normal(0, 1, (bh // 6, bw // 6)).astype(np.float32)
    texture = cv2.resize(smooth, (bw, bh), interpolation=cv2.INTER_CUBIC) * 28
    background = np.stack([base + texture, 0.8 * base + 1.1 * texture + 25, 0.6 * base + 45], -1)
    for _ in range(40):
        x, y = int(rng.integers(0, bw - 120)), int(rng.integers(0, bh - 90))
        w, h = int(rng.integers(20, 120)), int(rng.integers(15, 90))
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(background, (x, y), (x + w, y + h), color, -1)
    bg = np.clip(background, 0, 255).astype(np.uint8)
    noise = [rng.normal(0, 4.0, (height, width, 3)).astype(np.int16) for _ in range(8)]
    pan_x, pan_y = (bw - width) // 2, (bh - height) // 2

    def frame(i: int) -> np.ndarray:
        x = int(pan_x + pan_x * 0.9 * np.sin(i / 45.0))
        y = int(pan_y + pan_y * 0.9 * np.cos(i / 60.0))
        image = bg[y : y + height, x : x + width].astype(np.int16) + noise[i % len(noise)]
        centre = (
            int(width / 2 + width / 3 * np.sin(i / 20.0)),
            int(height / 2 + height / 4 * np.cos(i / 25.0)),
        )
        cv2.circle(image, centre, height // 12, (250, 250, 250), -1)
        return np.clip(image, 0, 255).astype(np.uint8)

    return frame


def _images(width: int, height: int) -> Iterator[np.ndarray]:
    frame = camera_like(width, height)
    i = 0
    while True:
        yield frame(i)
        i += 1


def _ready(**info: Any) -> None:
    sys.stdout.write(json.dumps({"ready": True, **info}) + "\n")
    sys.stdout.flush()


def _wait_for_term() -> None:
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    while not stop:
        time.sleep(0.2)


# -- server ----------------------------------------------------------------------


def serve(opts: dict[str, Any]) -> None:
    width, height = opts["width"], opts["height"]
    if opts["impl"] == "seed":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from seed_baseline import SeedServer

        class Paced:
            def __init__(self) -> None:
                self._images = _images(width, height)
                self._next = time.monotonic()

            def read(self) -> np.ndarray:
                self._next += 1 / opts["fps"]
                time.sleep(max(0.0, self._next - time.monotonic()))
                return next(self._images)

        seed = SeedServer(Paced, port=opts["port"], host=opts["host"]).start()
        _ready(port=seed.port)
        _wait_for_term()
        os._exit(0)  # seed threads block in sendall
    if opts["impl"] in ("proto", "proto-http"):
        opts["kernel"] = opts["impl"] == "proto-http"
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from _links_proto import serve_proto

        asyncio.run(serve_proto(opts, camera_like(width, height), _ready))
        return
    import camstream

    server_options = {"fps": opts["fps"], "quality": 80, **opts.get("server_options", {})}
    with camstream.Server(
        _images(width, height), host=opts["host"], port=opts["port"], **server_options
    ) as server:
        _ready(port=server.port)
        _wait_for_term()


# -- the delay relay -------------------------------------------------------------


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Forward bytes after ``delay_s``: a fixed one-way propagation delay.

    The relay sits after the bottleneck, so it reads at the link's rate and
    holds at most rate * delay bytes; it never applies backpressure of its own
    beyond 64 MB, which a benchmark link never reaches.
    """
    loop = asyncio.get_running_loop()
    held: deque[tuple[float, bytes]] = deque()
    arrived = asyncio.Event()
    done = False

    async def receive() -> None:
        nonlocal done
        while data := await reader.read(256 * 1024):
            held.append((loop.time() + delay_s, data))
            arrived.set()
        done = True
        arrived.set()

    receiver = asyncio.create_task(receive())
    try:
        while True:
            while not held:
                if done:
                    return
                arrived.clear()
                await arrived.wait()
            due, data = held.popleft()
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()
    finally:
        receiver.cancel()
        with contextlib.suppress(Exception):
            writer.close()


async def _relay(opts: dict[str, Any]) -> None:
    one_way_s = opts["rtt_ms"] / 2000.0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = (opts["upstream_host"], opts["upstream_port"])
        with contextlib.suppress(asyncio.CancelledError, OSError):
            up_reader, up_writer = await asyncio.open_connection(*upstream)
            await asyncio.gather(
                _pipe(reader, up_writer, one_way_s),
                _pipe(up_reader, writer, one_way_s),
                return_exceptions=True,
            )

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    _ready(port=server.sockets[0].getsockname()[1])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


# -- viewers ---------------------------------------------------------------------

Sample = tuple[float, float, int, int]  # seconds since start, age ms, width, bytes


def _view_native(opts: dict[str, Any], deadline: float, t0: float) -> list[Sample]:
    import camstream

    samples: list[Sample] = []
    cap = camstream.VideoCapture(f"camstream://{opts['host']}:{opts['port']}", timeout_s=10)
    try:
        while time.monotonic() < deadline:
            ok, _image = cap.read()
            frame = cap.last_frame
            if not ok or frame is None:
                break
            age_ms = (time.time_ns() - frame.captured_at_ns) / 1e6
            samples.append((time.monotonic() - t0, age_ms, frame.width, len(frame.data)))
    finally:
        cap.release()
    return samples


def _view_mjpeg(opts: dict[str, Any], deadline: float, t0: float) -> list[Sample]:
    """Read ``/stream.mjpg`` part by part (Content-Length, X-Timestamp) and decode each."""
    samples: list[Sample] = []
    conn = http.client.HTTPConnection(opts["host"], opts["port"], timeout=10)
    try:
        conn.request("GET", "/stream.mjpg")
        response = conn.getresponse()
        while time.monotonic() < deadline:
            headers: dict[str, str] = {}
            while True:
                line = response.readline().decode("latin-1").strip()
                if not line and headers:
                    break
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            data = response.read(int(headers["content-length"]))
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            age_ms = time.time() * 1000 - float(headers["x-timestamp"]) * 1000
            samples.append((time.monotonic() - t0, age_ms, image.shape[1], len(data)))
    finally:
        conn.close()
    return samples


def _view_seed(opts: dict[str, Any], deadline: float, t0: float) -> list[Sample]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from seed_baseline import SeedClient

    samples: list[Sample] = []
    client = SeedClient(opts["port"], host=opts["host"])
    try:
        while time.monotonic() < deadline:
            captured_at_ns, payload = client.read_frame()
            image = SeedClient.decode(payload)
            age_ms = (time.time_ns() - captured_at_ns) / 1e6
            samples.append((time.monotonic() - t0, age_ms, image.shape[1], len(payload)))
    finally:
        client.close()
    return samples


def view(opts: dict[str, Any]) -> None:
    t0 = time.monotonic()
    deadline = t0 + opts["duration_s"]
    if opts["viewer"] in ("proto", "proto-http"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from _links_proto import view_proto

        opts["kernel"] = opts["viewer"] == "proto-http"
        viewer = view_proto
    else:
        viewer = {"native": _view_native, "mjpeg": _view_mjpeg, "seed": _view_seed}[opts["viewer"]]
    samples = viewer(opts, deadline, t0)
    sys.stdout.write(json.dumps({"samples": samples}) + "\n")
    sys.stdout.flush()


def main() -> None:
    role, opts = sys.argv[1], json.loads(sys.argv[2])
    if role == "server":
        serve(opts)
    elif role == "relay":
        asyncio.run(_relay(opts))
    elif role == "viewer":
        view(opts)
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main()
