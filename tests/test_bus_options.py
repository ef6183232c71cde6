"""NATS options, the frame <-> message mapping, and the missing-extra error (no sockets)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from camstream.bus import NatsFrameSource, NatsOptions, NatsPublisher, parse_servers
from camstream.bus._client import connect_kwargs
from camstream.bus.options import camera_subject
from camstream.bus.wire import HDR_SEQ, frame_from_message, frame_headers
from camstream.errors import ConfigError, RemoteProtocolError
from camstream.frame import Codec, Frame


async def _noop(*_: object) -> None:
    return None


def kwargs_for(options: NatsOptions) -> dict[str, object]:
    return connect_kwargs(
        options, error_cb=_noop, disconnected_cb=_noop, reconnected_cb=_noop, pending_size=1
    )


def test_servers_come_from_the_command_line_comma_list() -> None:
    assert parse_servers("nats://h1:4222, h2:4222,,tls://h3:4443") == (
        "nats://h1:4222",
        "nats://h2:4222",
        "tls://h3:4443",
    )
    for bad in ("", " , ", "http://h1:80", "nats://"):
        with pytest.raises(ConfigError):
            parse_servers(bad)


def test_credentials_pass_through_and_are_exclusive(tmp_path: Path) -> None:
    kwargs = kwargs_for(NatsOptions(servers=("h1:4222",), token="s3cret"))
    assert kwargs["token"] == "s3cret"
    assert kwargs["max_reconnect_attempts"] == -1
    assert "tls" not in kwargs
    kwargs = kwargs_for(NatsOptions(servers=("h1",), user="cam", password="pw"))
    assert (kwargs["user"], kwargs["password"]) == ("cam", "pw")
    seed = tmp_path / "user.nk"
    seed.write_text("SUAxxx")
    assert kwargs_for(NatsOptions(servers=("h1",), nkey_seed_file=str(seed)))["nkeys_seed"] == str(
        seed
    )
    creds = tmp_path / "user.creds"
    creds.write_text("jwt")
    kwargs = kwargs_for(NatsOptions(servers=("h1",), creds_file=str(creds)))
    assert kwargs["user_credentials"] == str(creds)
    with pytest.raises(ConfigError, match="not both"):
        NatsOptions(servers=("h1",), token="t", user="u", password="p")
    with pytest.raises(ConfigError, match="only one kind"):
        NatsOptions(servers=("h1",), token="t", creds_file=str(creds))
    with pytest.raises(ConfigError, match="password"):
        NatsOptions(servers=("h1",), user="u")
    with pytest.raises(ConfigError, match="no such file"):
        NatsOptions(servers=("h1",), creds_file=str(tmp_path / "missing.creds"))
    assert "s3cret" not in repr(NatsOptions(servers=("h1",), token="s3cret"))


def test_tls_scheme_or_options_give_an_ssl_context() -> None:
    assert "tls" in kwargs_for(NatsOptions(servers=("tls://h1:4443",)))
    kwargs = kwargs_for(NatsOptions(servers=("h1",), tls_hostname="nats.example"))
    assert kwargs["tls_hostname"] == "nats.example"
    with pytest.raises(ConfigError, match="go together"):
        NatsOptions(servers=("h1",), tls_cert_file=__file__)


def test_camera_names_cannot_escape_their_subject() -> None:
    assert camera_subject("camstream", "front-door_1") == "camstream.front-door_1.jpeg"
    assert camera_subject("camstream", "c", Codec.PNG) == "camstream.c.png"
    for bad in ("a.b", "*", ">", "a b", "", "x" * 65):
        with pytest.raises(ConfigError):
            camera_subject("camstream", bad)


def test_a_frame_survives_the_trip_through_headers() -> None:
    frame = Frame(42, 1_700_000_000_123_456_789, 1280, 720, Codec.JPEG, b"\xff\xd8jpeg", True)
    headers = frame_headers(frame, "epoch1")
    bus = frame_from_message({**headers, "Nats-Sequence": "77"}, frame.data)
    assert bus.frame == frame
    assert (bus.epoch, bus.stream_seq) == ("epoch1", 77)


@pytest.mark.parametrize(
    "change",
    [
        {HDR_SEQ: "x"},
        {HDR_SEQ: "-1"},
        {"Camstream-Width": "0"},
        {"Camstream-Codec": "gif"},
    ],
)
def test_malformed_bus_messages_are_rejected(change: dict[str, str]) -> None:
    frame = Frame(1, 2, 3, 4, Codec.JPEG, b"data")
    with pytest.raises(RemoteProtocolError):
        frame_from_message({**frame_headers(frame, "e"), **change}, frame.data)
    with pytest.raises(RemoteProtocolError):
        frame_from_message(None, b"data")
    with pytest.raises(RemoteProtocolError):
        frame_from_message(frame_headers(frame, "e"), b"")


def test_without_nats_py_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import nats` raise ImportError, as if not installed.
    monkeypatch.setitem(sys.modules, "nats", None)
    options = NatsOptions(servers=("nats://127.0.0.1:4222",))
    for build in (NatsPublisher, NatsFrameSource):
        with pytest.raises(ConfigError, match=r"pip install 'camstream\[nats\]'"):
            build(options)
