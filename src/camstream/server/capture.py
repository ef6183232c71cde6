"""The producer side of the frame path: source → capture thread → encoder thread(s).

The capture thread is the one owner of the :class:`~camstream.sources.Source`.
It stamps each image (``seq``, ``captured_at_ns``) and drops it into a
latest-image-wins slot; it never waits for an encoder, so a slow encoder costs
dropped images (counted), never growing latency. Encoder threads take the
newest image, encode it (``cv2.imencode`` releases the GIL) and hand the
:class:`~camstream.frame.Frame` to ``on_frame``.

When the source fails, the capture thread keeps the stream alive with "NO
SIGNAL" placeholder frames and retries the source until it comes back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..codec import Encoder
from ..errors import ConfigError, SourceError
from ..frame import Frame, SeqOrder
from ..metrics import RateMeter
from ..sources import Source
from ..sources.pattern import render_placeholder

__all__ = ["CapturePipeline", "CaptureStats"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CaptureStats:
    """A snapshot of a :class:`CapturePipeline`'s counters (rates over the last second)."""

    images_captured: int = 0  # real images read from the source
    frames_encoded: int = 0  # includes placeholders
    images_dropped: int = 0  # replaced in the slot before an encoder took them
    frames_out_of_order: int = 0  # encoded, but a newer frame was already delivered
    source_failures: int = 0
    callback_errors: int = 0  # exceptions raised by on_frame, on_end, or the encoder
    capture_fps: float = 0.0
    encode_fps: float = 0.0
    last_encode_ms: float = 0.0


@dataclass(slots=True)
class _Pending:
    seq: int
    captured_at_ns: int
    image: np.ndarray
    placeholder: bool


class CapturePipeline:
    """Reads ``source`` on a thread and delivers encoded frames to ``on_frame``.

    ``on_frame`` runs on an encoder thread, so it must be quick and thread-safe
    (the server hands the frame to its event loop with ``call_soon_threadsafe``).
    ``on_end`` is called once, from the capture thread, when the source ends
    cleanly (a file without ``loop``). ``start()`` and ``stop()`` may be repeated;
    sequence numbers keep increasing across restarts.
    """

    def __init__(
        self,
        source: Source,
        encoder: Encoder,
        on_frame: Callable[[Frame], None],
        *,
        on_end: Callable[[str], None] | None = None,
        on_image: Callable[[Frame, np.ndarray], None] | None = None,
        workers: int = 1,
        retry_interval_s: float = 1.0,
        placeholder_interval_s: float = 0.5,
        placeholder_size: tuple[int, int] = (640, 480),
    ) -> None:
        if not 1 <= workers <= 16:
            raise ConfigError(f"workers must be between 1 and 16, got {workers!r}")
        if retry_interval_s <= 0 or placeholder_interval_s <= 0:
            raise ConfigError("retry_interval_s and placeholder_interval_s must be positive")
        self.source = source
        self.encoder = encoder
        self._on_frame = on_frame
        self._on_end = on_end
        # Sees each frame with the image it was encoded from, just before on_frame,
        # so smaller renditions are resized from pixels instead of a decode.
        self._on_image = on_image
        self._workers = workers
        self._retry_interval_s = retry_interval_s
        self._placeholder_interval_s = placeholder_interval_s
        self._size = placeholder_size  # (width, height) of the last real image, once seen

        self._lifecycle = threading.Lock()  # serialises start() and stop()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._cond = threading.Condition()  # guards the slot and _producing
        self._slot: _Pending | None = None
        self._producing = False
        self._busy_encoders = 0
        self._deliver = threading.Lock()  # keeps on_frame calls in seq order
        self._delivered = SeqOrder()
        self._next_seq = 0  # only the capture thread touches it while running
        self._signal_lost = False

        self._stats_lock = threading.Lock()
        self._counts = dict.fromkeys(
            ("images_captured", "frames_encoded", "images_dropped", "frames_out_of_order",
             "source_failures", "callback_errors"), 0,
        )  # fmt: skip
        self._capture_rate = RateMeter()
        self._encode_rate = RateMeter()
        self._last_encode_ms = 0.0

    # -- public ------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the capture thread is alive (False after stop() or the end)."""
        return bool(self._threads) and self._threads[0].is_alive()

    @property
    def signal_lost(self) -> bool:
        """True while the source is failing and placeholders are being sent."""
        return self._signal_lost

    @property
    def stats(self) -> CaptureStats:
        with self._stats_lock:
            return CaptureStats(
                **self._counts,
                capture_fps=self._capture_rate.rate(),
                encode_fps=self._encode_rate.rate(),
                last_encode_ms=self._last_encode_ms,
            )

    def start(self) -> None:
        """Start capturing (the source is opened on the capture thread); no-op if running."""
        with self._lifecycle:
            if self.running:
                return
            self._join(None)  # a previous run that ended by itself, or outlived stop()
            self._stop = threading.Event()
            with self._cond:
                self._slot = None
                self._producing = True
            encoders = [
                threading.Thread(
                    target=self._encode_main, args=(self._stop,), name=f"camstream-encode-{i}"
                )
                for i in range(self._workers)
            ]
            capture = threading.Thread(
                target=self._capture_main, args=(self._stop, encoders), name="camstream-capture"
            )
            self._threads = [capture, *encoders]
            for thread in [*encoders, capture]:  # the capture thread may join the encoders
                thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the threads, wait for them, and release the source. Idempotent.

        Called from ``on_frame`` or ``on_end`` it only signals: a thread cannot
        join itself, and the owner's own ``stop()`` may already be joining it.
        """
        if threading.current_thread() in self._threads:
            self._signal_stop()
            return
        with self._lifecycle:
            self._signal_stop()
            self._join(timeout_s)
            alive = [t.name for t in self._threads if t.is_alive()]
            if alive:
                # Still inside a blocking read: closing under it could crash OpenCV,
                # and the thread closes the source itself on the way out.
                logger.warning("capture threads still running after %.1f s: %s", timeout_s, alive)
            else:
                self._threads = []
                self.source.close()
            self._signal_lost = False

    def __enter__(self) -> CapturePipeline:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- capture thread ----------------------------------------------------

    def _signal_stop(self) -> None:
        self._stop.set()
        self.source.interrupt()  # cut a pacing sleep short
        with self._cond:
            self._cond.notify_all()

    def _join(self, timeout_s: float | None) -> None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for thread in self._threads:
            if thread is not threading.current_thread():
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                thread.join(remaining)

    def _capture_main(self, stop: threading.Event, encoders: list[threading.Thread]) -> None:
        ended = False
        try:
            ended = self._capture_loop(stop)
        finally:
            self.source.close()
            with self._cond:
                self._producing = False
                self._cond.notify_all()
        if ended and not stop.is_set():
            # Let the encoders deliver the last image before announcing the end.
            for thread in encoders:
                thread.join()
            self._call(self._on_end, "end of stream")

    def _capture_loop(self, stop: threading.Event) -> bool:
        """Run until stopped (False) or the source ends cleanly (True)."""
        try:
            self.source.open()
        except SourceError as exc:
            if not self._wait_for_source(stop, exc):
                return False
        while not stop.is_set():
            if not self.source.live and not self._wait_for_free_encoder(stop):
                return False
            try:
                image = self.source.read()
            except Exception as exc:  # a user's iterable can raise anything
                if not self._wait_for_source(stop, exc):
                    return False
                continue
            captured_at_ns = time.time_ns()
            if image is None:
                return True
            height, width = image.shape[:2]
            self._size = (width, height)
            with self._stats_lock:
                self._counts["images_captured"] += 1
                self._capture_rate.tick()
            self._offer(image, captured_at_ns, placeholder=False)
        return False

    def _wait_for_free_encoder(self, stop: threading.Event) -> bool:
        with self._cond:
            while self._slot is not None or self._busy_encoders >= self._workers:
                if stop.is_set():
                    return False
                self._cond.wait(0.1)
        return not stop.is_set()

    def _wait_for_source(self, stop: threading.Event, exc: BaseException) -> bool:
        """Send placeholders and retry the source until it opens (True) or stop (False)."""
        if not isinstance(exc, SourceError):
            logger.error("source %s raised an unexpected error", self.source, exc_info=exc)
        with self._stats_lock:
            self._counts["source_failures"] += 1
        self._signal_lost = True
        self.source.close()
        next_retry = time.monotonic() + self._retry_interval_s
        next_placeholder = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_placeholder:
                width, height = (max(16, n) for n in self._size)  # the renderer's minimum
                image = render_placeholder("NO SIGNAL", width, height)
                self._offer(image, time.time_ns(), placeholder=True)
                next_placeholder = max(next_placeholder + self._placeholder_interval_s, now)
            if now >= next_retry:
                try:
                    self.source.open()
                except SourceError:
                    next_retry = time.monotonic() + self._retry_interval_s
                else:
                    self._signal_lost = False
                    return True
            stop.wait(max(0.0, min(next_retry, next_placeholder) - time.monotonic()))
        return False

    def _offer(self, image: np.ndarray, captured_at_ns: int, *, placeholder: bool) -> None:
        pending = _Pending(self._next_seq, captured_at_ns, image, placeholder)
        self._next_seq += 1
        if not self.source.live and self._workers == 1:
            # The capture thread waited for the encoder to be free anyway, so it
            # encodes itself: one thread hand-off less on every frame's path.
            self._encode_one(pending)
            return
        with self._cond:
            replaced = self._slot is not None
            self._slot = pending
            self._cond.notify_all()  # the capture thread may be waiting here too
        if replaced:
            with self._stats_lock:
                self._counts["images_dropped"] += 1

    # -- encoder threads ---------------------------------------------------

    def _encode_main(self, stop: threading.Event) -> None:
        while True:
            with self._cond:
                while self._slot is None and self._producing and not stop.is_set():
                    self._cond.wait()
                if stop.is_set() or self._slot is None:
                    return
                pending, self._slot = self._slot, None
                self._busy_encoders += 1
            try:
                self._encode_one(pending)
            finally:
                with self._cond:
                    self._busy_encoders -= 1
                    self._cond.notify_all()

    def _encode_one(self, pending: _Pending) -> None:
        started = time.perf_counter()
        try:
            data = self.encoder.encode(pending.image)
        except Exception:
            self._count_error(f"encoder {self.encoder!r} failed on frame {pending.seq}")
            return
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        with self._stats_lock:
            self._counts["frames_encoded"] += 1
            self._encode_rate.tick()
            self._last_encode_ms = elapsed_ms
        height, width = pending.image.shape[:2]
        frame = Frame(
            pending.seq,
            pending.captured_at_ns,
            width,
            height,
            self.encoder.codec,
            data,
            pending.placeholder,
        )
        with self._deliver:
            if not self._delivered.advance(frame.seq):
                with self._stats_lock:
                    self._counts["frames_out_of_order"] += 1
                return
            if self._on_image is not None:
                try:
                    self._on_image(frame, pending.image)
                except Exception:
                    self._count_error(f"image callback failed on frame {frame.seq}")
            self._call(self._on_frame, frame)

    def _call(self, callback: Callable[[Any], object] | None, arg: object) -> None:
        if callback is None:
            return
        try:
            callback(arg)
        except Exception:
            self._count_error(f"capture callback {callback!r} failed")

    def _count_error(self, message: str) -> None:
        with self._stats_lock:
            self._counts["callback_errors"] += 1
            first = self._counts["callback_errors"] == 1
        if first:  # a broken callback fails on every frame; one traceback is enough
            logger.exception("%s (further errors are only counted in stats)", message)
