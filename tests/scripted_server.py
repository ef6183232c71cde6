"""A tiny threaded camstream server for client tests, built on the real sans-IO protocol.

It listens on 127.0.0.1 (port 0 unless told), speaks the handshake (optionally
with a token challenge), and sends the newest published frame whenever the
client has credit, recording what the client did (hellos, credits, pongs,
goodbyes) so tests can check the client's behaviour from the other side. Tests
can also make it misbehave: send garbage, stall, ignore credit, say goodbye, or
stop and restart on the same port.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

import cv2
import numpy as np
import numpy.typing as npt

from camstream.errors import RemoteProtocolError
from camstream.frame import Codec, Frame
from camstream.wire.auth import new_nonce, verify_digest
from camstream.wire.protocol import (
    Auth,
    Challenge,
    Connection,
    Credit,
    Goodbye,
    GoodbyeCode,
    Hello,
    Ping,
    Pong,
    Role,
    State,
    StreamInfo,
)

WIDTH, HEIGHT = 64, 48
PATTERNS = 8
GARBAGE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello"


def make_image(seq: int, width: int = WIDTH, height: int = HEIGHT) -> npt.NDArray[np.uint8]:
    """A smooth pattern (JPEG-friendly) whose brightness depends on ``seq % PATTERNS``."""
    x = np.linspace(0, 150, width, dtype=np.float32)
    y = np.linspace(0, 60, height, dtype=np.float32)[:, None]
    base = (x + y + (seq % PATTERNS) * 5).astype(np.uint8)
    return np.stack([base, np.full_like(base, 100), base[::-1, ::-1]], axis=2)


def encode_jpeg(image: npt.NDArray[np.uint8]) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return bytes(buf)


_JPEGS = [encode_jpeg(make_image(i)) for i in range(PATTERNS)]


@dataclass
class Record:
    """What the server saw; read it from tests after waiting on a condition."""

    connections: int = 0
    hellos: list[Hello] = field(default_factory=list)
    credits: list[Credit] = field(default_factory=list)
    pongs: int = 0
    goodbyes: list[Goodbye] = field(default_factory=list)
    frames_sent: int = 0
    max_outstanding: int = 0  # frames sent minus credits returned, beyond the window
    errors: list[str] = field(default_factory=list)


class _Handler:
    def __init__(self, server: ScriptedServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.conn = Connection(Role.SERVER)
        self.goodbye: tuple[GoodbyeCode, str] | None = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        try:
            if self.server.tls is not None:
                self.sock = self.server.tls.wrap_socket(self.sock, server_side=True)
            self._loop()
        except OSError:
            pass
        finally:
            self.sock.close()

    def _loop(self) -> None:  # noqa: PLR0912 - a script, one branch per behaviour
        server, sock, conn = self.server, self.sock, self.conn
        window = credits = sent = granted = 0
        last_seq = -1
        nonce = b""
        garbage_sent = False
        next_ping = time.monotonic() + (server.ping_interval_s or 1e9)
        while not server.stopping:
            if self.goodbye is not None:
                sock.sendall(conn.send(Goodbye(*self.goodbye)))
                return
            mode = server.mode
            if mode == "stall":
                time.sleep(0.01)
                continue
            if mode == "garbage" and not garbage_sent:
                sock.sendall(GARBAGE)
                garbage_sent = True
            pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
            readable = pending or select.select([sock], [], [], 0.005)[0]
            if readable:
                data = sock.recv(65536)
                if not data:
                    return
                try:
                    events = conn.receive_data(data)
                except RemoteProtocolError as exc:
                    server.record.errors.append(str(exc))
                    return
                for event in events:
                    if isinstance(event, Hello):
                        server.record.hellos.append(event)
                        window = credits = event.credit_window
                        if server.hello_goodbye is not None:
                            sock.sendall(conn.send(Goodbye(*server.hello_goodbye)))
                            return
                        if server.token is not None:
                            nonce = new_nonce()
                            sock.sendall(conn.send(Challenge(nonce)))
                        else:
                            sock.sendall(conn.send(server.stream_info))
                    elif isinstance(event, Auth):
                        assert server.token is not None
                        if verify_digest(server.token, nonce, event.digest):
                            sock.sendall(conn.send(server.stream_info))
                        else:
                            reason = "authentication failed: wrong token"
                            sock.sendall(conn.send(Goodbye(GoodbyeCode.AUTH_FAILED, reason)))
                            return
                    elif isinstance(event, Credit):
                        server.record.credits.append(event)
                        credits += event.credits
                        granted += event.credits
                    elif isinstance(event, Ping):
                        sock.sendall(conn.send(Pong(event.token)))
                    elif isinstance(event, Pong):
                        server.record.pongs += 1
                    elif isinstance(event, Goodbye):
                        server.record.goodbyes.append(event)
                        return
            if conn.state is not State.STREAMING or mode == "garbage":
                continue
            if time.monotonic() >= next_ping:
                sock.sendall(conn.send(Ping(1)))
                next_ping = time.monotonic() + (server.ping_interval_s or 1e9)
            frame = server.newest
            if frame is not None and frame.seq > last_seq and (credits > 0 or mode == "flood"):
                header, payload = conn.send_frame(frame)
                sock.sendall(header + payload)
                last_seq = frame.seq
                credits -= 1
                sent += 1
                server.record.frames_sent += 1
                outstanding = sent - granted
                server.record.max_outstanding = max(server.record.max_outstanding, outstanding)
                assert mode == "flood" or outstanding <= window


class ScriptedServer:
    """Use as a context manager; ``url`` is where clients connect."""

    def __init__(
        self,
        *,
        token: str | None = None,
        hello_goodbye: tuple[GoodbyeCode, str] | None = None,
        ping_interval_s: float | None = None,
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.tls = tls
        self.token = token
        self.hello_goodbye = hello_goodbye
        self.ping_interval_s = ping_interval_s
        self.stream_info = StreamInfo(WIDTH, HEIGHT, Codec.JPEG, 30.0, "scripted")
        self.mode = "normal"  # or "garbage", "stall", "flood" (ignore credit)
        self.record = Record()
        self.newest: Frame | None = None
        self.stopping = False
        self.port = port
        self._seq = 0
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._handlers: list[_Handler] = []
        self._pusher: threading.Thread | None = None
        self._pushing = threading.Event()

    @property
    def url(self) -> str:
        return f"camstream://127.0.0.1:{self.port}"

    def start(self) -> ScriptedServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(8)
        listener.settimeout(0.01)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self.stopping = False
        accept = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._threads = [accept]
        accept.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection abruptly (no goodbye)."""
        self.stopping = True
        for thread in self._threads:
            thread.join()
        for handler in self._handlers:
            handler.thread.join()
        self._handlers = []
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop_pushing()
        self.stop()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self, listener: socket.socket) -> None:
        while not self.stopping:
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            sock.settimeout(5.0)
            self.record.connections += 1
            handler = _Handler(self, sock)
            self._handlers.append(handler)
            handler.thread.start()

    # -- frames ------------------------------------------------------------

    def publish(self, seq: int | None = None) -> Frame:
        """Make a new newest frame (pattern ``seq % PATTERNS``); the older one is replaced."""
        self._seq = self._seq + 1 if seq is None else seq
        frame = Frame(
            self._seq, time.time_ns(), WIDTH, HEIGHT, Codec.JPEG, _JPEGS[self._seq % PATTERNS]
        )
        self.newest = frame
        return frame

    def start_pushing(self, fps: float) -> None:
        """Publish frames at ``fps`` in a thread, like a camera."""

        def push() -> None:
            while not self._pushing.wait(1 / fps):
                self.publish()

        self._pushing.clear()
        self._pusher = threading.Thread(target=push, daemon=True)
        self._pusher.start()

    def stop_pushing(self) -> None:
        self._pushing.set()
        if self._pusher is not None:
            self._pusher.join()
            self._pusher = None

    # -- misbehaviour -------------------------------------------------------

    def goodbye_all(self, code: GoodbyeCode, reason: str = "") -> None:
        """Make every current connection say goodbye and close."""
        for handler in self._handlers:
            handler.goodbye = (code, reason)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or predicate}")
        time.sleep(0.01)
