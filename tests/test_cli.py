"""The ``camstream`` command line: help, usage errors, source errors, snapshot, demo.

Mistakes a user can make (a camera that is not there, a missing file, a bad URL,
an out-of-range option) must end in one line that names the problem and the
fix, exit code 2, and never a traceback. Those run as real child processes, all
at once, so the exit code and stderr are exactly what a user sees.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import CompletedProcess

import cv2
import numpy as np
import pytest

from camstream.app.cli import build_parser, main
from camstream.client.threaded import Client
from camstream.codec import decode
from camstream.server.server import Server
from processes import Command, child_env, run_command

SMALL = ["--width", "320", "--height", "240"]


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() quiets FFmpeg through os.environ; keep that from leaking into other tests."""
    monkeypatch.setenv("OPENCV_FFMPEG_LOGLEVEL", "-8")


# (arguments, words the one error line must contain). These run as child
# processes: what a user sees, including that nothing prints a traceback.
USER_ERRORS: dict[str, tuple[list[str], list[str]]] = {
    "camera-missing": (["serve", "--source", "7", "--port", "0"], ["camera 7", "--source test"]),
    "file-missing": (
        ["serve", "--source", "/nonexistent/clip.mp4", "--port", "0"],
        ["/nonexistent/clip.mp4", "video file"],
    ),
    "bad-url": (
        ["serve", "--source", "rtsp://127.0.0.1:1/stream", "--port", "0"],
        ["rtsp://127.0.0.1:1/stream", "could not be opened", "ffprobe"],
    ),
    "quality-0": (["serve", "--quality", "0"], ["--quality", "1 to 100"]),
    "unknown-command": (["frobnicate"], ["frobnicate", "serve"]),
}

# The same contract for argument mistakes, checked in-process (argparse exits
# with SystemExit before anything starts, so a child process adds nothing).
USAGE_ERRORS: dict[str, tuple[list[str], list[str]]] = {
    "quality-101": (["serve", "--quality", "101"], ["--quality", "1 to 100"]),
    "quality-text": (["serve", "--quality", "high"], ["--quality", "1 to 100"]),
    "png-level": (["serve", "--png", "10"], ["--png", "0 to 9"]),
    "port-range": (["serve", "--port", "70000"], ["--port", "0 to 65535"]),
    "size": (["serve", "--width", "0"], ["--width", "16 to 16384"]),
    "unknown-option": (["view", "--frobnicate"], ["--frobnicate", "camstream view --help"]),
    "missing-value": (["snapshot", "-o"], ["-o", "camstream snapshot --help"]),
    "negative-fps": (["serve", "--fps", "-1"], ["--fps", "0 or more"]),
    "zero-seconds": (["view", "--headless", "--seconds", "0"], ["--seconds", "above 0"]),
    "nan-timeout": (["snapshot", "--timeout", "nan"], ["--timeout", "above 0"]),
}


def _check_one_line(stderr: str, words: list[str]) -> None:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("camstream")
    assert "error" in lines[0]
    for word in words:
        assert word in lines[0], f"{word!r} missing from: {lines[0]}"


@pytest.fixture(scope="module")
def user_errors() -> dict[str, CompletedProcess[str]]:
    """Every USER_ERRORS command, run concurrently (each is a fresh interpreter)."""
    if os.path.exists("/dev/video7"):
        pytest.skip("this machine has a /dev/video7")
    with ThreadPoolExecutor(max_workers=len(USER_ERRORS)) as pool:
        futures = {
            name: pool.submit(run_command, args, child_env())
            for name, (args, _) in USER_ERRORS.items()
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", sorted(USER_ERRORS))
def test_user_error_is_one_line_exit_2_no_traceback(
    user_errors: dict[str, CompletedProcess[str]], name: str
) -> None:
    result = user_errors[name]
    assert result.returncode == 2, result.stderr
    _check_one_line(result.stderr, USER_ERRORS[name][1])
    assert result.stdout == ""  # nothing served, so no banner


@pytest.mark.parametrize("name", sorted(USAGE_ERRORS))
def test_bad_arguments_exit_2_with_one_line(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    args, words = USAGE_ERRORS[name]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    _check_one_line(capsys.readouterr().err, words)


def test_bad_address_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", "--headless", "127.0.0.1:notaport"]) == 2
    _check_one_line(capsys.readouterr().err, ["127.0.0.1:notaport"])


@pytest.mark.parametrize("command", [[], ["serve"], ["demo"], ["view"], ["snapshot"]])
def test_help_works_for_every_command(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: camstream")
    assert ("COMMAND" in out) if not command else (f"camstream {command[0]}" in out)


def test_help_lists_the_documented_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("--host", "127.0.0.1", "--port", "8080", "--quality", "default 80"):
        assert text in out
    for option in ("--png", "--width", "--height", "--fps", "--loop", "--source"):
        assert option in out
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.quality, args.png, args.source) == (
        "127.0.0.1",
        8080,
        80,
        None,
        "auto",
    )
    assert build_parser().parse_args(["serve", "--png"]).png == 1
    assert build_parser().parse_args(["serve", "--png", "0"]).png == 0


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("camstream ")


def test_snapshot_saves_one_frame(
    running_server: Callable[..., Server], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = running_server("test", width=320, height=240, fps=30)
    jpeg, png = tmp_path / "frame.jpg", tmp_path / "frame.png"
    assert main(["snapshot", server.url, "-o", str(jpeg)]) == 0
    assert main(["snapshot", f"127.0.0.1:{server.port}", "-o", str(png)]) == 0
    out = capsys.readouterr().out
    assert f"to {jpeg}" in out and "320x240" in out
    assert jpeg.read_bytes()[:3] == b"\xff\xd8\xff"  # the server's JPEG, as sent
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # converted on request
    for path in (jpeg, png):
        image = cv2.imread(str(path))
        assert image is not None and image.shape == (240, 320, 3)
        assert float(np.std(image)) > 20  # the pattern, not a blank image


def test_snapshot_errors_name_the_problem(
    running_server: Callable[..., Server], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = running_server("test", width=320, height=240, fps=30)
    assert main(["snapshot", server.url, "-o", str(tmp_path / "no" / "such" / "dir.jpg")]) == 1
    assert main(["snapshot", server.url, "-o", str(tmp_path / "frame.xyz")]) == 1
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        free_port = unused.getsockname()[1]
    assert main(["snapshot", f"127.0.0.1:{free_port}", "--timeout", "2"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3, errors
    assert "could not write" in errors[0] and "folder" in errors[0]
    assert "could not write" in errors[1] and ".jpg or .png" in errors[1]
    assert "cannot connect" in errors[2] and "camstream serve" in errors[2]


def test_view_headless_prints_live_stats(
    running_server: Callable[..., Server], capsys: pytest.CaptureFixture[str]
) -> None:
    server = running_server("test", width=320, height=240, fps=30)
    assert main(["view", "--headless", "--seconds", "1.5", f"127.0.0.1:{server.port}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    live = [line for line in lines if line.startswith("[")]
    assert live, lines
    assert "streaming" in live[-1] and "320x240" in live[-1] and "fps" in live[-1]
    summary = lines[-1]
    assert summary.startswith("received ") and "median age" in summary
    frames = int(summary.split()[1])
    assert frames >= 5  # 30 fps for 1.5 s, with room for a busy machine


def test_demo_without_display_serves_and_says_how_to_watch() -> None:
    env = child_env()  # no DISPLAY
    with Command(["demo", "--source", "test", "--port", "0", *SMALL], env=env) as demo:
        port = demo.wait_port()
        _, warning = demo.wait_for_line("no display", stream="stderr")
        assert "--headless" in warning and "snapshot" in warning
        assert f"camstream view camstream://127.0.0.1:{port}" in demo.stdout
        with Client(f"127.0.0.1:{port}", reconnect=False) as client:
            frame = client.read_frame(timeout_s=10)
            assert (frame.width, frame.height) == (320, 240)
            assert decode(frame.data, frame.codec).shape == (240, 320, 3)
        demo.signal(signal.SIGINT)
        assert demo.wait(15) == 0, demo.stderr
        assert "Traceback" not in demo.stderr
