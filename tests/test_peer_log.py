"""Bad peers cost one summary line a minute, never a flood of tracebacks."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

import pytest

from camstream.server.server import Server
from camstream.server.transports.peer_log import BAD_PEERS, BadPeerLog


def test_one_summary_per_interval_counting_every_reason() -> None:
    now = [0.0]
    records: list[str] = []

    class Target:
        def warning(self, fmt: str, *args: object) -> None:
            records.append(fmt % args)

    log = BadPeerLog(Target(), interval_s=60.0, clock=lambda: now[0])  # type: ignore[arg-type]
    for second in range(0, 59):
        now[0] = float(second)
        log.note("native protocol error")
        log.note("bad HTTP request (400)")
    assert records == []  # nothing before the minute is up
    now[0] = 60.0
    log.note("native protocol error")
    assert records == [
        "119 connections dropped for bad requests in the last minute "
        "(60 native protocol error, 59 bad HTTP request (400))"
    ]
    now[0] = 200.0
    assert log.flush() is None  # nothing since: nothing said
    assert len(records) == 1


def _garbage(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        sock.settimeout(2)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass  # a reset is an answer too


CHURN = [
    b"CS" + os.urandom(64),  # native magic, then garbage
    b"CS\x02\x01\x00\x00\x10\x00",  # a HELLO declaring 4 KiB: refused at the header
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # line too long
    b"\x00\x01\x02 not http at all\r\n\r\n",
    b"GET /status?token=s3cret HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"b" * 40000 + b"\r\n\r\n",
    b"",  # connect and vanish
]


@pytest.mark.timeout(60)
def test_connection_churn_against_the_real_server_logs_a_summary_not_a_flood(
    running_server: Callable[..., Server],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(BAD_PEERS, "interval_s", 1.0)
    caplog.set_level(logging.DEBUG)
    server = running_server("test", width=160, height=120, fps=10)
    connections = 0
    started = time.monotonic()
    while time.monotonic() - started < 3.0:
        for payload in CHURN:
            _garbage(server.port, payload)
            connections += 1
    time.sleep(1.2)  # the last interval's summary
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    summaries = [r for r in noisy if "connections dropped for bad requests" in r.getMessage()]
    assert summaries, "the churn must be reported"
    assert len(noisy) == len(summaries) <= 6, [r.getMessage() for r in noisy]
    assert all(r.exc_info is None and "Traceback" not in r.getMessage() for r in caplog.records)
    assert all("s3cret" not in r.getMessage() for r in caplog.records)
    # At most about one short debug line per dropped connection.
    assert len(caplog.records) <= 2 * connections + len(summaries), len(caplog.records)
