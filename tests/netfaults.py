"""Helpers for the security, hostile-client, fault and TLS tests.

* :class:`RawPeer`: a raw socket that speaks (or abuses) the camstream protocol
  by hand, for tests that must control every byte.
* :class:`TcpProxy`: a forwarding proxy that can *stall* (stop forwarding in
  both directions while keeping every connection open), like a dead network.
* :class:`FrameLog`: a good viewer's frames, recorded by a reader thread, so a
  test can assert it kept receiving during each phase of an attack.
* :func:`self_signed_cert`: a certificate for 127.0.0.1/localhost, made at run
  time (``cryptography`` if installed, else the ``openssl`` command).
* :func:`open_fds`, :func:`thread_count`, :func:`wait_until`.

Everything binds 127.0.0.1 with ephemeral ports and is closed by its owner.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import itertools
import os
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from camstream.client.threaded import Client
from camstream.errors import ConnectionClosed, RemoteProtocolError
from camstream.wire.auth import compute_digest
from camstream.wire.protocol import Auth, Challenge, Connection, Event, Hello, Role

# Server and client options that make timeouts fire in tests within a second or two.
HANDSHAKE_S = 0.5
HEARTBEAT_TIMEOUT_S = 1.0
FAST: dict[str, Any] = {
    "width": 160,
    "height": 120,
    "fps": 20,
    "handshake_timeout_s": HANDSHAKE_S,
    "heartbeat_interval_s": 0.2,
    "heartbeat_timeout_s": HEARTBEAT_TIMEOUT_S,
}
CLIENT: dict[str, Any] = {
    "heartbeat_interval_s": 0.2,
    "heartbeat_timeout_s": HEARTBEAT_TIMEOUT_S,
    "connect_timeout_s": 2.0,
}


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.02)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def thread_count() -> int:
    return threading.active_count()


class RawPeer:
    """A client socket driven by hand; parses what the server sends with a real Connection."""

    def __init__(self, port: int, *, timeout_s: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self.conn = Connection(Role.CLIENT)
        self.events: list[Event] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def hello(self, credit_window: int = 2) -> None:
        self.send(self.conn.send(Hello(credit_window, "raw-peer")))

    def receive(self, timeout_s: float, until: type | None = None) -> list[Event]:
        """Events that arrive within ``timeout_s``; stops early at EOF (``self.closed``)
        or once an event of type ``until`` has arrived."""
        deadline = time.monotonic() + timeout_s
        got: list[Event] = []
        while (remaining := deadline - time.monotonic()) > 0:
            if until is not None and any(isinstance(e, until) for e in got):
                break
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed_at = time.monotonic()
                break
            got += self.conn.receive_data(chunk)
        self.events += got
        return got

    @property
    def closed(self) -> bool:
        return hasattr(self, "closed_at")

    def wait_closed(self, timeout_s: float) -> float:
        """Read (and keep) everything until the server closes; returns when it did."""
        deadline = time.monotonic() + timeout_s
        while not self.closed:
            assert time.monotonic() < deadline, f"the server kept the connection > {timeout_s} s"
            with contextlib.suppress(RemoteProtocolError):
                self.receive(0.05)
        return self.closed_at

    def authenticate(self, token: str) -> None:
        challenge = next(e for e in self.receive(2.0, Challenge) if isinstance(e, Challenge))
        self.send(self.conn.send(Auth(compute_digest(token, challenge.nonce))))

    def close(self) -> None:
        self.sock.close()


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target_port``; :meth:`stall` freezes the wire.

    While stalled nothing is read or forwarded in either direction and new
    connections are accepted but not served: to both ends it looks like a
    network that went dead without a FIN or RST.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._pending: list[socket.socket] = []
        self._clients: set[socket.socket] = set()
        self.client_bytes = bytearray()  # everything the clients sent, for inspection
        self._stalled = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()

    def stall(self) -> None:
        self._stalled.set()

    def resume(self) -> None:
        self._stalled.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in [*self._pairs, *self._pending, self._listener]:
            sock.close()
        self._selector.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(0.02):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    client, _ = self._listener.accept()
                    self._pending.append(client)
                elif not self._stalled.is_set():
                    self._forward(sock)
            if not self._stalled.is_set():
                self._connect_pending()
                self._set_interest(selectors.EVENT_READ)
            else:
                self._set_interest(0)

    def _set_interest(self, events: int) -> None:
        for sock in self._pairs:
            registered = self._is_registered(sock)
            if events and not registered:
                self._selector.register(sock, events)
            elif not events and registered:
                self._selector.unregister(sock)

    def _is_registered(self, sock: socket.socket) -> bool:
        try:
            self._selector.get_key(sock)
        except KeyError:
            return False
        return True

    def _connect_pending(self) -> None:
        while self._pending:
            client = self._pending.pop()
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            self._pairs[client] = upstream
            self._pairs[upstream] = client
            self._clients.add(client)

    def _forward(self, sock: socket.socket) -> None:
        other = self._pairs.get(sock)
        if other is None:
            return
        try:
            data = sock.recv(65536)
            if data:
                if sock in self._clients:
                    self.client_bytes += data
                other.sendall(data)
                return
        except OSError:
            pass
        for end in (sock, other):
            if self._is_registered(end):
                self._selector.unregister(end)
            self._pairs.pop(end, None)
            self._clients.discard(end)
            end.close()


class FrameLog:
    """A good viewer: a Client plus a thread recording when each frame arrived."""

    def __init__(self, url: str, **options: Any) -> None:
        self.client = Client(url, **options)
        self.times: list[float] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frame-log", daemon=True)

    def __enter__(self) -> FrameLog:
        self.client.open()
        self.client.wait_connected(10)
        self._thread.start()
        wait_until(lambda: len(self.times) >= 3, 10, "the good viewer's first frames")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.client.read_frame(timeout_s=0.2)
            except TimeoutError:
                continue
            except ConnectionClosed as exc:
                if not self._stop.is_set():
                    self.error = exc
                return
            self.times.append(time.monotonic())

    def frames_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.times if start <= t <= end)

    def max_gap_s(self, start: float, end: float) -> float:
        inside = [start, *(t for t in self.times if start <= t <= end), end]
        return max(b - a for a, b in itertools.pairwise(inside))


def self_signed_cert(directory: Path) -> tuple[str, str]:
    """(cert.pem, key.pem) for CN=localhost with SANs 127.0.0.1 and localhost."""
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", str(key_path), "-out", str(cert_path)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        return str(cert_path), str(key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(cert_path), str(key_path)
