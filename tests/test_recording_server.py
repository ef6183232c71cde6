"""Recording wired into the server: the same bytes viewers get, the HTTP API, replay."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from camstream import Client, Server
from camstream.recording import RecorderConfig, iter_segment
from netfaults import wait_until
from processes import child_env, run_command

TOKEN = "rec-token"
SMALL: dict[str, Any] = {"fps": 15, "width": 320, "height": 240}


def _get(url: str, token: str | None = TOKEN, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    return urllib.request.urlopen(request, timeout=10)


def test_recorded_bytes_are_what_viewers_received(
    tmp_path: Path, running_server: Callable[..., Server]
) -> None:
    server = running_server("test", record=str(tmp_path), **SMALL)
    received: list[bytes] = []
    with Client(server.url) as client:
        for _ in range(20):
            received.append(client.read_frame(timeout_s=10).data)
    recorder = server.producer.recorder
    assert recorder is not None
    wait_until(lambda: recorder.stats()["frames_written"] >= 25, 10, "the recorder to catch up")
    recorded = [data for s in recorder.segments() for _, data in iter_segment(s.path)]
    positions = [recorded.index(data) for data in received]  # each one, byte for byte
    assert positions == sorted(positions)  # and in the order they were received
    assert recorder.stats()["frames_dropped"] == 0
    assert server.status()["recording"]["state"] in ("recording", "idle")


def test_the_api_lists_downloads_and_switches_recording_and_needs_the_token(
    tmp_path: Path, running_server: Callable[..., Server]
) -> None:
    record = RecorderConfig(root_dir=str(tmp_path), continuous=False)
    server = running_server("test", record=record, token=TOKEN, **SMALL)
    base = f"{server.http_url}api/cams/main"
    for path, method in (("/recordings", "GET"), ("/record", "POST"), ("/replay", "GET")):
        with pytest.raises(urllib.error.HTTPError) as caught:
            _get(base + path, token=None, method=method, body={"action": "start"})
        assert caught.value.code == 401, path
        caught.value.close()

    with _get(base + "/record", method="POST", body={"action": "start"}) as answer:
        assert json.load(answer)["recording"] is True
    # On demand with nobody watching: the recording itself keeps capture running.
    wait_until(lambda: server.status()["recording"]["frames_written"] >= 10, 10, "frames on disk")
    with _get(base + "/record", method="POST", body={"action": "stop"}) as answer:
        assert json.load(answer)["recording"] is False

    with _get(base + "/recordings") as answer:
        segments = json.load(answer)["segments"]
    assert segments and segments[0]["frames"] >= 10 and segments[0]["size_bytes"] > 0
    with _get(server.http_url.rstrip("/") + segments[0]["url"]) as download:
        assert download.headers["Content-Type"] == "video/x-matroska"
        assert download.read(4) == b"\x1a\x45\xdf\xa3"  # the EBML (Matroska) magic
    with pytest.raises(urllib.error.HTTPError) as caught:
        _get(base + "/recordings/..%2F..%2Fetc%2Fpasswd")
    assert caught.value.code == 404
    caught.value.close()
    with pytest.raises(urllib.error.HTTPError) as caught:
        _get(base + "/record", method="POST", body={"action": "pause"})
    assert caught.value.code == 400
    caught.value.close()

    # Replay through the same server, at the recording's timing: JPEG parts.
    start = segments[0]["start"]
    with _get(f"{base}/replay?start={urllib.parse.quote(start)}") as stream:
        assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        head = stream.read(4096)
    assert b"Content-Type: image/jpeg" in head and b"\xff\xd8" in head


def test_a_camera_without_recording_says_how_to_enable_it(
    running_server: Callable[..., Server],
) -> None:
    server = running_server("test", **SMALL)
    with pytest.raises(urllib.error.HTTPError) as caught:
        _get(f"{server.http_url}api/cams/main/recordings", token=None)
    assert caught.value.code == 409
    assert "--record" in caught.value.read().decode()
    caught.value.close()


def test_serve_a_recording_as_a_source_and_the_record_command(
    tmp_path: Path, running_server: Callable[..., Server]
) -> None:
    record = RecorderConfig(root_dir=str(tmp_path), continuous=False)
    server = running_server("test", record=record, **SMALL)
    address = f"127.0.0.1:{server.port}/main"
    started = run_command(["record", "start", address], child_env())
    assert started.returncode == 0, started.stderr
    assert "camstream: recording into" in started.stdout
    recorder = server.producer.recorder
    assert recorder is not None
    wait_until(lambda: recorder.stats()["frames_written"] >= 15, 10, "frames on disk")
    stopped = run_command(["record", "stop", address], child_env())
    assert stopped.returncode == 0 and "not recording" in stopped.stdout, stopped.stderr
    wait_until(lambda: recorder.stats()["state"] != "recording", 10, "the segment to close")

    segment = recorder.segments()[0].path
    replay = running_server(segment)  # what `camstream serve --source FILE.mkv` builds
    assert replay.source.description.startswith("recording ")
    with Client(replay.url) as client:
        frame = client.read_frame(timeout_s=10)
    assert (frame.width, frame.height) == (320, 240)
