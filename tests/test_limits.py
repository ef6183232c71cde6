"""Limits shared by both protocols on one port, checked on a real server.

* ``max_viewers`` counts native and HTTP (MJPEG) viewers together, both ways.
* An HTTP request head over 32 KiB is refused with 431 even when it has only a
  few headers, each within aiohttp's own line and header-count limits (so it is
  camstream's guard that answers, not aiohttp's).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable, Iterable
from typing import Any

from camstream import Server
from camstream.config import ServerConfig
from camstream.delivery import Renditions
from camstream.frame import Codec
from conftest import MjpegReader
from netfaults import FAST, wait_until

HELLO = bytes.fromhex(
    "43 53 02 01 00 00 00 0c 00 02 00 00 00 00 00 00 00 00 00 00"
)  # docs/protocol.md §1 example
STREAM_INFO, GOODBYE, SERVER_FULL = 4, 9, 4


def _read_message(sock: socket.socket) -> tuple[int, bytes]:
    def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = sock.recv(count - len(data))
            assert chunk, "the server closed the connection"
            data += chunk
        return data

    _, _, kind, length = struct.unpack("!2sBBI", exactly(8))
    return kind, exactly(length)


def test_an_mjpeg_viewer_fills_the_last_slot_for_native_clients(
    running_server: Callable[..., Server], open_mjpeg: Callable[..., MjpegReader]
) -> None:
    server = running_server("test", max_viewers=1, **FAST)
    reader = open_mjpeg(server.port)
    assert reader.status == 200
    reader.read_part()
    wait_until(lambda: server.status()["viewer_count"] == 1, 5, "the MJPEG viewer")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(HELLO)
        kind, body = _read_message(sock)
    assert kind == GOODBYE
    assert struct.unpack("!H", body[:2])[0] == SERVER_FULL


def test_a_native_viewer_fills_the_last_slot_for_mjpeg_clients(
    running_server: Callable[..., Server], open_mjpeg: Callable[..., MjpegReader]
) -> None:
    server = running_server("test", max_viewers=1, **FAST)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(HELLO)
        assert _read_message(sock)[0] == STREAM_INFO
        wait_until(lambda: server.status()["viewer_count"] == 1, 5, "the native viewer")
        reader = open_mjpeg(server.port)
        assert reader.status == 503
        assert reader.read_body_bytes(11) == b"server full"


def test_a_head_over_32_kib_with_few_headers_gets_431(
    running_server: Callable[..., Server],
) -> None:
    server = running_server("test", **FAST)
    # 5 headers of 7,000 bytes: each under aiohttp's 8,190-byte field limit and far
    # under its 128-header limit, together 35 KB, over camstream's 32 KiB.
    padding = "".join(f"X-Pad-{i}: {'a' * 7000}\r\n" for i in range(5))
    head = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n{padding}\r\n".encode()
    assert len(head) > 32 * 1024
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head)
        status_line = sock.recv(64).split(b"\r\n")[0]
    assert status_line == b"HTTP/1.1 431 Request Header Fields Too Large"


def test_a_head_just_under_32_kib_with_few_headers_is_served(
    running_server: Callable[..., Server],
) -> None:
    server = running_server("test", **FAST)
    padding = "".join(f"X-Pad-{i}: {'a' * 6000}\r\n" for i in range(5))
    head = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{padding}\r\n"
    assert len(head) < 32 * 1024
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head.encode())
        status_line = sock.recv(64).split(b"\r\n")[0]
    assert status_line.startswith(b"HTTP/1.1 ") and b" 431 " not in status_line
    assert status_line.split()[1] in (b"200", b"503")


class _StalledTransport(asyncio.Transport):
    """A transport whose peer never reads: it counts what the session writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.aborted = self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def abort(self) -> None:
        self.aborted = self.closing = True

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def test_unread_control_replies_are_cut_just_past_64_kib() -> None:
    # docs/protocol.md §4: replies that wait behind a peer that does not read are
    # bounded by 64 KiB. The end-to-end test in test_conformance.py shows the cut
    # happens; this one shows where, which only a transport we control can see
    # (on a real socket the kernel buffers hold an unknown amount first).
    from types import SimpleNamespace

    from camstream.server.hub import Hub
    from camstream.server.transports.native import NativeSession, SessionContext
    from camstream.wire.protocol import StreamInfo

    ping = bytes.fromhex("43 53 02 07 00 00 00 08") + bytes(8)  # 16 bytes; its PONG too

    async def run() -> tuple[int, bool]:
        config = ServerConfig(
            handshake_timeout_s=60, heartbeat_interval_s=60, heartbeat_timeout_s=120
        )
        info = StreamInfo(1, 1, Codec.JPEG, 0.0)
        hub = Hub()
        stream = SimpleNamespace(
            name="main", hub=hub, renditions=Renditions(), stream_info=lambda: info
        )
        context = SessionContext(
            config=config, find_stream=lambda _name: stream, viewer_count=hub.count
        )
        session = NativeSession(context)
        transport = _StalledTransport()
        session.connection_made(transport)
        try:
            session.data_received(HELLO)
            session.pause_writing()  # the socket buffers are full from here on
            before = transport.written
            for _ in range(10_000):
                if transport.aborted:
                    break
                session.data_received(ping)
            return transport.written - before, transport.aborted
        finally:
            session.connection_lost(None)

    queued, aborted = asyncio.run(run())
    assert aborted
    assert 64 * 1024 - 16 < queued <= 64 * 1024
