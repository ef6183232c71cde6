"""The seed's naive design, kept as the benchmark's yardstick.

The user's original design (``/work/shared/seed``), reproduced faithfully:

* server: after ``accept()`` it opens the camera, then loops forever: read an
  image, ``cv2.imencode('.jpg', img, q80)``, pack ``struct("ii", len, len)`` and
  ``conn.sendall(header + payload)``. Blocking ``sendall`` of every frame, no
  dropping, no flow control, Nagle left on.
* client: connect, send ``'hello Apple Cai!'``, then loop: ``recv`` the 8-byte
  header, ``recv`` exactly that many bytes, ``cv2.imdecode`` every frame in order.

Changes, all needed to measure it and none that make it faster:

* the header carries the capture timestamp as well: ``struct("<iiq", len, len,
  captured_at_ns)``, so the client can compute the frame's age;
* the server accepts connections in a loop and serves each on its own thread
  (opening its own source, as the seed opens the camera after ``accept``), so
  the same server can take several viewers and several time-to-first-frame
  trials; with N viewers it therefore encodes every frame N times, which is
  what the seed design implies;
* the client's receive loop accumulates into one buffer (the seed's loop keeps
  only the last ``recv`` chunk, a bug), and it drops the seed's
  ``time.sleep(0.001)`` after the header, a workaround for that bug; both
  changes only help the baseline;
* the JPEG quality is 80 as the seed's notes ask (its code uses the default 95).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

HEADER = struct.Struct("<iiq")  # payload length, payload length again, captured_at_ns


class SeedServer:
    """Accepts viewers on ``host:port`` (loopback) and streams to each one, seed-style."""

    def __init__(
        self,
        open_source: Callable[[], Any],
        *,
        quality: int = 80,
        port: int = 0,
        host: str = "127.0.0.1",  # links.py serves it across a network namespace
    ) -> None:
        self._open_source = open_source  # returns an object with read() -> image
        self._params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # seed note 4
        self._listener.bind((host, port))
        self._listener.listen(5)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.frames_encoded = 0
        self.bytes_sent = 0
        self._thread = threading.Thread(target=self._accept_loop, name="seed-accept", daemon=True)

    def start(self) -> SeedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"frames_encoded": self.frames_encoded, "bytes_sent": self.bytes_sent}

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _address = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        cap = self._open_source()  # seed: cap = cv2.VideoCapture(0) after accept()
        try:
            while not self._stop.is_set():
                img = cap.read()
                captured_at_ns = time.time_ns()
                _ok, img_encode = cv2.imencode(".jpg", img, self._params)
                str_encode = img_encode.tobytes()  # seed: .tostring()
                header = HEADER.pack(len(str_encode), len(str_encode), captured_at_ns)
                conn.sendall(header + str_encode)
                with self._lock:
                    self.frames_encoded += 1
                    self.bytes_sent += len(header) + len(str_encode)
        except OSError:
            pass  # the viewer went away
        finally:
            conn.close()


class SeedClient:
    """The seed's client: every frame, in order, decoded."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket()
        self.sock.connect((host, port))
        self.sock.sendall(bytes("hello Apple Cai!", encoding="utf-8"))
        self._header = bytearray(HEADER.size)

    def close(self) -> None:
        self.sock.close()

    def _recv_exactly(self, buf: bytearray | memoryview) -> None:
        view = memoryview(buf)
        while view:
            count = self.sock.recv_into(view)
            if count == 0:
                raise ConnectionError("seed server closed the connection")
            view = view[count:]

    def read_frame(self) -> tuple[int, bytearray]:
        """The next frame in order: (captured_at_ns, jpeg bytes)."""
        self._recv_exactly(self._header)
        buf_size, _again, captured_at_ns = HEADER.unpack(self._header)
        payload = bytearray(buf_size)
        self._recv_exactly(payload)
        return captured_at_ns, payload

    @staticmethod
    def decode(payload: bytes | bytearray) -> np.ndarray:
        nparr = np.frombuffer(payload, np.uint8)  # seed: np.fromstring
        return cv2.imdecode(nparr, cv2.IMREAD_COLOR)
