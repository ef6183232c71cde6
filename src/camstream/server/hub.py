"""Fan-out: one encoded frame, many viewers, latest frame wins.

Each viewer owns a one-frame slot and a wake-up event, never a queue. Publishing
overwrites the slot; if the viewer had not taken the previous frame yet, that
frame is counted as dropped. A viewer that is ready (its transport has credit or
its socket has drained) takes whatever is newest at that moment, so a slow
viewer skips frames instead of building a backlog, and it never slows the
capture or the other viewers.

The hub is touched only from the event loop thread, so it needs no locks. The
capture threads hand frames over with ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..frame import Frame, SeqOrder
from ..metrics import RateMeter

__all__ = ["Hub", "Viewer", "ViewerStats"]


@dataclass(frozen=True, slots=True)
class ViewerStats:
    kind: str
    address: str
    connected_s: float
    fps: float
    frames_sent: int
    frames_dropped: int
    bytes_sent: int
    last_seq: int
    delivery: dict[str, Any] | None = None  # adaptive viewers: tier, link rate, round trip


class Viewer:
    """One consumer of the stream: a native session, an HTTP stream, or a snapshot."""

    def __init__(self, kind: str, address: str) -> None:
        self.kind = kind
        self.address = address
        self.connected_at = time.monotonic()
        self.frames_sent = 0
        self.frames_dropped = 0
        self.bytes_sent = 0
        self._sent = SeqOrder()
        self._slot: Frame | None = None
        self._wake = asyncio.Event()
        self._ended = False
        self._rate = RateMeter()
        #: Extra per-viewer figures for /status (a transport's adaptive delivery).
        self.details: Callable[[], dict[str, Any]] | None = None

    def peek(self) -> Frame | None:
        """The frame waiting in the slot, without taking it."""
        return self._slot

    def offer(self, frame: Frame) -> None:
        if not self._sent.is_newer(frame.seq):
            return
        if self._slot is not None:
            self.frames_dropped += 1
        self._slot = frame
        self._wake.set()

    def end(self) -> None:
        self._ended = True
        self._wake.set()

    def take_nowait(self) -> Frame | None:
        frame, self._slot = self._slot, None
        self._wake.clear()
        return frame

    async def next_frame(self) -> Frame | None:
        """The newest frame not yet taken; ``None`` once the stream has ended."""
        while self._slot is None:
            if self._ended:
                return None
            await self._wake.wait()
            self._wake.clear()
        frame = self.take_nowait()
        assert frame is not None
        return frame

    def record_sent(self, frame: Frame, nbytes: int) -> None:
        self.frames_sent += 1
        self.bytes_sent += nbytes
        self._sent.advance(frame.seq)
        self._rate.tick()

    def stats(self) -> ViewerStats:
        return ViewerStats(
            kind=self.kind,
            address=self.address,
            connected_s=round(time.monotonic() - self.connected_at, 3),
            fps=round(self._rate.rate(), 2),
            frames_sent=self.frames_sent,
            frames_dropped=self.frames_dropped,
            bytes_sent=self.bytes_sent,
            last_seq=self._sent.last_seq,
            delivery=None if self.details is None else self.details(),
        )


class Hub:
    """Holds the newest frame and every attached viewer.

    ``on_demand(True)`` is called when the first viewer attaches and
    ``on_demand(False)`` when the last one leaves, so capture can run only while
    somebody watches.
    """

    def __init__(self, on_demand: Callable[[bool], None] | None = None) -> None:
        self._on_demand = on_demand
        self._viewers: set[Viewer] = set()
        self.latest: Frame | None = None
        self._published = SeqOrder()
        self.frames_published = 0
        self.ended_reason: str | None = None
        self.published = RateMeter()

    @property
    def viewers(self) -> list[Viewer]:
        return sorted(self._viewers, key=lambda v: v.connected_at)

    def count(self) -> int:
        """Viewers of every kind: the viewer limit counts native and HTTP together."""
        return len(self._viewers)

    def attach(self, kind: str, address: str, *, fresh_within_s: float = 0.5) -> Viewer:
        """Add a viewer; it starts with the newest frame if that frame is still fresh."""
        viewer = Viewer(kind, address)
        first = not self._viewers
        replay = first and self.ended_reason is not None
        if replay:
            self.ended_reason = None  # a new audience replays an ended source
        self._viewers.add(viewer)
        if self.ended_reason is not None:
            viewer.end()
        elif replay:
            pass  # the last frame of the previous run is not this run's first
        elif self.latest is not None and self.latest.age_s() <= fresh_within_s:
            viewer.offer(self.latest)
        if first and self._on_demand is not None:
            self._on_demand(True)
        return viewer

    def detach(self, viewer: Viewer) -> None:
        if viewer not in self._viewers:
            return
        self._viewers.discard(viewer)
        viewer.end()
        if not self._viewers and self._on_demand is not None:
            self._on_demand(False)

    def publish(self, frame: Frame) -> None:
        if not self._published.advance(frame.seq):
            return  # a late result from a parallel encoder; newer is already out
        self.latest = frame
        self.frames_published += 1
        self.published.tick()
        for viewer in self._viewers:
            viewer.offer(frame)

    def end(self, reason: str) -> None:
        """The source ended: every viewer gets ``None`` after its last frame."""
        self.ended_reason = reason
        for viewer in self._viewers:
            viewer.end()
