"""Authentication and limits: the token, what an unauthenticated peer can see, max viewers.

Each test runs a real server on 127.0.0.1 (``running_server``) with short
timeouts, and talks to it with the real client or with hand-made bytes.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from camstream.app import commands
from camstream.client.threaded import Client
from camstream.config import ServerConfig
from camstream.errors import AuthenticationError, ServerFullError
from camstream.frame import Frame
from camstream.server.server import Server
from camstream.wire.auth import compute_digest
from camstream.wire.protocol import Auth, Challenge, Goodbye, GoodbyeCode, Ping, StreamInfo
from netfaults import CLIENT, FAST, RawPeer, TcpProxy, wait_until
from processes import child_env, run_command

TOKEN = "correct horse battery staple"


@pytest.fixture
def raw_peers() -> Iterator[Callable[[int], RawPeer]]:
    peers: list[RawPeer] = []

    def open_(port: int) -> RawPeer:
        peer = RawPeer(port)
        peers.append(peer)
        return peer

    yield open_
    for peer in peers:
        peer.close()


def test_right_token_streams(running_server: Callable[..., Server]) -> None:
    server = running_server("test", token=TOKEN, **FAST)
    with Client(server.url, token=TOKEN, reconnect=False, **CLIENT) as client:
        frame = client.read_frame(timeout_s=10)
    assert frame.width == 160


def test_token_from_the_address(running_server: Callable[..., Server]) -> None:
    server = running_server("test", token=TOKEN, **FAST)
    with Client(f"{server.url}?token={TOKEN}", reconnect=False, **CLIENT) as client:
        client.read_frame(timeout_s=10)


@pytest.mark.parametrize("token", ["wrong", None])
def test_wrong_or_missing_token_fails_clearly(
    running_server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, token: str | None
) -> None:
    monkeypatch.delenv("CAMSTREAM_TOKEN", raising=False)
    server = running_server("test", token=TOKEN, **FAST)
    started = time.monotonic()
    # reconnect stays on: an authentication failure must end the client anyway.
    with Client(server.url, token=token, **CLIENT) as client:
        with pytest.raises(AuthenticationError) as caught:
            client.read_frame(timeout_s=10)
        assert client.stats.frames_received == 0
    assert caught.value.code == GoodbyeCode.AUTH_FAILED
    if token is None:
        assert "requires a token" in str(caught.value)
    else:
        assert "authentication failed" in str(caught.value)
    assert time.monotonic() - started < 3
    wait_until(lambda: server.status()["viewer_count"] == 0, 5, "no viewer to be attached")


@pytest.mark.parametrize("token", ["wrong", None])
def test_the_cli_names_its_own_options_for_the_token(
    running_server: Callable[..., Server], token: str | None
) -> None:
    server = running_server("test", token=TOKEN, **FAST)
    args = ["snapshot", server.url, "-o", "never-written.jpg", "--timeout", "5"]
    if token is not None:
        args += ["--token", token]
    env = {k: v for k, v in child_env().items() if k != "CAMSTREAM_TOKEN"}
    result = run_command(args, env)
    assert result.returncode == 1, result.stderr
    assert "--token" in result.stderr and "CAMSTREAM_TOKEN" in result.stderr
    assert "token=..." not in result.stderr  # the library's words, not the command's
    assert "Traceback" not in result.stderr


def test_nothing_is_sent_before_authentication(
    running_server: Callable[..., Server], raw_peers: Callable[[int], RawPeer]
) -> None:
    server = running_server("test", token=TOKEN, **FAST)
    peer = raw_peers(server.port)
    peer.hello()
    peer.wait_closed(timeout_s=3)  # the peer never answers the challenge
    kinds = [type(e) for e in peer.events]
    assert kinds[0] is Challenge
    assert StreamInfo not in kinds and Frame not in kinds and Ping not in kinds
    goodbye = peer.events[-1]
    assert isinstance(goodbye, Goodbye) and goodbye.code is GoodbyeCode.AUTH_FAILED


def test_a_recorded_answer_is_useless_on_the_next_connection(
    running_server: Callable[..., Server], raw_peers: Callable[[int], RawPeer]
) -> None:
    server = running_server("test", token=TOKEN, **FAST)
    first = raw_peers(server.port)
    first.hello()
    first.authenticate(TOKEN)
    assert any(isinstance(e, StreamInfo) for e in first.receive(2.0, StreamInfo))
    nonce = next(e.nonce for e in first.events if isinstance(e, Challenge))

    replay = raw_peers(server.port)
    replay.hello()
    challenge = next(e for e in replay.receive(2.0, Challenge) if isinstance(e, Challenge))
    assert challenge.nonce != nonce  # a fresh nonce per connection
    replay.send(replay.conn.send(Auth(compute_digest(TOKEN, nonce))))
    replay.wait_closed(timeout_s=3)
    goodbye = replay.events[-1]
    assert isinstance(goodbye, Goodbye) and goodbye.code is GoodbyeCode.AUTH_FAILED
    assert not any(isinstance(e, (StreamInfo, Frame)) for e in replay.events)


def test_the_token_never_crosses_the_wire(running_server: Callable[..., Server]) -> None:
    server = running_server("test", token=TOKEN, **FAST)
    proxy = TcpProxy(server.port)
    try:
        url = f"camstream://127.0.0.1:{proxy.port}"
        with Client(url, token=TOKEN, reconnect=False, **CLIENT) as client:
            client.read_frame(timeout_s=10)
    finally:
        proxy.close()
    sent = bytes(proxy.client_bytes)
    assert sent.startswith(b"CS") and len(sent) > 40  # HELLO and AUTH were recorded
    assert TOKEN.encode() not in sent


def test_server_full(running_server: Callable[..., Server]) -> None:
    server = running_server("test", max_viewers=2, **FAST)
    with (
        Client(server.url, reconnect=False, **CLIENT) as first,
        Client(server.url, reconnect=False, **CLIENT) as second,
    ):
        first.read_frame(timeout_s=10)
        second.read_frame(timeout_s=10)
        # reconnect on: "server full" still reaches the caller, it is not retried forever.
        with Client(server.url, **CLIENT) as third, pytest.raises(ServerFullError, match="full"):
            third.read_frame(timeout_s=10)
        first.read_frame(timeout_s=5)  # the others are untouched
    wait_until(lambda: server.status()["viewer_count"] == 0, 5, "the viewers to leave")
    with Client(server.url, reconnect=False, **CLIENT) as later:
        later.read_frame(timeout_s=10)  # a freed slot is usable again


def test_server_full_checked_again_after_authentication(
    running_server: Callable[..., Server], raw_peers: Callable[[int], RawPeer]
) -> None:
    # A generous handshake deadline: the slow peer must outlive the other's admission.
    server = running_server(
        "test", max_viewers=1, token=TOKEN, **{**FAST, "handshake_timeout_s": 5}
    )
    slow = raw_peers(server.port)
    slow.hello()
    slow.receive(2.0, Challenge)  # the slot is not reserved by a challenge
    with Client(server.url, token=TOKEN, reconnect=False, **CLIENT) as fast:
        fast.read_frame(timeout_s=10)
        nonce = next(e.nonce for e in slow.events if isinstance(e, Challenge))
        slow.send(slow.conn.send(Auth(compute_digest(TOKEN, nonce))))
        slow.wait_closed(timeout_s=3)
        goodbye = slow.events[-1]
        assert isinstance(goodbye, Goodbye) and goodbye.code is GoodbyeCode.SERVER_FULL
        fast.read_frame(timeout_s=5)


def test_exposed_server_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    # Without a token an exposed server is refused (tests/test_exposure.py);
    # with --allow-anonymous it starts, and says what that means.
    commands._server_warnings(ServerConfig(host="0.0.0.0", allow_anonymous=True), None)
    assert "without --token" in capsys.readouterr().err
    # A token without TLS travels in clear over HTTP: said once.
    commands._server_warnings(ServerConfig(host="0.0.0.0", token="s3cret"), None)
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "without TLS" in err and "--tls-cert" in err
    commands._server_warnings(ServerConfig(host="127.0.0.1"), None)
    commands._server_warnings(ServerConfig(host="127.0.0.1", token="s3cret"), None)
    assert capsys.readouterr().err == ""


def test_http_routes_require_the_token(running_server: Callable[..., Server]) -> None:
    """Through the real server: config.token reaches the HTTP routes (web.py checks it)."""
    server = running_server("test", token=TOKEN, **FAST)
    for path in ("status", "snapshot.jpg"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(server.http_url + path, timeout=5)
        caught.value.close()
        assert caught.value.code == 401
        request = urllib.request.Request(
            server.http_url + path, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        query = urllib.parse.urlencode({"token": TOKEN})
        with urllib.request.urlopen(f"{server.http_url}{path}?{query}", timeout=10) as r:
            assert r.status == 200
