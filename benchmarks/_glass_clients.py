"""Small window viewers that the glass-to-glass benchmark runs next to the shipped ones.

::

    python benchmarks/_glass_clients.py videocapture PORT   # cv2.imshow of camstream.VideoCapture
    python benchmarks/_glass_clients.py seed PORT           # the seed's client, verbatim in design

``videocapture`` is what a user writes with the public API: read the newest
frame, show it, ``waitKey(1)``. ``seed`` is the seed's loop: receive every frame
in order, ``cv2.imdecode``, ``cv2.imshow``, ``cv2.waitKey(10)`` ("refresh every
10 ms"). Both run until killed (SIGTERM) or the stream ends.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _exit_on_sigterm() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)


def videocapture(port: int) -> None:
    import camstream

    cap = camstream.VideoCapture(f"camstream://127.0.0.1:{port}")
    try:
        while True:
            ok, image = cap.read()
            if not ok or image is None:
                return
            cv2.imshow("videocapture", image)
            cv2.waitKey(1)
    finally:
        cap.release()


def seed(port: int) -> None:
    from seed_baseline import SeedClient

    client = SeedClient(port)
    try:
        while True:
            _captured_at_ns, payload = client.read_frame()
            image = SeedClient.decode(payload)
            cv2.imshow("img_decode", image)
            if cv2.waitKey(10) == 27:  # seed: refresh every 10 ms
                return
    finally:
        client.close()


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    _exit_on_sigterm()
    {"videocapture": videocapture, "seed": seed}[kind](port)


if __name__ == "__main__":
    main()
