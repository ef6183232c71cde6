"""TLS: one certificate covers the native protocol and HTTPS; wrong-protocol peers fail clearly.

The certificate is self-signed and made at run time for 127.0.0.1/localhost.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from camstream.client.threaded import Client
from camstream.config import parse_address
from camstream.errors import AuthenticationError, ConnectError, ConnectionClosed
from camstream.server.server import Server
from camstream.wire.protocol import Connection, Goodbye, GoodbyeCode, Hello, Role
from netfaults import CLIENT, FAST, self_signed_cert, wait_until


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return self_signed_cert(Path(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def tls_server(running_server: Callable[..., Server], cert: tuple[str, str]) -> Server:
    return running_server("test", tls_cert=cert[0], tls_key=cert[1], token="s3cret", **FAST)


def test_scheme() -> None:
    assert parse_address("camstreams://127.0.0.1:9000").tls
    assert not parse_address("camstream://127.0.0.1:9000").tls


def test_native_stream_over_tls(tls_server: Server, cert: tuple[str, str]) -> None:
    assert tls_server.url.startswith("camstreams://")
    with Client(tls_server.url, token="s3cret", tls_ca=cert[0], reconnect=False, **CLIENT) as c:
        frame = c.read_frame(timeout_s=10)
    assert frame.width == 160


def test_wrong_token_over_tls(tls_server: Server, cert: tuple[str, str]) -> None:
    with (
        Client(tls_server.url, token="nope", tls_ca=cert[0], **CLIENT) as client,
        pytest.raises(AuthenticationError, match="authentication failed"),
    ):
        client.read_frame(timeout_s=10)


def test_https_on_the_same_port(tls_server: Server, cert: tuple[str, str]) -> None:
    assert tls_server.http_url.startswith("https://")
    context = ssl.create_default_context(cafile=cert[0])
    request = urllib.request.Request(
        tls_server.http_url + "status", headers={"Authorization": "Bearer s3cret"}
    )
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        assert json.load(response)["server"] == "camstream"


def test_client_verifies_the_certificate(tls_server: Server) -> None:
    """Without --tls-ca the system store does not know a self-signed cert: refused, not retried."""
    started = time.monotonic()
    with (
        Client(tls_server.url, token="s3cret", **CLIENT) as client,  # reconnect on
        pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.read_frame(timeout_s=10)
    assert time.monotonic() - started < 5


def test_plaintext_client_on_a_tls_port_is_told_to_use_tls(
    tls_server: Server, cert: tuple[str, str]
) -> None:
    plain = f"camstream://127.0.0.1:{tls_server.port}"
    with (
        Client(plain, token="s3cret", reconnect=False, **CLIENT) as client,
        pytest.raises(ConnectionClosed, match=r"requires TLS.*camstreams://"),
    ):
        client.read_frame(timeout_s=10)
    # Raw bytes: the answer is a well-formed camstream GOODBYE, in plaintext.
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as sock:
        sock.sendall(Connection(Role.CLIENT).send(Hello(2, "plain")))
        received = _read_all(sock)
    (goodbye,) = Connection(Role.CLIENT).receive_data(received)
    assert isinstance(goodbye, Goodbye) and goodbye.code is GoodbyeCode.PROTOCOL_ERROR
    # ...and the server is unharmed.
    with Client(tls_server.url, token="s3cret", tls_ca=cert[0], reconnect=False, **CLIENT) as c:
        c.read_frame(timeout_s=10)


def test_plain_http_on_a_tls_port_is_told_to_use_https(tls_server: Server) -> None:
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as sock:
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"https://" in answer


def test_tls_client_on_a_plain_port(running_server: Callable[..., Server]) -> None:
    server = running_server("test", **FAST)
    tls_url = f"camstreams://127.0.0.1:{server.port}"
    with (
        Client(tls_url, reconnect=False, tls_verify=False, **CLIENT) as client,
        pytest.raises(ConnectError, match="does not speak TLS on this port; use camstream:"),
    ):
        client.read_frame(timeout_s=10)
    with Client(server.url, reconnect=False, **CLIENT) as good:
        good.read_frame(timeout_s=10)


@pytest.mark.parametrize("sent", [b"", b"\x16", b"\x16\x03\x01\x02\x00\x01"])
def test_stalled_tls_handshake_is_dropped(tls_server: Server, sent: bytes) -> None:
    """Silence, or the start of a ClientHello and then silence: dropped at the deadline."""
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(sent)
        _read_all(sock)
        elapsed = time.monotonic() - started
    assert elapsed < 0.5 + 1.0, f"dropped after {elapsed:.2f} s"
    wait_until(lambda: tls_server.connection_count == 0, 3, "the connection to be released")


def _read_all(sock: socket.socket, timeout_s: float = 5.0) -> bytes:
    """Everything until the server closes (a reset counts as closing)."""
    sock.settimeout(timeout_s)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
