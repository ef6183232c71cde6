"""The glass-to-glass benchmark's server: a stamped camera-like scene, in its own process.

Usage (by ``glass.py``, or by hand to look at the stream)::

    python benchmarks/_glass_serve.py [--impl camstream|seed] [--port 0] [--fps 30]

It prints one JSON line ``{"port": ..., "pid": ...}`` once it listens and serves
until its stdin closes (or Ctrl-C). camstream is started through the public API
(``camstream.Server(source=iterable, fps=...)``), so it paces and encodes the
scene as it would a user's iterable. Each image is stamped with
``time.time_ns()`` when the server takes it, which is when camstream takes its
own ``captured_at_ns`` too. The seed server reads the same stamped scene paced
like a camera.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _scene import CameraScene, stamp


def stamped_frames(scene: CameraScene) -> Iterator[np.ndarray]:
    """Scene frames, each stamped the moment the consumer asks for it."""
    index = 0
    while True:
        image = scene.frame(index)
        yield stamp(image, time.time_ns(), index)
        index += 1


class PacedStampedSource:
    """``read()`` at ``fps`` like a camera: what the seed server opens per viewer."""

    def __init__(self, scene: CameraScene, fps: float) -> None:
        self._frames = stamped_frames(scene)
        self._period = 1.0 / fps
        self._next = time.monotonic()

    def read(self) -> np.ndarray:
        self._next += self._period
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            self._next = time.monotonic()  # late: do not burst to catch up
        return next(self._frames)


def _ready(port: int) -> None:
    sys.stdout.write(json.dumps({"port": port, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()


def _wait_for_stdin_eof() -> None:
    try:
        while sys.stdin.readline():
            pass
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=("camstream", "seed"), default="camstream")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--quality", type=int, default=80)
    args = parser.parse_args(argv)
    scene = CameraScene(args.width, args.height)
    if args.impl == "seed":
        from seed_baseline import SeedServer

        seed = SeedServer(
            lambda: PacedStampedSource(scene, args.fps), quality=args.quality, port=args.port
        ).start()
        _ready(seed.port)
        _wait_for_stdin_eof()
        seed.stop()
    else:
        import camstream

        server = camstream.Server(
            source=stamped_frames(scene),
            host="127.0.0.1",
            port=args.port,
            fps=args.fps,
            quality=args.quality,
        )
        with server:
            _ready(server.port)
            _wait_for_stdin_eof()
    sys.stdout.flush()
    # seed threads may block in sendall to a viewer that is still open
    if threading.active_count() > 1:
        os._exit(0)


if __name__ == "__main__":
    main()
