"""The viewer: a real OpenCV window on a real X server (Xvfb), and no crash without one.

The window tests run ``python -m camstream view`` as a child process on an Xvfb
display, look at the screen with xwd, press Esc with xdotool, and check the exit
code. Set CAMSTREAM_SCREENSHOTS=DIR to keep the screenshots they take.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from camstream.app.viewer import (
    AGE_HISTORY,
    NO_DISPLAY_HINT,
    _headless_line,
    _put_lines,
    _status_image,
    _Tracker,
    display_problem,
)
from camstream.client.values import ReceivedFrame
from camstream.frame import Codec, Frame
from camstream.server.server import Server
from camstream.sources.pattern import render_test_pattern
from processes import Command, child_env, run_command, stop_cleanly
from xvfb import (
    _free_display_number,
    find_window,
    press_key_until_exit,
    screenshot,
    xdotool,
    xvfb_display,
)

WIDTH, HEIGHT = 320, 240
BARS = slice(60, 100)  # rows of the pattern's colour bars, below the overlay box
STATUS_ORANGE = np.array([0, 200, 255])  # BGR of the "reconnecting" headline


# -- without a display ------------------------------------------------------------


def test_display_problem_without_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    problem = display_problem()
    assert problem is not None and "DISPLAY" in problem
    assert "--headless" in NO_DISPLAY_HINT and "snapshot" in NO_DISPLAY_HINT


@pytest.mark.parametrize("display", [None, "unreachable"])
def test_view_without_a_usable_display_exits_2_with_a_hint(display: str | None) -> None:
    """No DISPLAY, or one that is not there (Qt would SIGABRT): a message, not an abort."""
    if display == "unreachable":
        display = f":{_free_display_number(400)}"
    result = run_command(["view", "127.0.0.1:9"], env=child_env(display))
    assert result.returncode != -signal.SIGABRT
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "cannot open a window" in result.stderr
    assert "camstream view --headless" in result.stderr
    assert "camstream snapshot" in result.stderr


# -- drawing ------------------------------------------------------------------------


def test_overlay_darkens_only_a_box_behind_the_text() -> None:
    image = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
    _put_lines(image, ["30.0 fps  age 12 ms", "dropped 3  320x240"])
    box = image[:40, :120]
    assert (box < 100).mean() > 0.5  # dark background...
    assert (box == 255).any()  # ...with white text on it
    assert (image[60:, :] == 200).all()  # and the picture itself untouched


def test_status_screen_dims_the_last_image_and_says_why() -> None:
    last = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
    image = _status_image(last, ["server gone - reconnecting to x:1... (2 s)", "refused"])
    assert image.shape == last.shape
    assert 40 < np.median(image) < 80  # dimmed, still recognisable
    assert _orange_pixels(image) > 20
    blank = _status_image(None, ["connecting to x:1..."])
    assert blank.shape == (480, 640, 3) and _orange_pixels(blank) > 20


def test_tracker_counts_sequence_gaps_as_dropped() -> None:
    tracker = _Tracker()
    for seq in (5, 6, 9, 10, 0, 1):  # 7 and 8 skipped; then a restarted server
        frame = Frame(seq, time.time_ns(), WIDTH, HEIGHT, Codec.JPEG, b"")
        tracker.add(ReceivedFrame(frame, time.time_ns()))
    assert tracker.frames == 6
    assert tracker.dropped == 2
    assert tracker.size == (WIDTH, HEIGHT)


class _ReconnectingClient:
    state = "reconnecting"
    stream_info = None

    class stats:
        last_error = "connection lost: [Errno 111] Connection refused"
        receive_mbit_s = 0.0


def test_headless_line_while_reconnecting_shows_the_reason_and_the_real_age() -> None:
    tracker = _Tracker()
    captured = Frame(1, time.time_ns() - 3_000_000_000, WIDTH, HEIGHT, Codec.JPEG, b"")
    tracker.add(ReceivedFrame(captured, time.time_ns()))
    line = _headless_line(12.0, _ReconnectingClient(), tracker)  # type: ignore[arg-type]
    assert "reconnecting" in line
    assert "(connection lost: [Errno 111] Connection refused)" in line
    assert re.search(r"age +3\.0 s ", line), line  # the picture's age now, not at arrival


def test_tracker_keeps_a_bounded_age_history_but_the_true_maximum() -> None:
    tracker = _Tracker()
    now_ns = time.time_ns()
    oldest = Frame(0, now_ns - 5_000_000_000, WIDTH, HEIGHT, Codec.JPEG, b"")  # 5 s old
    tracker.add(ReceivedFrame(oldest, now_ns))
    for seq in range(1, AGE_HISTORY + 50):
        frame = Frame(seq, time.time_ns(), WIDTH, HEIGHT, Codec.JPEG, b"")
        tracker.add(ReceivedFrame(frame, now_ns))
    assert len(tracker.ages_ms) == AGE_HISTORY
    assert tracker.max_age_ms is not None and tracker.max_age_ms >= 5000


# -- a real window under Xvfb -----------------------------------------------------------


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    with xvfb_display() as name:
        yield name


def _orange_pixels(image: np.ndarray) -> int:
    return int((np.abs(image.astype(int) - STATUS_ORANGE).max(axis=2) < 60).sum())


def _window_image(display: str, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, width, height = box
    return screenshot(display)[y : y + height, x : x + width]


def _first_paint(
    display: str,
    window: str,
    box: tuple[int, int, int, int],
    tmp_path: Path,
    process: Command,
) -> np.ndarray:
    """Wait for the window's first picture of the pattern.

    Without a window manager, Qt occasionally misses the first Expose of a new
    window on a loaded machine and then paints nothing until the next one (the
    viewer is running and receiving frames meanwhile). A real desktop's window
    manager sends more; here, if the window stays black, unmap and map it once
    to send one.
    """

    def live() -> np.ndarray | None:
        image = _window_image(display, box)
        return image if _shows_pattern(image) else None

    try:
        return _poll(display, live, 10, "the test pattern", tmp_path, process=process)
    except AssertionError:
        if float(_window_image(display, box).max()) > 0:
            raise  # something is painted, just not the pattern: a real failure
    xdotool(display, "windowunmap", "--sync", window)
    xdotool(display, "windowmap", "--sync", window)
    return _poll(
        display, live, 10, "the test pattern (after a re-expose)", tmp_path, process=process
    )


def _shows_pattern(image: np.ndarray) -> bool:
    """The window shows the test pattern: its colour bars, at full brightness."""
    if image.shape[:2] != (HEIGHT, WIDTH):
        return False
    reference = render_test_pattern(0, WIDTH, HEIGHT)
    difference = cv2.absdiff(image[BARS], reference[BARS])
    return float(difference.mean()) < 20 and float(image.std()) > 40


def _poll(
    display: str,
    condition: Callable[[], np.ndarray | None],
    timeout_s: float,
    what: str,
    tmp_path: Path,
    *,
    process: Command | None = None,
) -> np.ndarray:
    """Wait for ``condition`` to return an image; on failure keep the screen for a look."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            path = tmp_path / "failed.png"
            cv2.imwrite(str(path), screenshot(display))
            detail = ""
            if process is not None:
                detail = f"\nexit {process.process.poll()}, stderr:\n{process.stderr}"
            raise AssertionError(
                f"the window did not show {what} within {timeout_s} s: {path}{detail}"
            )
        time.sleep(0.1)


def _keep(image: np.ndarray, name: str, tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / name), image)
    keep_dir = os.environ.get("CAMSTREAM_SCREENSHOTS")
    if keep_dir:
        os.makedirs(keep_dir, exist_ok=True)
        cv2.imwrite(os.path.join(keep_dir, name), image)


def _start_server(port: int = 0) -> Server:
    return Server("test", host="127.0.0.1", port=port, width=WIDTH, height=HEIGHT, fps=20)


def _find_viewer_window(display: str, view: Command) -> tuple[str, tuple[int, int, int, int]]:
    """find_window, but a failure also says whether the viewer exited, and what it said."""
    try:
        return find_window(display, "camstream", timeout_s=30, size=(WIDTH, HEIGHT))
    except AssertionError as exc:
        state = view.process.poll()
        said = "".join(view.stderr_lines)[-2000:]
        raise AssertionError(f"{exc}; viewer exit status {state}; its stderr: {said!r}") from None


@pytest.mark.display
def test_window_shows_the_live_stream_and_esc_quits(display: str, tmp_path: Path) -> None:
    with (
        _start_server() as server,
        Command(["view", f"127.0.0.1:{server.port}"], env=child_env(display)) as view,
    ):
        # Sized to the stream: no toolbar or status bar around the picture.
        window, box = _find_viewer_window(display, view)
        assert f"127.0.0.1:{server.port}" in xdotool(display, "getwindowname", window)
        first = _first_paint(display, window, box, tmp_path, view)
        _keep(first, "window-first.png", tmp_path)
        # The overlay: a darkened box with white text in the top-left corner.
        corner = first[:40, :120]
        assert (corner.max(axis=2) > 220).sum() > 50, "no overlay text"

        def changed() -> np.ndarray | None:
            image = _window_image(display, box)
            moving = slice(120, HEIGHT)  # the moving square, frame counter and clock
            if _shows_pattern(image) and cv2.absdiff(image[moving], first[moving]).max() > 60:
                return image
            return None

        second = _poll(display, changed, 10, "a newer frame", tmp_path, process=view)
        _keep(second, "window-second.png", tmp_path)

        # The same search that must come back empty below finds the window now, so
        # an empty answer later means "gone", not "xdotool failed" (it prints nothing then too).
        search = ("search", "--onlyvisible", "--name", "camstream")
        assert window in xdotool(display, *search).split()
        assert press_key_until_exit(display, window, "Escape", view.process) == 0, view.stderr
        view.wait()  # the rest of its output
        assert "Traceback" not in view.stderr
        # The window is gone, not just hidden; and xdotool still answers on this display.
        assert re.fullmatch(r"\d+ \d+\s*", xdotool(display, "getdisplaygeometry"))
        assert not xdotool(display, *search).strip()


@pytest.mark.display
def test_window_says_reconnecting_and_recovers_then_sigterm_exits_0(
    display: str, tmp_path: Path
) -> None:
    server = _start_server().__enter__()
    port = server.port
    with Command(["view", f"127.0.0.1:{port}"], env=child_env(display)) as view:
        try:
            window, box = _find_viewer_window(display, view)
            _first_paint(display, window, box, tmp_path, view)

            def live() -> np.ndarray | None:
                image = _window_image(display, box)
                return image if _shows_pattern(image) else None

            server.__exit__(None, None, None)  # the server goes away

            def reconnecting() -> np.ndarray | None:
                image = _window_image(display, box)
                dimmed = float(np.median(image)) < 60
                return image if dimmed and _orange_pixels(image) > 50 else None

            _keep(
                _poll(display, reconnecting, 15, "that it is reconnecting", tmp_path, process=view),
                "window-gone.png",
                tmp_path,
            )
            assert view.process.poll() is None  # still running, still trying

            server = _start_server(port).__enter__()  # back on the same port
            _keep(
                _poll(display, live, 20, "the stream again", tmp_path, process=view),
                "window-back.png",
                tmp_path,
            )
        finally:
            server.__exit__(None, None, None)
        assert stop_cleanly(view, signal.SIGINT) == 0, view.stderr
        assert "Traceback" not in view.stderr
        assert "camstream: stopped" in view.stdout  # as serve says it on Ctrl-C


@pytest.mark.display
def test_demo_opens_a_window_on_its_own_server_and_q_quits(display: str, tmp_path: Path) -> None:
    args = ["demo", "--source", "test", "--port", "0", "--width", "320", "--height", "240"]
    with Command(args, env=child_env(display)) as demo:
        demo.wait_port()
        window, box = _find_viewer_window(display, demo)
        _keep(_first_paint(display, window, box, tmp_path, demo), "demo.png", tmp_path)
        # q closes the window, and then the demo stops its server.
        assert press_key_until_exit(display, window, "q", demo.process) == 0, demo.stderr
        demo.wait()
        assert "Traceback" not in demo.stderr
