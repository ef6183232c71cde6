"""Small window viewers that the glass-to-glass benchmark runs next to the shipped ones.

::

    python benchmarks/_glass_clients.py videocapture PORT   # cv2.imshow of camstream.VideoCapture
    python benchmarks/_glass_clients.py seed PORT           # the seed's client, verbatim in design
    python benchmarks/_glass_clients.py poll10 PORT         # camstream view's loop, as shipped
    python benchmarks/_glass_clients.py wait10 PORT         # camstream view's loop, proposed

``videocapture`` is what a user writes with the public API: read the newest
frame, show it, ``waitKey(1)``. ``seed`` is the seed's loop: receive every frame
in order, ``cv2.imdecode``, ``cv2.imshow``, ``cv2.waitKey(10)`` ("refresh every
10 ms"). ``poll10`` and ``wait10`` are two schedules for ``camstream view``'s
loop, without its overlay, to compare them alone: ``poll10`` is the shipped
one (take a frame if one is there, ``imshow``, ``waitKey(10)``: a frame that
arrives during the wait waits for it to end, 5 ms on average); ``wait10``
waits up to 10 ms *for a frame* and then runs ``waitKey(1)``, so a frame is
shown as soon as it arrives and the window still handles its events at least
every ~10 ms. All run until killed (SIGTERM) or the stream ends.
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


def _view_loop(port: int, *, wait_s: float, key_ms: int) -> None:
    import camstream

    with camstream.Client(f"127.0.0.1:{port}") as client:
        while True:
            try:
                image = client.read_received(timeout_s=wait_s).image
            except TimeoutError:
                image = None
            if image is not None:
                cv2.imshow("camstream", image)
            cv2.waitKey(key_ms)


def poll10(port: int) -> None:
    _view_loop(port, wait_s=0, key_ms=10)


def wait10(port: int) -> None:
    _view_loop(port, wait_s=0.010, key_ms=1)


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    _exit_on_sigterm()
    clients = {"videocapture": videocapture, "seed": seed, "poll10": poll10, "wait10": wait10}
    clients[kind](port)


if __name__ == "__main__":
    main()
