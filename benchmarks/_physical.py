"""The physical limit, and micro-benchmarks of where a frame's time goes.

The physical limit of one frame is what no design can beat on this machine:
encode it once (``cv2.imencode`` q80, what camstream uses; simplejpeg is no
faster at 4:2:0), move its bytes over loopback once, decode it once with the
fastest full-quality decoder available (``camstream.codec.decode``, i.e.
simplejpeg; ``cv2.imdecode`` is slower, see :func:`codec_comparison`). Its age
floor is the sum; its throughput ceiling is set by the slowest stage on one
core, or by the sum spread over both cores, whichever is lower.
"""

from __future__ import annotations

import socket
import statistics
import struct
import threading
import time
from typing import Any

import cv2
import numpy as np
import simplejpeg

from _measure import median_time_ms
from camstream.codec import decode
from camstream.sources.pattern import render_test_pattern

CORES = 2


def test_images(width: int, height: int, count: int = 8) -> list[np.ndarray]:
    return [render_test_pattern(i * 7, width, height) for i in range(count)]


def _cycle_ms(fn: Any, items: list[Any], repeats: int) -> float:
    index = iter(range(1 << 62))
    return median_time_ms(lambda: fn(items[next(index) % len(items)]), repeats)


class _Loopback:
    """A TCP connection over 127.0.0.1 whose far end acknowledges each message."""

    def __init__(self) -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        self.sender = socket.create_connection(listener.getsockname())
        self.receiver, _ = listener.accept()
        listener.close()
        for sock in (self.sender, self.receiver):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sizes: list[int] = []
        self._ready = threading.Semaphore(0)
        self._thread = threading.Thread(target=self._echo, daemon=True)
        self._thread.start()

    def _echo(self) -> None:
        buf = bytearray(8 << 20)
        view = memoryview(buf)
        while True:
            self._ready.acquire()
            if not self._sizes:
                return
            remaining = self._sizes.pop()
            while remaining:
                count = self.receiver.recv_into(view[: min(remaining, len(buf))])
                remaining -= count
            self.receiver.sendall(b"k")

    def round_trip_ms(self, parts: list[bytes], *, vectored: bool = False) -> float:
        """Send ``parts`` (joined, or vectored with sendmsg), wait for the far end's ack."""
        self._sizes.append(sum(map(len, parts)))
        self._ready.release()
        started = time.perf_counter()
        if vectored:
            views = [memoryview(p) for p in parts]
            while views:
                sent = self.sender.sendmsg(views)
                while views and sent >= len(views[0]):
                    sent -= len(views[0])
                    views.pop(0)
                if views:
                    views[0] = views[0][sent:]
        else:
            self.sender.sendall(b"".join(parts))
        self.sender.recv(1)
        return (time.perf_counter() - started) * 1000.0

    def close(self) -> None:
        self._ready.release()
        self._thread.join(2)
        self.sender.close()
        self.receiver.close()


def transfer_ms(nbytes: int, repeats: int) -> float:
    """One-way time of ``nbytes`` over loopback: RTT(n bytes there, 1 back) - RTT(1, 1)/2."""
    link = _Loopback()
    try:
        payload = [bytes(nbytes)]
        tiny = [b"x"]
        for _ in range(3):
            link.round_trip_ms(payload)
        big = statistics.median(link.round_trip_ms(payload) for _ in range(repeats))
        small = statistics.median(link.round_trip_ms(tiny) for _ in range(repeats))
    finally:
        link.close()
    return max(0.0, big - small / 2)


def physical_limit(width: int, height: int, quality: int = 80, repeats: int = 30) -> dict[str, Any]:
    """Encode + transfer + decode of one test-pattern frame, medians in ms."""
    images = test_images(width, height)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    encoded = [cv2.imencode(".jpg", image, params)[1].tobytes() for image in images]
    nbytes = round(statistics.fmean(len(e) for e in encoded))
    encode_ms = _cycle_ms(lambda im: cv2.imencode(".jpg", im, params), images, repeats)
    decode_ms = _cycle_ms(decode, encoded, repeats)
    move_ms = transfer_ms(nbytes, repeats)
    total_ms = encode_ms + move_ms + decode_ms
    fps = min(1000.0 / encode_ms, 1000.0 / (decode_ms + move_ms), CORES * 1000.0 / total_ms)
    return {
        "width": width,
        "height": height,
        "bytes_per_frame": nbytes,
        "encode_ms": encode_ms,
        "transfer_ms": move_ms,
        "decode_ms": decode_ms,
        "age_ms": total_ms,
        "fps": fps,
    }


def codec_comparison(width: int, height: int, quality: int = 80, repeats: int = 30) -> dict:
    """cv2 vs simplejpeg vs camstream's decode, on the test pattern (ms, bytes)."""
    images = test_images(width, height)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    cv_data = [cv2.imencode(".jpg", im, params)[1].tobytes() for im in images]

    def sj_encode(im: np.ndarray, sub: str, fast: bool) -> bytes:
        return simplejpeg.encode_jpeg(im, quality, "BGR", sub, fastdct=fast)

    sj444 = [sj_encode(im, "444", False) for im in images]
    out: dict[str, Any] = {
        "bytes_cv2_420": round(statistics.fmean(map(len, cv_data))),
        "bytes_simplejpeg_444": round(statistics.fmean(map(len, sj444))),
        "encode_cv2_ms": _cycle_ms(lambda im: cv2.imencode(".jpg", im, params), images, repeats),
        "encode_simplejpeg_444_ms": _cycle_ms(
            lambda im: sj_encode(im, "444", False), images, repeats
        ),
        "encode_simplejpeg_420_ms": _cycle_ms(
            lambda im: sj_encode(im, "420", False), images, repeats
        ),
        "encode_simplejpeg_420_fastdct_ms": _cycle_ms(
            lambda im: sj_encode(im, "420", True), images, repeats
        ),
        "decode_cv2_ms": _cycle_ms(
            lambda d: cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR), cv_data, repeats
        ),
        "decode_camstream_ms": _cycle_ms(decode, cv_data, repeats),
        "decode_simplejpeg_ms": _cycle_ms(
            lambda d: simplejpeg.decode_jpeg(d, "BGR"), cv_data, repeats
        ),
        "decode_simplejpeg_fast_ms": _cycle_ms(
            lambda d: simplejpeg.decode_jpeg(d, "BGR", fastdct=True, fastupsample=True),
            cv_data,
            repeats,
        ),
    }
    return out


def send_copy_comparison(nbytes: int, repeats: int = 30) -> dict[str, float]:
    """Cost of joining header + payload (the seed; asyncio 3.11's writelines) vs sendmsg."""
    payload = bytes(nbytes)
    header = struct.pack("<iiq", nbytes, nbytes, 0)
    concat_us = 1000.0 * median_time_ms(lambda: header + payload, repeats * 10)
    join_us = 1000.0 * median_time_ms(lambda: b"".join([header, payload]), repeats * 10)
    link = _Loopback()
    try:
        parts = [header, payload]
        for _ in range(3):
            link.round_trip_ms(parts)
        copy_rtt = statistics.median(link.round_trip_ms(parts) for _ in range(repeats))
        vec_rtt = statistics.median(
            link.round_trip_ms(parts, vectored=True) for _ in range(repeats)
        )
    finally:
        link.close()
    return {
        "concat_us": concat_us,
        "join_us": join_us,
        "sendall_concat_round_trip_ms": copy_rtt,
        "sendmsg_round_trip_ms": vec_rtt,
    }
