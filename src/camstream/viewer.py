"""Showing a stream: an OpenCV window refreshed every 10 ms, or live stats without one.

opencv-python's Qt backend aborts the whole process (SIGABRT, not an exception)
when ``imshow`` runs without a display, so :func:`display_problem` checks first,
in a throwaway child process, and the caller can exit with a clear message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from .client import Client
from .codec import decode
from .config import ClientConfig
from .metrics import RateMeter

__all__ = ["HeadlessReport", "display_problem", "run_headless", "run_window"]

REFRESH_MS = 10
QUIT_KEYS = (27, ord("q"), ord("Q"))  # Esc, q

_PROBE = "import cv2; cv2.namedWindow('p'); cv2.waitKey(1); cv2.destroyAllWindows()"


def display_problem() -> str | None:
    """Why no window can be shown here, or ``None`` if one can."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display found (DISPLAY is not set)"
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not test the display: {exc}"
    if probe.returncode != 0:
        detail = probe.stderr.decode(errors="replace").strip().splitlines()
        last = detail[-1] if detail else f"exit status {probe.returncode}"
        return f"OpenCV cannot open a window here ({last})"
    return None


NO_DISPLAY_HINT = (
    "use `camstream view --headless` for live stats, `camstream snapshot -o frame.jpg` "
    "for one frame, or open the server's http:// URL in a browser"
)


def _overlay(image: np.ndarray, lines: list[str]) -> None:
    """Draw text in place: the decoded image is ours, so no copy is needed."""
    y = 24
    for text in lines:
        cv2.putText(image, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(
            image, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA
        )
        y += 24


def _waiting_image(text: str, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    image = np.zeros((height, width, 3), np.uint8)
    cv2.putText(
        image, text, (20, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 200, 255), 2, cv2.LINE_AA
    )
    return image


def run_window(
    address: str,
    config: ClientConfig,
    *,
    overlay: bool = True,
    seconds: float | None = None,
    window_name: str = "camstream",
) -> int:
    """Show the stream until Esc/q, the window is closed, or ``seconds`` pass."""
    deadline = None if seconds is None else time.monotonic() + seconds
    shown = RateMeter()
    size = (640, 480)
    last_state = ""
    cv2.namedWindow(window_name, cv2.WINDOW_AUTOSIZE)
    with Client(address, config=config) as client:
        while deadline is None or time.monotonic() < deadline:
            image = None
            try:
                frame = client.read_frame(timeout_s=0)
            except TimeoutError:
                frame = None
            if frame is not None:
                image = decode(frame.data, frame.codec)
                size = (frame.width, frame.height)
                shown.tick()
                if overlay:
                    stats = client.stats
                    _overlay(
                        image,
                        [
                            f"{shown.rate():.1f} fps  age {frame.age_s() * 1000:.0f} ms",
                            f"dropped {stats.frames_dropped}  {frame.width}x{frame.height}",
                        ],
                    )
            elif client.state != last_state and client.state != "streaming":
                image = _waiting_image(f"{client.state}...", size)
            last_state = client.state
            if image is not None:
                cv2.imshow(window_name, image)
            key = cv2.waitKey(REFRESH_MS) & 0xFF
            if key in QUIT_KEYS or _window_closed(window_name):
                break
    cv2.destroyAllWindows()
    cv2.waitKey(1)
    return 0


def _window_closed(name: str) -> bool:
    try:
        return cv2.getWindowProperty(name, cv2.WND_PROP_VISIBLE) < 1
    except cv2.error:
        return True


@dataclass
class HeadlessReport:
    frames: int
    seconds: float
    fps: float
    median_age_ms: float | None
    max_age_ms: float | None
    dropped: int
    reconnects: int
    size: tuple[int, int] | None


def run_headless(
    address: str,
    config: ClientConfig,
    *,
    seconds: float | None = None,
    print_line: Callable[[str], None] = print,
    interval_s: float = 1.0,
) -> HeadlessReport:
    """Receive and decode like the window would, printing stats every ``interval_s``."""
    start = time.monotonic()
    deadline = None if seconds is None else start + seconds
    next_print = start + interval_s
    ages: list[float] = []
    frames = 0
    size: tuple[int, int] | None = None
    rate = RateMeter()
    with Client(address, config=config) as client:
        while deadline is None or time.monotonic() < deadline:
            try:
                frame = client.read_frame(timeout_s=REFRESH_MS / 1000)
            except TimeoutError:
                frame = None
            if frame is not None:
                decode(frame.data, frame.codec)
                frames += 1
                rate.tick()
                ages.append(frame.age_s() * 1000)
                size = (frame.width, frame.height)
            now = time.monotonic()
            if now >= next_print:
                next_print += interval_s
                age = f"{ages[-1]:.1f} ms" if ages else "-"
                res = f"{size[0]}x{size[1]}" if size else "-"
                print_line(
                    f"[{now - start:6.1f}s] {client.state:<12} fps {rate.rate():5.1f}  "
                    f"age {age:>9}  dropped {client.stats.frames_dropped}  {res}"
                )
        stats = client.stats
    elapsed = time.monotonic() - start
    ordered = sorted(ages)
    return HeadlessReport(
        frames=frames,
        seconds=elapsed,
        fps=frames / elapsed if elapsed > 0 else 0.0,
        median_age_ms=ordered[len(ordered) // 2] if ordered else None,
        max_age_ms=ordered[-1] if ordered else None,
        dropped=stats.frames_dropped,
        reconnects=stats.reconnects,
        size=size,
    )
