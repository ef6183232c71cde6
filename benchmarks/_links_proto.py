"""A stand-in adaptive server and viewer for links.py, until the real server is integrated.

It exercises ``camstream.delivery`` on the real shaped path (kernel TCP, tbf,
socket buffers), which the unit tests' simulated link cannot: per viewer a
:class:`DeliveryController` decides when to send, a :class:`TierChooser`
which tier, and :class:`Renditions` encodes each tier once. The wire format is
a minimal stand-in for the native protocol: a 24-byte header (seq, capture
time, width, height, length) + JPEG, and the viewer acks every frame with its
seq (8 bytes) as soon as it has it, before decoding. With ``kernel`` (viewer
``proto-http``) the viewer sends nothing and the server measures its socket
with ``TCP_INFO``, as the HTTP MJPEG handler will.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from camstream.delivery import (
    DeliveryController,
    Renditions,
    TierChooser,
    default_ladder,
    parse_tcp_info,
)
from camstream.delivery.tcpinfo import TCP_INFO_BYTES
from camstream.frame import Codec, Frame

HEADER = struct.Struct("<QqHHI")  # seq, captured_at_ns, width, height, payload bytes
ACK = struct.Struct("<Q")
FPS = 30.0


DEBUG = bool(os.environ.get("LINKS_PROTO_DEBUG"))


def _debug(now: float, c: DeliveryController, t: TierChooser) -> None:
    print(
        f"{now:9.2f} tier={t.index} rate={c.delivery_rate_bps / 1e3:8.0f}kB/s "
        f"latest={c.latest_rate_bps / 1e3:8.0f} minrtt={1e3 * (c.min_rtt_s or 0):6.1f} "
        f"srtt={1e3 * (c.smoothed_rtt_s or 0):6.1f} q={1e3 * c.queue_delay_s:6.1f} "
        f"ll={c.link_limited:d} stalled={c.rate.stalled:d} inflight={c.bytes_in_flight} "
        f"limit={c.inflight_limit_bytes} need={t.need_bps(t.index) or 0:.0f} "
        f"down={t.steps_down} up={t.steps_up} failed={t.failed_probes}",
        file=sys.stderr,
        flush=True,
    )


class Newest:
    """The newest captured frame and its source image, published to the event loop."""

    def __init__(self) -> None:
        self.frame: Frame | None = None
        self.image: np.ndarray | None = None
        self.changed = asyncio.Event()


def _capture(
    make_image: Callable[[int], np.ndarray],
    publish: Callable[[Frame, np.ndarray], None],
    stop: threading.Event,
) -> None:
    """Capture + full-size encode at 30 fps, once per frame, as the real server does."""
    next_at = time.monotonic()
    seq = 0
    while not stop.is_set():
        next_at += 1 / FPS
        time.sleep(max(0.0, next_at - time.monotonic()))
        image = make_image(seq)
        captured = time.time_ns()
        _ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        height, width = image.shape[:2]
        publish(Frame(seq, captured, width, height, Codec.JPEG, buf.tobytes()), image)
        seq += 1


async def _serve_viewer(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    newest: Newest,
    renditions: Renditions,
    tiers_used: dict[str, int],
    kernel: bool,
) -> None:
    """Serve one viewer; ``kernel``: no acks, measure the socket with TCP_INFO (as HTTP)."""
    loop = asyncio.get_running_loop()
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    controller = DeliveryController()
    chooser = TierChooser(default_ladder(80), source_fps=FPS)
    acked = asyncio.Event()

    def sample() -> None:
        raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_BYTES)
        info = parse_tcp_info(raw)
        if info is not None:
            buffered = writer.transport.get_write_buffer_size()
            controller.on_tcp_info(info, loop.time(), buffered_bytes=buffered)

    async def read_acks() -> None:
        if kernel:
            await reader.read()  # the viewer sends nothing; wait for it to leave
            return
        while True:
            data = await reader.readexactly(ACK.size)
            controller.on_frame_acked(ACK.unpack(data)[0], loop.time())
            acked.set()

    acks = asyncio.create_task(read_acks())
    last_seq = -1
    try:
        while not acks.done():
            if kernel:
                sample()
            frame, image = newest.frame, newest.image
            now = loop.time()
            if frame is not None and frame.seq > last_seq:
                tier = chooser.update(
                    now,
                    rate_bps=controller.delivery_rate_bps,
                    link_limited=controller.link_limited,
                    rtt_s=controller.smoothed_rtt_s,
                )
                expected = chooser.expected_bytes(chooser.index) or len(frame.data)
                if controller.may_send(int(expected), now):
                    served = renditions.get(frame, tier, image)
                    chooser.observe_size(
                        tier, len(served.data), source_size=(frame.width, frame.height)
                    )
                    header = HEADER.pack(
                        served.seq,
                        served.captured_at_ns,
                        served.width,
                        served.height,
                        len(served.data),
                    )
                    writer.writelines([header, served.data])
                    controller.on_frame_sent(served.seq, len(header) + len(served.data), now)
                    tiers_used[tier.name] = tiers_used.get(tier.name, 0) + 1
                    if DEBUG and frame.seq % 15 == 0:
                        _debug(now, controller, chooser)
                    last_seq = frame.seq
                    continue
            # Wait for what can change the answer: a new frame or an ack.
            newest.changed.clear()
            acked.clear()
            waits = [
                asyncio.ensure_future(newest.changed.wait()),
                asyncio.ensure_future(acked.wait()),
            ]
            # Kernel figures change without telling us: poll about 4 times per RTT.
            poll_s = max(0.002, (controller.smoothed_rtt_s or 0.01) / 4) if kernel else 0.05
            await asyncio.wait([*waits, acks], timeout=poll_s, return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        acks.cancel()
        writer.close()


async def serve_proto(
    opts: dict[str, Any], make_image: Callable[[int], np.ndarray], ready: Callable[..., None]
) -> None:
    import signal

    loop = asyncio.get_running_loop()
    newest = Newest()
    renditions = Renditions(source_quality=80)
    tiers_used: dict[str, int] = {}

    def publish(frame: Frame, image: np.ndarray) -> None:
        newest.frame, newest.image = frame, image
        newest.changed.set()

    stop = threading.Event()
    capture = threading.Thread(
        target=_capture,
        args=(make_image, lambda f, i: loop.call_soon_threadsafe(publish, f, i), stop),
        daemon=True,
    )
    capture.start()
    server = await asyncio.start_server(
        lambda r, w: _serve_viewer(
            r, w, newest=newest, renditions=renditions, tiers_used=tiers_used, kernel=opts["kernel"]
        ),
        opts["host"],
        opts["port"],
    )
    ready(port=server.sockets[0].getsockname()[1])
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    await done.wait()
    stop.set()
    server.close()


def view_proto(
    opts: dict[str, Any], deadline: float, t0: float
) -> list[tuple[float, float, int, int]]:
    samples: list[tuple[float, float, int, int]] = []
    with socket.create_connection((opts["host"], opts["port"]), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream = sock.makefile("rb")
        while time.monotonic() < deadline:
            head = stream.read(HEADER.size)
            if len(head) < HEADER.size:
                break
            seq, captured_ns, width, _height, length = HEADER.unpack(head)
            data = stream.read(length)
            if not opts["kernel"]:
                sock.sendall(ACK.pack(seq))  # as the native client's receiver thread does
            cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            age_ms = (time.time_ns() - captured_ns) / 1e6
            samples.append((time.monotonic() - t0, age_ms, width, len(data)))
    return samples
