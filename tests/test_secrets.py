"""The token never reaches output: not the server's logs or stderr, not the client's
messages, not the viewer window."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest

from camstream.app import viewer
from camstream.app.cli import main
from camstream.config import parse_address, redact
from camstream.errors import ConfigError
from camstream.server.transports.httplog import RequestLog, scrub
from processes import Command, child_env, stop_cleanly

if TYPE_CHECKING:
    from camstream.server.server import Server

SECRET = "s3cret"

# Requests aiohttp itself refuses with a 4xx, each carrying ?token= in its first line.
MALFORMED = [
    f"GET /stream.mjpg?token={SECRET} HTTP/1.1 trailing-garbage\r\nHost: 127.0.0.1\r\n\r\n",
    f"GET /status?token={SECRET}&pad={'A' * 9000} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    f"GET /status?token={SECRET} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: {'B' * 9000}\r\n\r\n",
    f"G\x01T /snapshot.jpg?token={SECRET} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    f"GET /snapshot.jpg?token={SECRET} HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n",
    f"GET /x?token={SECRET}\x00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
]


def send_and_drain(port: int, request: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode("latin1"))
        data = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data


# -- 4. the server's log --------------------------------------------------------------


def test_malformed_requests_log_no_token_and_no_traceback(
    running_server: Callable[..., Server], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # even debug records must not carry it
    server = running_server("test", width=160, height=120, fps=10, token=SECRET)
    for request in MALFORMED:
        answer = send_and_drain(server.port, request)
        assert answer.startswith(b"HTTP/1.") and answer[9:10] == b"4", (request[:40], answer[:60])
    time.sleep(0.2)  # records are written on the server's loop thread
    assert caplog.records, "aiohttp logged nothing: the test would prove nothing"
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert SECRET not in text, text
        assert "Traceback" not in text, text
        assert record.exc_info is None, text
        if record.name.startswith("aiohttp"):
            assert record.levelno <= logging.DEBUG, text  # a client's mistake is not an error


def test_the_command_prints_no_token_for_malformed_requests() -> None:
    """What a user of ``camstream serve`` sees on stderr (no logging configured)."""
    env = child_env(CAMSTREAM_TOKEN=SECRET)
    args = ["serve", "--source", "test", "--port", "0", "--width", "160", "--height", "120"]
    with Command(args, env=env) as serve:
        port = serve.wait_port()
        for request in MALFORMED:
            send_and_drain(port, request)
        assert stop_cleanly(serve) == 0, serve.stderr
        assert SECRET not in serve.stderr
        # The banner's one clickable link (as Jupyter prints its own) is the only place.
        assert serve.stdout.count(SECRET) == 1 and f"#token={SECRET}" in serve.stdout
        assert "Traceback" not in serve.stderr
        assert "Error handling request" not in serve.stderr


def test_a_real_bug_still_logs_its_traceback_without_the_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    log = RequestLog(logging.getLogger("aiohttp.server"))
    try:
        raise KeyError(f"/status?token={SECRET}")
    except KeyError as exc:
        log.exception("Error handling request from %s", "127.0.0.1", exc_info=exc)
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert "Traceback" in record.getMessage() and "KeyError" in record.getMessage()
    assert SECRET not in record.getMessage()
    assert scrub(f"GET /a?token={SECRET}&x=1 HTTP/1.1") == "GET /a?\N{HORIZONTAL ELLIPSIS} HTTP/1.1"


# -- 5. the client's messages and window ---------------------------------------------


def test_redact() -> None:
    assert redact(f"camstream://h:1?token={SECRET}") == "camstream://h:1?token=***"
    assert redact(f"x?a=1&token={SECRET}&b=2") == "x?a=1&token=***&b=2"
    assert redact(f"'camstream://h:1?TOKEN={SECRET}'") == "'camstream://h:1?TOKEN=***'"


def test_view_error_message_redacts_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 1: nothing listens there, so the viewer fails and says where it tried.
    code = main(
        ["view", "--headless", "--seconds", "1", "--timeout", "1",
         f"camstream://127.0.0.1:1?token={SECRET}"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    assert SECRET not in captured.err + captured.out
    assert "127.0.0.1:1" in captured.err and "token=***" in captured.err


def test_a_bad_address_error_redacts_the_token() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_address(f"ftp://h:1?token={SECRET}")
    assert SECRET not in str(raised.value) and "token=***" in str(raised.value)


@pytest.mark.parametrize("state", ["connecting", "reconnecting"])
def test_the_window_never_draws_the_token(state: str) -> None:
    client = SimpleNamespace(
        state=state,
        stats=SimpleNamespace(last_error=f"connection refused by camstream://h:1?token={SECRET}"),
    )
    address = f"camstream://127.0.0.1:8080?token={SECRET}"
    window = viewer._Window(client, address, overlay=True)  # type: ignore[arg-type]
    lines = viewer._status_lines(client, window.address, 0.0)  # type: ignore[arg-type]
    assert lines[0].startswith(
        ("connecting to camstream://127.0.0.1:8080?token=***", "server gone")
    )
    assert all(SECRET not in line for line in lines), lines
    assert "token=***" in lines[0]
    # _status_lines is the one place the address becomes screen text.
    raw = viewer._status_lines(client, address, 0.0)  # type: ignore[arg-type]
    assert all(SECRET not in line for line in raw), raw
