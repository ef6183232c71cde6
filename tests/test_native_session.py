"""One native session, driven through asyncio.Protocol calls with a fake transport."""

from __future__ import annotations

import asyncio
import errno
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from camstream.codec import Codec
from camstream.config import ServerConfig
from camstream.delivery import Renditions
from camstream.server.hub import Hub
from camstream.server.transports.native import NativeSession, SessionContext
from camstream.wire.protocol import Connection, Goodbye, GoodbyeCode, Hello, Role, StreamInfo


class VanishingTransport(asyncio.Transport):
    """A socket whose peer is already gone: half-closing it fails with ENOTCONN."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.aborted = False
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.aborted or self.closed

    def write(self, data: Any) -> None:
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True


async def _session_that_says_goodbye_to_a_vanished_peer() -> VanishingTransport:
    hub = Hub()
    info = StreamInfo(4, 2, Codec.JPEG, 30.0)
    stream = SimpleNamespace(
        name="main", hub=hub, renditions=Renditions(), stream_info=lambda: info
    )
    session = NativeSession(
        SessionContext(
            config=ServerConfig(), find_stream=lambda _name: stream, viewer_count=hub.count
        )
    )
    transport = VanishingTransport()
    session.connection_made(transport)
    client = Connection(Role.CLIENT)
    session.data_received(client.send(Hello(2, "test")))
    session.data_received(client.send(Goodbye(GoodbyeCode.NORMAL)))  # then the peer vanishes
    session.connection_lost(None)
    await asyncio.sleep(0)
    return transport


def test_a_peer_that_vanished_before_our_half_close_is_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="camstream")
    transport = asyncio.run(_session_that_says_goodbye_to_a_vanished_peer())
    assert transport.aborted  # the socket is released at once, not after the grace
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [], [r.getMessage() for r in errors]
    assert any("gone before our goodbye" in r.getMessage() for r in caplog.records)
