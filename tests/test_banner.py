"""The start-up banner: every printed command runs as shown."""

from __future__ import annotations

import ipaddress
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from camstream.app.banner import banner, camstream_command, reachable_hosts
from camstream.server.server import Server


def test_a_camstream_script_off_the_path_is_named_by_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / ".venv" / "bin" / "camstream"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script), "serve"])
    monkeypatch.setenv("PATH", "/nonexistent")
    assert camstream_command() == os.path.join(".venv", "bin", "camstream")


def test_python_dash_m_without_a_script_on_the_path_prints_python_dash_m(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "argv", ["/x/camstream/__main__.py"])
    monkeypatch.setenv("PATH", "/nonexistent")
    command = camstream_command()
    assert command.endswith(" -m camstream")
    # It runs as printed.
    done = subprocess.run(
        [*shlex.split(command), "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "camstream" in done.stdout


def test_a_wildcard_bind_lists_addresses_other_machines_can_use() -> None:
    assert reachable_hosts("127.0.0.1") == ["127.0.0.1"]
    for host in reachable_hosts("0.0.0.0"):
        ip = ipaddress.ip_address(host)
        assert ip.version == 4 and not ip.is_loopback and not ip.is_link_local


def test_banner_commands_are_one_per_line_and_the_token_link_opens_the_page(
    running_server: Callable[..., Server],
) -> None:
    server = running_server("test", host="0.0.0.0", token="s3cr et")
    text = banner(server)
    assert " | " not in text  # nothing that reads like a shell pipe
    # Players as printed keep up with a live stream (measured in benchmarks/glass.py).
    assert f"-use_wallclock_as_timestamps 1 -f mpjpeg {server.http_url}stream.mjpg" in text
    assert f"vlc --network-caching=100 {server.http_url}stream.mjpg" in text
    assert f"{server.http_url}#token=s3cr%20et" in text
    others = reachable_hosts("0.0.0.0")
    for host in others:
        assert f"camstream://{host}:{server.port}" in text
    if not others:
        assert "no network address" in text
