"""Glass to glass: an X server to show viewers on, a fast screen grabber, and the figures.

* :func:`xvfb` starts ``Xvfb -ac`` on a free display (``-ac``: VLC runs as
  another user and must be let in) and stops it by its PID.
* :func:`grab_stamps` finds the stamp on the screen (a full grab, repeated
  until a viewer shows one), then grabs only the small region around it, many
  times a second, with ``mss`` (XShmGetImage), and reads each grab.
* :func:`summarize` turns the samples into the figures (pure: no X, no clock).

Each sample's age is the grab's midpoint minus the capture time painted in the
pixels. The server, the viewers and the grabber share this host's clock. Grabs
are evenly spaced in time, so the sample ages describe what a person looking
at the screen sees, including how long each picture stays up.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from _scene import StampBox, locate_stamp, read_stamp_at

__all__ = [
    "Grab",
    "Sample",
    "grab_stamps",
    "open_grabber",
    "percentile",
    "summarize",
    "xvfb",
]

_SOCKET_DIR = "/tmp/.X11-unix"
AGE_AT_S = (1, 15, 60)


@dataclass(frozen=True)
class Sample:
    grabbed_ns: int
    captured_ns: int
    counter: int


@dataclass
class Grab:
    """What one grabbing session saw."""

    samples: list[Sample] = field(default_factory=list)
    unread: int = 0  # grabs with no readable stamp (torn, covered, not yet shown)
    box: StampBox | None = None
    first_seen_ns: int | None = None


# -- the X server -----------------------------------------------------------------


def _free_display(start: int) -> int:
    for number in range(start, start + 200):
        if not (
            os.path.exists(f"/tmp/.X{number}-lock") or os.path.exists(f"{_SOCKET_DIR}/X{number}")
        ):
            return number
    raise RuntimeError(f"no free X display number from :{start}")


def open_grabber(display: str) -> Any:
    """An ``mss`` screen grabber on ``display`` (a context manager)."""
    import mss

    # mss 10.2 deprecates the mss.mss() factory for the MSS class; older ones lack it
    factory = getattr(mss, "MSS", None) or mss.mss
    return factory(display=display)


def _accepts_clients(display: str) -> bool:
    try:
        with open_grabber(display):
            return True
    except Exception:  # mss raises ScreenShotError and ctypes errors alike
        return False


@contextlib.contextmanager
def xvfb(width: int = 1920, height: int = 1080, *, start: int = 140) -> Iterator[str]:
    """``Xvfb :N -ac`` on a free N; yields ``":N"``; stopped by its PID."""
    number = _free_display(start)
    process = subprocess.Popen(
        [
            *("Xvfb", f":{number}", "-screen", "0", f"{width}x{height}x24"),
            *("-ac", "-nolisten", "tcp", "-noreset"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # never a pipe nobody reads: it would block the server
    )
    display = f":{number}"
    try:
        deadline = time.monotonic() + 15
        while not (os.path.exists(f"{_SOCKET_DIR}/X{number}") and _accepts_clients(display)):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Xvfb {display} did not start (exit {process.poll()})")
            time.sleep(0.05)
        yield display
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# -- grabbing ------------------------------------------------------------------------


def _shot(sct: Any, region: dict[str, int]) -> np.ndarray:
    return np.asarray(sct.grab(region))  # BGRA


def _locate(
    sct: Any, screen: dict[str, int], deadline: float, *, alive: Callable[[], bool]
) -> StampBox | None:
    while time.monotonic() < deadline and alive():
        box = locate_stamp(_shot(sct, screen))
        if box is not None:
            return box
        time.sleep(0.1)
    return None


def grab_stamps(
    display: str,
    duration_s: float,
    *,
    interval_s: float = 0.005,
    locate_timeout_s: float = 30.0,
    alive: Callable[[], bool] = lambda: True,
    keep_screen: str | None = None,
) -> Grab:
    """Grab the stamp on ``display`` every ``interval_s`` for ``duration_s`` once one is seen.

    ``alive`` is asked between attempts (e.g. "the viewer is still running").
    ``keep_screen``: a path to save the whole screen to when the stamp is first
    found (PNG), to look at what the viewer showed.
    """
    import cv2

    grab = Grab()
    with open_grabber(display) as sct:
        screen = dict(sct.monitors[0])
        box = _locate(sct, screen, time.monotonic() + locate_timeout_s, alive=alive)
        if box is None:
            return grab
        if keep_screen:
            cv2.imwrite(keep_screen, _shot(sct, screen))
        grab.box = box
        grab.first_seen_ns = time.time_ns()
        end = time.monotonic() + duration_s
        failures = 0
        next_at = time.monotonic()
        while time.monotonic() < end:
            gx, gy, gw, gh = box.grown(0.15)
            gx, gy = max(0, gx), max(0, gy)
            gw, gh = min(gw, screen["width"] - gx), min(gh, screen["height"] - gy)
            before = time.time_ns()
            image = _shot(sct, {"left": gx, "top": gy, "width": gw, "height": gh})
            after = time.time_ns()
            read = read_stamp_at(image, box.moved(-gx, -gy))
            if read is None:
                grab.unread += 1
                failures += 1
                if failures >= 100:  # half a second of nothing: the window moved?
                    box = locate_stamp(_shot(sct, screen)) or box
                    failures = 0
            else:
                failures = 0
                grab.samples.append(Sample((before + after) // 2, read[0], read[1]))
            next_at += interval_s
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()
    return grab


# -- figures ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation (numpy's default)."""
    return float(np.percentile(np.asarray(values, float), q))


def summarize(
    grab: Grab, age_at_s: Sequence[float] = AGE_AT_S, *, warmup_s: float = 0.0
) -> dict[str, Any]:
    """Age on screen p50/p99 (ms), distinct frames per second, and the age over time.

    p50/p99 and the frame rate leave out the first ``warmup_s`` after the first
    grab (a player's start-up backlog is not its steady state); ``age_at``
    keeps it: it maps t to the median age (ms) over the second before t,
    counted from the first grab, and leaves out a t beyond the grabs. Distinct
    frames are changes of the counter between consecutive readable grabs.
    """
    samples = grab.samples
    total = len(samples) + grab.unread
    out: dict[str, Any] = {
        "samples": len(samples),
        "unread_fraction": grab.unread / total if total else None,
    }
    if len(samples) < 2:
        return out
    start, end = samples[0].grabbed_ns, samples[-1].grabbed_ns
    steady = [s for s in samples if s.grabbed_ns >= start + warmup_s * 1e9]
    if len(steady) >= 2:
        ages = [(s.grabbed_ns - s.captured_ns) / 1e6 for s in steady]
        changes = sum(1 for a, b in itertools.pairwise(steady) if a.counter != b.counter)
        out["age_ms"] = {"p50": percentile(ages, 50), "p99": percentile(ages, 99)}
        out["fps"] = changes / ((steady[-1].grabbed_ns - steady[0].grabbed_ns) / 1e9)
    age_at: dict[str, float] = {}
    for t in age_at_s:
        window = [
            (s.grabbed_ns - s.captured_ns) / 1e6
            for s in samples
            if start + (t - 1) * 1e9 <= s.grabbed_ns <= start + t * 1e9
        ]
        if window and end >= start + t * 1e9 - 0.1e9:
            age_at[f"{t:g}"] = percentile(window, 50)
    out["age_at_ms"] = age_at
    return out
