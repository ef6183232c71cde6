"""A recorder fed by a real server records exactly the JPEG bytes its viewers receive.

Until the server wires recording in, the test feeds the recorder where the
server will: on the encoder thread, next to the hand-off to the event loop
(``CapturePipeline``'s frame callback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from camstream import Client, Server
from camstream.recording import Recorder, RecorderConfig, iter_segment


def test_recorded_bytes_are_what_viewers_received(tmp_path: Path) -> None:
    recorder = Recorder("cam", RecorderConfig(root_dir=str(tmp_path)))
    server = Server("test", host="127.0.0.1", port=0, fps=15, width=320, height=240)
    deliver = server._pipeline._on_frame

    def on_frame(frame: Any) -> None:
        recorder.offer(frame)
        deliver(frame)

    server._pipeline._on_frame = on_frame
    received: list[bytes] = []
    with recorder, server, Client(server.url) as client:
        for _ in range(20):
            received.append(client.read_frame(timeout_s=10).data)
    recorded = [data for s in recorder.segments() for _, data in iter_segment(s.path)]
    assert len(recorded) >= 20
    positions = [recorded.index(data) for data in received]  # each one, byte for byte
    assert positions == sorted(positions)  # and in the order they were received
    assert recorder.stats()["frames_dropped"] == 0
