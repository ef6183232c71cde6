"""Who can reach the server: DNS rebinding (Host check), /healthz, exposure defaults.

A web page can rebind its own name to 127.0.0.1 and read a local server as its
own origin; only the ``Host`` header gives it away. These tests forge that
header on a raw socket and make a real Chromium do it with
``--host-resolver-rules``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from camstream.app.cli import build_parser, server_config_from_args
from camstream.config import ServerConfig, check_allowed_host
from camstream.errors import ConfigError
from camstream.server.transports.hosts import HostPolicy, host_name
from conftest import CHROMIUM, CHROMIUM_ARGS
from processes import child_env, run_command

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from camstream.server.server import Server

TOKEN = "s3cret-Token_42"


def http(port: int, request: str, timeout_s: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send one raw request; (status, lower-cased headers, body) read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(request.encode("latin1"))
        data = b""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def get(
    port: int, path: str, host: str | None, extra: str = ""
) -> tuple[int, dict[str, str], bytes]:
    # No Host: HTTP/1.0, as old tools send it (HTTP/1.1 requires one).
    version, host_line = ("1.0", "") if host is None else ("1.1", f"Host: {host}\r\n")
    # Connection: close, so that a 200 ends too (a trusted request stays alive).
    return http(port, f"GET {path} HTTP/{version}\r\n{host_line}{extra}Connection: close\r\n\r\n")


# -- 1. the Host policy, pure --------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "local", "allowed"),
    [
        ("127.0.0.1:8080", None, True),
        ("127.1.2.3", None, True),  # all of 127.0.0.0/8 is loopback
        ("localhost:8080", None, True),
        ("LOCALHOST.:8080", None, True),  # case and a trailing dot change nothing
        ("app.localhost", None, True),  # *.localhost always resolves to loopback
        ("[::1]:8080", None, True),
        ("[::ffff:127.0.0.1]", None, True),
        (None, None, True),  # no Host: not a browser, so not rebinding
        ("evil.example:8080", None, False),
        ("evil.example", "127.0.0.1", False),
        ("localhost.evil.example", None, False),
        ("127.0.0.1.evil.example", None, False),
        ("192.168.1.50:8080", None, False),  # not this connection's address
        ("192.168.1.50:8080", "192.168.1.50", True),  # the address it arrived on
        ("", None, False),
    ],
)
def test_host_policy_on_the_default_bind(
    header: str | None, local: str | None, allowed: bool
) -> None:
    assert HostPolicy("127.0.0.1").allows(header, local) is allowed


def test_host_policy_bound_address_and_listed_names() -> None:
    named = HostPolicy("camera.lan", ["Cam.Example.org", "10.0.0.7"])
    assert named.allows("camera.lan:8080")
    assert named.allows("cam.example.org")
    assert named.allows("10.0.0.7:80")
    assert not named.allows("sub.cam.example.org")
    assert not named.allows("evil.example")
    wildcard = HostPolicy("0.0.0.0")
    assert wildcard.allows("192.168.1.50:8080", "192.168.1.50")
    assert not wildcard.allows("evil.example", "192.168.1.50")
    assert not wildcard.allows("0.0.0.0:8080", "127.0.0.1")
    assert HostPolicy("127.0.0.1", ["*"]).allows("anything.example")
    assert host_name("[::1]:80") == "::1" and host_name("A.b:1") == "a.b"


@pytest.mark.parametrize("bad", ["http://cam.example", "cam.example/x", "cam example", "", ".x"])
def test_allowed_hosts_are_validated(bad: str) -> None:
    with pytest.raises(ConfigError, match="allowed host"):
        ServerConfig(allowed_hosts=(bad,))
    with pytest.raises(ConfigError):
        check_allowed_host(bad)
    with pytest.raises(ConfigError, match="list"):
        ServerConfig(allowed_hosts="cam.example")  # type: ignore[arg-type]


def test_allowed_host_is_a_repeatable_option() -> None:
    args = build_parser().parse_args(
        ["serve", "--allowed-host", "Cam.Example.org", "--allowed-host", "10.0.0.7"]
    )
    assert server_config_from_args(args).allowed_hosts == ("cam.example.org", "10.0.0.7")
    args = build_parser().parse_args(["serve", "--max-connections-per-address", "100"])
    assert server_config_from_args(args).max_connections_per_address == 100
    assert (
        server_config_from_args(build_parser().parse_args(["serve"])).max_connections_per_address
        == 32
    )


# -- 1. a forged Host, on the wire ----------------------------------------------------


@pytest.mark.parametrize("path", ["/snapshot.jpg", "/status", "/stream.mjpg", "/", "/healthz"])
def test_a_foreign_host_gets_421(running_server: Callable[..., Server], path: str) -> None:
    server = running_server("test", width=160, height=120, fps=10)
    status, headers, body = get(server.port, path, f"evil.example:{server.port}")
    assert status == 421
    assert headers["connection"] == "close"
    text = body.decode()
    assert "--allowed-host evil.example" in text and "DNS rebinding" in text
    assert b"\xff\xd8" not in body  # no JPEG


def test_loopback_and_listed_hosts_are_answered(running_server: Callable[..., Server]) -> None:
    server = running_server("test", width=160, height=120, fps=10, allowed_hosts=["cam.example"])
    port = server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "[::1]", f"cam.example:{port}", None):
        status, _, body = get(port, "/snapshot.jpg", host)
        assert status == 200, host
        assert body.startswith(b"\xff\xd8"), host
    assert get(port, "/snapshot.jpg", "other.example")[0] == 421


# -- 1. real Chromium, rebinding its own origin to 127.0.0.1 -------------------------


@pytest.fixture(scope="module")
def rebinding_browser() -> Iterator[Browser]:
    """Chromium that resolves evil.example to 127.0.0.1, as a rebinding attack makes it."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    args = [
        *CHROMIUM_ARGS,
        "--host-resolver-rules=MAP evil.example 127.0.0.1",
        "--no-proxy-server",
    ]
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield launched
        finally:
            launched.close()


READ_AS_PAGE = """async (paths) => {
    const out = {};
    for (const path of paths) {
        const response = await fetch(path);
        const body = new Uint8Array(await response.arrayBuffer());
        out[path] = [response.status, Array.from(body.slice(0, 2))];
    }
    return out;
}"""


def test_chromium_on_a_rebound_name_reads_nothing(
    running_server: Callable[..., Server], rebinding_browser: Browser
) -> None:
    server = running_server("test", width=160, height=120, fps=10)
    context = rebinding_browser.new_context()
    try:
        page = context.new_page()
        # The attacker's page, now at 127.0.0.1 under the attacker's name:
        # its scripts read the server as their own origin.
        response = page.goto(f"http://evil.example:{server.port}/")
        assert response is not None and response.status == 421
        seen = page.evaluate(READ_AS_PAGE, ["/snapshot.jpg", "/status", "/healthz"])
        assert seen == {
            "/snapshot.jpg": [421, [ord("4"), ord("2")]],
            "/status": [421, [ord("4"), ord("2")]],
            "/healthz": [421, [ord("4"), ord("2")]],
        }
        # The same browser, on the server's real address, is answered.
        page.goto(f"http://127.0.0.1:{server.port}/")
        seen = page.evaluate(READ_AS_PAGE, ["/snapshot.jpg"])
        assert seen == {"/snapshot.jpg": [200, [0xFF, 0xD8]]}
    finally:
        context.close()


# -- 6. /healthz on a token server -----------------------------------------------------


def test_healthz_on_a_token_server_says_only_up(running_server: Callable[..., Server]) -> None:
    server = running_server("test", width=160, height=120, fps=10, token=TOKEN)
    for watching in (False, True):
        if watching:  # a snapshot wakes capture: the server is "streaming" now
            assert (
                get(
                    server.port, "/snapshot.jpg", "127.0.0.1", f"Authorization: Bearer {TOKEN}\r\n"
                )[0]
                == 200
            )
        status, _, body = get(server.port, "/healthz", "127.0.0.1")
        assert status == 200
        assert json.loads(body) == {"ok": True, "state": "up"}, body
    # Without a token, /healthz is the full report (it is the same machine's business).
    open_server = running_server("test", width=160, height=120, fps=10)
    status, _, body = get(open_server.port, "/healthz", "127.0.0.1")
    report: dict[str, Any] = json.loads(body)
    assert status == 200 and report["state"] in ("idle", "streaming") and "latest_age_s" in report


# -- 7. exposure defaults -------------------------------------------------------------


def test_exposed_without_token_is_refused_by_the_command() -> None:
    # Refused before anything binds: no socket on 0.0.0.0 is ever opened.
    env = child_env()
    env.pop("CAMSTREAM_TOKEN", None)
    done = run_command(["serve", "--source", "test", "--host", "0.0.0.0", "--port", "0"], env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for word in ("--token", "CAMSTREAM_TOKEN", "--allow-anonymous", "0.0.0.0"):
        assert word in lines[0], lines[0]


def test_exposed_without_token_needs_allow_anonymous() -> None:
    parse = build_parser().parse_args
    with pytest.raises(ConfigError, match="allow-anonymous"):
        server_config_from_args(parse(["serve", "--host", "0.0.0.0"]))
    with pytest.raises(ConfigError, match="allow_anonymous=True"):
        ServerConfig(host="192.168.1.50")  # the library refuses too
    assert server_config_from_args(parse(["serve", "--host", "0.0.0.0", "--allow-anonymous"]))
    assert server_config_from_args(parse(["serve", "--host", "0.0.0.0", "--token", "t"]))
    assert ServerConfig(host="127.0.0.2").exposed is False  # loopback needs nothing
    assert ServerConfig(host="localhost").exposed is False


def test_server_header_names_no_versions(running_server: Callable[..., Server]) -> None:
    server = running_server("test", width=160, height=120, fps=10, token=TOKEN)
    port = server.port
    for path, host in (
        ("/", "127.0.0.1"),
        ("/status", "127.0.0.1"),
        ("/nope", "127.0.0.1"),
        ("/", "evil.example"),
    ):
        status, headers, _ = get(port, path, host)
        assert headers.get("server") == "camstream", (path, status, headers)
    # A malformed request, answered by aiohttp itself.
    status, headers, _ = http(port, "GET /\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status == 400
    assert "python" not in headers.get("server", "").lower()
    assert "aiohttp" not in headers.get("server", "").lower()
