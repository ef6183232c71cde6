"""One benchmark server in its own process, so its CPU time and memory can be read.

Usage (by ``_session.py``, not by hand)::

    python benchmarks/_serve.py '{"impl": "camstream", "width": 1280, ...}'

It prints one JSON line ``{"port": ..., "pid": ...}`` once it listens, then
answers commands read from stdin, one per line: ``status`` prints a JSON line
with the server's counters; ``quit`` (or end of stdin) stops it.

Options (keys of the JSON argument): ``impl`` ("camstream" or "seed"), ``width``,
``height``, ``fps`` (0 = unpaced), ``quality``, ``encode_workers``,
``credit_window_max``, ``always_capture``, ``capture_linger_s``, ``nodelay``
(false: turn TCP_NODELAY off again after camstream turned it on),
``malloc_tuned`` (true: see ``_measure.tune_malloc``), ``pull_source`` (true: see
``_pull_source``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
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


def _nodelay_off() -> None:
    """Experiment only: undo the TCP_NODELAY that camstream (and asyncio) set."""
    from camstream.transports import tcp

    original = tcp.NativeSession.connection_made

    def connection_made(self: Any, transport: Any) -> None:
        original(self, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)

    tcp.NativeSession.connection_made = connection_made  # type: ignore[method-assign]


def _pull_source(width: int, height: int, fps: float) -> Any:
    """Experiment only: an unpaced test source that renders only when an encoder is idle.

    camstream's capture thread reads an unpaced source as fast as it can and
    drops what the encoder has no time for; this source instead waits until an
    encoder has finished, which is what a pull model for unpaced sources would do.
    """
    from camstream.sources import TestPatternSource

    class PullSource(TestPatternSource):
        idle = threading.Event()

        def read(self) -> Any:
            self.idle.wait(0.5)
            self.idle.clear()
            return super().read()

    PullSource.idle.set()
    return PullSource(width, height, fps)


def _signal_idle(server: Any, idle: threading.Event) -> None:
    pipeline = server._pipeline  # private: this experiment wraps the encoder
    inner = pipeline.encoder

    class SignallingEncoder:
        codec = inner.codec

        def encode(self, image: Any) -> bytes:
            try:
                data: bytes = inner.encode(image)
            finally:
                idle.set()
            return data

    pipeline.encoder = SignallingEncoder()


def serve_camstream(opts: dict[str, Any]) -> None:
    from camstream.server import Server
    from camstream.sources import TestPatternSource

    if not opts.get("nodelay", True):
        _nodelay_off()
    if opts.get("pull_source"):
        source = _pull_source(opts["width"], opts["height"], opts["fps"])
    else:
        source = TestPatternSource(opts["width"], opts["height"], opts["fps"])
    server = Server(
        source,
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
    )
    if opts.get("pull_source"):
        _signal_idle(server, source.idle)
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
    if opts.get("malloc_tuned"):
        from _measure import tune_malloc

        tune_malloc()
    if opts["impl"] == "seed":
        serve_seed(opts)
    else:
        serve_camstream(opts)
    sys.stdout.flush()
    os._exit(0)  # seed threads block in sendall to viewers that may still be open


if __name__ == "__main__":
    main()
