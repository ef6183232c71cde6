"""One benchmark server in its own process, so its CPU time and memory can be read.

Usage (by ``_session.py``, not by hand)::

    python benchmarks/_serve.py '{"impl": "camstream", "width": 1280, ...}'

It prints one JSON line ``{"port": ..., "pid": ...}`` once it listens, then
answers commands read from stdin, one per line: ``status`` prints a JSON line
with the server's counters; ``quit`` (or end of stdin) stops it.

Options (keys of the JSON argument): ``impl`` ("camstream" or "seed"), ``width``,
``height``, ``fps`` (0 = unpaced), ``quality``, ``encode_workers``,
``credit_window_max``, ``always_capture``, ``capture_linger_s``, ``nodelay``
(false: see ``_measure.nodelay_off``), ``malloc_tuned`` (true: see
``_measure.tune_malloc``), ``live_source`` (true: see ``_test_source``).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _print(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _command_loop(status: Any) -> None:
    for line in sys.stdin:
        command = line.strip()
        if command == "status":
            _print(status())
        elif command == "quit":
            return


def _test_source(opts: dict[str, Any]) -> Any:
    """The built-in test pattern; with ``live_source`` it claims to be live, like a camera.

    camstream reads a source that is not live (the test pattern, files, iterables)
    only when an encoder is free; a live one (``Source.live = True``: cameras, URLs)
    is read continuously and what the encoder has no time for is dropped. The
    experiment measures that second path with the same images.
    """
    from camstream.sources import TestPatternSource

    if opts.get("live_source"):

        class LiveTestPatternSource(TestPatternSource):
            live = True

        return LiveTestPatternSource(opts["width"], opts["height"], opts["fps"])
    return TestPatternSource(opts["width"], opts["height"], opts["fps"])


def serve_camstream(opts: dict[str, Any]) -> None:
    from camstream.server.server import Server

    server = Server(
        _test_source(opts),
        port=0,
        fps=opts["fps"],
        width=opts["width"],
        height=opts["height"],
        quality=opts.get("quality", 80),
        always_capture=opts.get("always_capture", False),
        encode_workers=opts.get("encode_workers", 1),
        credit_window_max=opts.get("credit_window_max", 8),
        capture_linger_s=opts.get("capture_linger_s", 1.0),
        max_viewers=100,
        # All viewers come from loopback: lift the per-address limit (16).
        max_connections_per_address=1000,
    )
    with server:

        def status() -> dict[str, Any]:
            # status() reads loop-owned state; a torn read of a counter is harmless here
            full = server.status()
            keep = ("frames_encoded", "frames_published", "images_captured")
            out = {key: full.get(key) for key in keep}
            out["images_dropped"] = full.get("images_dropped_before_encode")
            out["viewer_frames_dropped"] = sum(v["frames_dropped"] for v in full["viewers"])
            out["bytes_sent"] = sum(v["bytes_sent"] for v in full["viewers"])
            out["viewer_count"] = full["viewer_count"]
            return out

        _print({"port": server.port, "pid": os.getpid()})
        _command_loop(status)


def serve_seed(opts: dict[str, Any]) -> None:
    from camstream.sources import TestPatternSource
    from seed_baseline import SeedServer

    def open_source() -> TestPatternSource:
        source = TestPatternSource(opts["width"], opts["height"], opts["fps"])
        source.open()
        return source

    server = SeedServer(open_source, quality=opts.get("quality", 80)).start()
    _print({"port": server.port, "pid": os.getpid()})
    try:
        _command_loop(server.status)
    finally:
        server.stop()


def main() -> None:
    opts = json.loads(sys.argv[1])
    from _measure import nodelay_off, tune_malloc

    if opts.get("malloc_tuned"):
        tune_malloc()
    if not opts.get("nodelay", True):
        nodelay_off()
    if opts["impl"] == "seed":
        serve_seed(opts)
    else:
        serve_camstream(opts)
    sys.stdout.flush()
    os._exit(0)  # seed threads block in sendall to viewers that may still be open


if __name__ == "__main__":
    main()
