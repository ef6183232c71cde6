"""Showing a stream: an OpenCV window refreshed every 10 ms, or live stats without one.

opencv-python's Qt backend aborts the whole process (SIGABRT, not an exception)
when ``imshow`` runs without a display, so :func:`display_problem` checks first,
in a throwaway child process, and the caller can exit with a clear message.

Both viewers keep going across server restarts (the client reconnects with
backoff); the window says so meanwhile. Esc, q, closing the window, Ctrl-C and
SIGTERM all end them the same clean way: the client says goodbye, the window is
destroyed, and the function returns.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..client.threaded import Client
from ..client.values import ReceivedFrame, scaled_to
from ..config import ClientConfig, redact
from ..errors import ConnectionClosed, DecodeError
from ..metrics import RateMeter
from ..wire.protocol import GoodbyeCode

__all__ = [
    "NO_DISPLAY_HINT",
    "HeadlessReport",
    "display_problem",
    "run_headless",
    "run_window",
]

REFRESH_MS = 10
QUIT_KEYS = (27, ord("q"), ord("Q"))  # Esc, q
STATUS_REDRAW_S = 0.25  # how often the "reconnecting" screen is refreshed
STATUS_AFTER_S = 0.3  # no status screen for a connection that is quick anyway
_DEFAULT_SIZE = (640, 480)

_PROBE = "import cv2; cv2.namedWindow('p'); cv2.waitKey(1); cv2.destroyAllWindows()"

NO_DISPLAY_HINT = (
    "use `camstream view --headless HOST:PORT` for live stats, "
    "`camstream snapshot HOST:PORT -o frame.jpg` for one frame, "
    "or open the server's http:// URL in a browser"
)


def _prepare_qt() -> None:
    """Point Qt at system fonts when opencv-python ships none (else it warns per window)."""
    if "QT_QPA_FONTDIR" in os.environ:
        return
    if os.path.isdir(os.path.join(os.path.dirname(cv2.__file__), "qt", "fonts")):
        return
    for candidate in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype"):
        if os.path.isdir(candidate):
            os.environ["QT_QPA_FONTDIR"] = candidate
            return


def display_problem() -> str | None:
    """Why no window can be shown here, or ``None`` if one can."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display found (DISPLAY is not set)"
    _prepare_qt()
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not test the display: {exc}"
    if probe.returncode != 0:
        lines = probe.stderr.decode(errors="replace").strip().splitlines()
        useful = [line for line in lines if "could not connect to display" in line.lower()]
        if useful:
            return f"OpenCV cannot open a window here ({useful[0].strip()})"
        status = (
            f"killed by signal {-probe.returncode}"
            if probe.returncode < 0
            else f"exit status {probe.returncode}"
        )
        return f"OpenCV cannot open a window on display {_display_name()!r} ({status})"
    return None


def _display_name() -> str:
    return os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or ""


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C or SIGTERM, so the loop can end and clean up.

    Handlers can only be installed from the main thread; elsewhere the event is
    simply never set by a signal.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: object) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


#: How many recent frame ages the viewer keeps for its median (about 5 min at 30 fps).
AGE_HISTORY = 10_000


@dataclass
class _Tracker:
    """What the overlay and the headless report show, measured at the viewer.

    ``dropped`` counts gaps in the sequence numbers: frames the server skipped
    for us and frames the client replaced before we read them, together.
    """

    rate: RateMeter = field(default_factory=RateMeter)
    frames: int = 0
    dropped: int = 0
    last_seq: int | None = None
    # The median is over the newest AGE_HISTORY frames, so a viewer left running
    # for days keeps a fixed amount of memory; the maximum covers the whole run.
    ages_ms: deque[float] = field(default_factory=lambda: deque(maxlen=AGE_HISTORY))
    max_age_ms: float | None = None
    last_captured_ns: int | None = None
    size: tuple[int, int] | None = None

    def add(self, received: ReceivedFrame) -> float:
        frame = received.frame
        if self.last_seq is not None and frame.seq > self.last_seq:
            self.dropped += frame.seq - self.last_seq - 1
        self.last_seq = frame.seq  # a restarted server may count from 0 again
        self.frames += 1
        self.rate.tick()
        age_ms = frame.age_s() * 1000
        self.ages_ms.append(age_ms)
        self.max_age_ms = age_ms if self.max_age_ms is None else max(self.max_age_ms, age_ms)
        self.last_captured_ns = frame.captured_at_ns
        self.size = (frame.width, frame.height)
        return age_ms


def _put_lines(image: np.ndarray, lines: list[str], *, scale: float = 0.5) -> None:
    """Text on a dark box, top left, in place (the decoded image is ours to draw on).

    A box rather than a thick black outline: OpenCV 5 draws thicker text with a
    bolder, wider font, so an outline no longer lines up with the text.
    """
    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(text, font, scale, 1)[0] for text in lines]
    line_h = max(h for _, h in sizes) + 8
    width = max(w for w, _ in sizes) + 12
    height = line_h * len(lines) + 6
    box = image[0:height, 0:width]
    box[:] = (box * 0.35).astype(np.uint8)
    for i, text in enumerate(lines):
        y = 4 + line_h * (i + 1) - 6
        cv2.putText(image, text, (6, y), font, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _wrap(text: str, width_px: int, scale: float) -> list[str]:
    """Split ``text`` at spaces into lines that fit ``width_px`` when drawn."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        fits = cv2.getTextSize(candidate, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] <= width_px
        if lines and fits:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


def _status_image(last: np.ndarray | None, lines: list[str]) -> np.ndarray:
    """The last image, dimmed, with ``lines`` in the middle (or a black screen)."""
    if last is None:
        width, height = _DEFAULT_SIZE
        image = np.zeros((height, width, 3), np.uint8)
    else:
        image = (last * 0.3).astype(np.uint8)
        height, width = image.shape[:2]
    scale = max(0.4, min(0.8, width / 900))
    step = int(36 * scale) + 6
    drawn = [(i, part) for i, text in enumerate(lines) for part in _wrap(text, width - 32, scale)]
    y = max(step, height // 2 - step * (len(drawn) - 1) // 2)
    for i, text in drawn:
        color = (0, 200, 255) if i == 0 else (220, 220, 220)
        cv2.putText(image, text, (16, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)
        y += step
    return image


def _status_lines(client: Client, address: str, since: float) -> list[str]:
    state = client.state
    waited = time.monotonic() - since
    if state == "connecting":
        head = f"connecting to {address}..."
    elif state == "reconnecting":
        head = f"server gone - reconnecting to {address}... ({waited:.0f} s)"
    else:
        head = f"{state}..."
    error = client.stats.last_error
    lines = [head, error[:160]] if error and state != "connecting" else [head]
    return [redact(line) for line in lines]  # drawn on screen: never a ?token=


class _Window:
    """One viewer window's state between refreshes."""

    def __init__(self, client: Client, address: str, *, overlay: bool) -> None:
        self.client = client
        self.address = redact(address)
        self.overlay = overlay
        self.tracker = _Tracker()
        self.last_image: np.ndarray | None = None
        self.ended: str | None = None
        self.waiting_since = time.monotonic()
        self.next_status = 0.0

    def next_image(self) -> np.ndarray | None:
        """What to show now, or ``None`` to leave the window as it is."""
        if self.ended is not None:
            return None
        try:
            # Wait for the next frame (up to one refresh) instead of polling and
            # then sleeping in waitKey: a frame is shown as soon as it arrives
            # (about 7 ms sooner on screen, benchmarks/glass.py), and the window
            # still gets its events at least every REFRESH_MS.
            received = self.client.read_received(timeout_s=REFRESH_MS / 1000)
        except TimeoutError:
            return self._status()
        except ConnectionClosed as exc:
            if exc.code != GoodbyeCode.END_OF_STREAM:
                raise
            self.ended = exc.reason or "end of stream"
            return _status_image(self.last_image, ["stream ended", self.ended[:160]])
        try:
            image = received.image
        except DecodeError:
            return None  # one bad frame: wait for the next
        age_ms = self.tracker.add(received)
        self.waiting_since = time.monotonic()
        frame = received.frame
        info = self.client.stream_info
        tier = ""
        if (
            info is not None
            and info.width
            and (frame.width, frame.height)
            != (
                info.width,
                info.height,
            )
        ):
            # A smaller tier on a thin link: shown at the stream's size, so the
            # window keeps its shape; the overlay says which tier it is.
            image = scaled_to(image, (info.width, info.height))
            tier = f"  tier {frame.width}x{frame.height}"
        if not self.overlay:
            self.last_image = image
            return image
        self.last_image = image.copy()
        stats = self.client.stats
        _put_lines(
            image,
            [
                f"{self.tracker.rate.rate():.1f} fps  age {age_ms:.0f} ms",
                f"dropped {self.tracker.dropped}  {image.shape[1]}x{image.shape[0]}{tier}",
                f"{stats.receive_mbit_s:.1f} Mbit/s",
            ],
        )
        return image

    def _status(self) -> np.ndarray | None:
        now = time.monotonic()
        if self.client.state == "streaming" or now < self.next_status:
            return None
        if self.last_image is None and now - self.waiting_since < STATUS_AFTER_S:
            return None  # usually the first frame comes first: no flash of a status screen
        self.next_status = now + STATUS_REDRAW_S
        lines = _status_lines(self.client, self.address, self.waiting_since)
        return _status_image(self.last_image, lines)


def run_window(
    address: str,
    config: ClientConfig,
    *,
    overlay: bool = True,
    seconds: float | None = None,
    window_name: str = "camstream",
) -> int:
    """Show the stream until Esc/q, the window is closed, a signal, or ``seconds`` pass.

    Returns 0. Errors that reconnecting cannot fix (wrong token, server full, or
    any loss with ``config.reconnect`` off) are raised after the window closes.
    """
    _prepare_qt()
    deadline = None if seconds is None else time.monotonic() + seconds
    with _stop_on_signals() as stop, Client(address, config=config) as client:
        window = _Window(client, address, overlay=overlay)
        # The title comes from the name: cv2.setWindowTitle right after creating the
        # window sometimes leaves the Qt window unpainted (seen on Xvfb under load).
        window_name = f"{window_name} - {client.url}"
        cv2.namedWindow(window_name, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        shown = False  # the window is mapped some time after namedWindow, under load later
        try:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                image = window.next_image()
                if image is not None:
                    cv2.imshow(window_name, image)
                key = cv2.waitKey(REFRESH_MS if window.ended else 1) & 0xFF
                if key in QUIT_KEYS:
                    break
                visible = _window_visible(window_name)
                if shown and not visible:
                    break  # closed with the window manager's close button
                shown = shown or visible
        finally:
            with contextlib.suppress(cv2.error):
                cv2.destroyWindow(window_name)
                cv2.waitKey(1)  # let the GUI process the close before we return
    return 0


def _window_visible(name: str) -> bool:
    try:
        return bool(cv2.getWindowProperty(name, cv2.WND_PROP_VISIBLE) >= 1)
    except cv2.error:  # the window no longer exists
        return False


@dataclass
class HeadlessReport:
    """What :func:`run_headless` saw, for the summary line."""

    frames: int
    seconds: float
    fps: float
    median_age_ms: float | None
    max_age_ms: float | None
    dropped: int  # gaps in sequence numbers (skipped by the server or the client)
    reconnects: int
    size: tuple[int, int] | None
    ended: str | None = None  # the server's reason, if the stream ended


def _headless_line(elapsed_s: float, client: Client, tracker: _Tracker) -> str:
    """One line of live stats; while not streaming, the reason and the picture's real age."""
    state = client.state
    if tracker.last_captured_ns is None:
        age = "-"
    elif state == "streaming":
        age = f"{tracker.ages_ms[-1]:.1f} ms"
    else:  # the last picture keeps getting older while nothing arrives
        age = f"{(time.time_ns() - tracker.last_captured_ns) / 1e9:.1f} s"
    res = f"{tracker.size[0]}x{tracker.size[1]}" if tracker.size else "-"
    stats = client.stats
    info = client.stream_info
    if info is not None and tracker.size and tracker.size != (info.width, info.height):
        res += f" (tier of {info.width}x{info.height})"  # a thin link: a smaller tier
    line = (
        f"[{elapsed_s:6.1f}s] {state:<12} fps {tracker.rate.rate():5.1f}  "
        f"age {age:>9}  dropped {tracker.dropped}  {res}  {stats.receive_mbit_s:.1f} Mbit/s"
    )
    reason = stats.last_error
    if state != "streaming" and reason:
        line += f"  ({reason})"
    return line


def run_headless(
    address: str,
    config: ClientConfig,
    *,
    seconds: float | None = None,
    print_line: Callable[[str], None] = print,
    interval_s: float = 1.0,
) -> HeadlessReport:
    """Receive and decode like the window would, printing stats every ``interval_s``.

    Stops after ``seconds``, on Ctrl-C or SIGTERM, or when the stream ends.
    """
    start = time.monotonic()
    deadline = None if seconds is None else start + seconds
    next_print = start + interval_s
    tracker = _Tracker()
    ended: str | None = None
    with _stop_on_signals() as stop, Client(address, config=config) as client:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            received = None
            try:
                received = client.read_received(timeout_s=REFRESH_MS / 1000)
            except TimeoutError:
                pass
            except ConnectionClosed as exc:
                if exc.code != GoodbyeCode.END_OF_STREAM:
                    raise
                ended = exc.reason or "end of stream"
                break
            if received is not None:
                with contextlib.suppress(DecodeError):
                    received.image  # noqa: B018 - decode, as the window would
                    tracker.add(received)
            now = time.monotonic()
            if now >= next_print:
                next_print += interval_s
                print_line(_headless_line(now - start, client, tracker))
        stats = client.stats
    elapsed = time.monotonic() - start
    ordered = sorted(tracker.ages_ms)
    return HeadlessReport(
        frames=tracker.frames,
        seconds=elapsed,
        fps=tracker.frames / elapsed if elapsed > 0 else 0.0,
        median_age_ms=ordered[len(ordered) // 2] if ordered else None,
        max_age_ms=tracker.max_age_ms,
        dropped=tracker.dropped,
        reconnects=stats.reconnects,
        size=tracker.size,
        ended=ended,
    )
