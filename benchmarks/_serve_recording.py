"""``_serve.py``'s camstream server, with a Recorder fed every frame when asked.

Usage (by ``recording.py``, not by hand)::

    python benchmarks/_serve_recording.py '{"width": 1280, ..., "record_dir": "/tmp/x"}'

Same protocol as ``_serve.py`` (a JSON ready line, then ``status``/``quit`` on
stdin). Without ``record_dir`` it is exactly the server without recording, so
the two runs differ only by the recorder. With it, the server records as
``camstream serve --record DIR`` does (``offer()`` on the encoder thread for
every frame). At ``quit`` the server stops (closing the recorder) and the
recorder's stats are written to ``record_dir/recorder_stats.json``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from _serve import _command_loop, _print, _test_source


def main() -> None:
    opts = json.loads(sys.argv[1])
    from camstream.server import Server

    record = None
    if opts.get("record_dir"):
        from camstream.recording import RecorderConfig

        record = RecorderConfig(root_dir=opts["record_dir"], segment_s=opts.get("segment_s", 60.0))
    server = Server(
        _test_source(opts),
        port=0,
        fps=opts["fps"],
        width=opts["width"],
        height=opts["height"],
        quality=opts.get("quality", 80),
        always_capture=opts.get("always_capture", False),
        max_viewers=100,
        record=record,
    )
    recorder = server.producer.recorder

    with server:

        def status() -> dict[str, Any]:
            full = server.status()
            out = {k: full.get(k) for k in ("frames_encoded", "frames_published")}
            out["images_captured"] = full.get("images_captured")
            out["images_dropped"] = full.get("images_dropped_before_encode")
            out["viewer_count"] = full["viewer_count"]
            if recorder is not None:
                out["recording"] = recorder.stats()
            return out

        _print({"port": server.port, "pid": os.getpid()})
        _command_loop(status)
    if recorder is not None:
        path = os.path.join(opts["record_dir"], "recorder_stats.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(recorder.stats(), f)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
