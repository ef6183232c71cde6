"""Peers that send garbage or vanish are normal: one summary a minute, never a flood.

A hostile or broken peer must not be able to fill a disk through the server's
log. Each dropped connection gets at most one short DEBUG line where it is
dropped; :data:`BAD_PEERS` counts them by reason and the server logs one
WARNING per interval (a minute), only when something was dropped, e.g.
"37 connections dropped for bad requests in the last minute (25 native protocol
error, 12 bad HTTP request (400))".
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

__all__ = ["BAD_PEERS", "BadPeerLog"]

logger = logging.getLogger(__name__)


class BadPeerLog:
    """Counts bad peers per reason; :meth:`flush` logs one summary line and resets."""

    def __init__(
        self,
        target: logging.Logger = logger,
        *,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()  # servers on several loops may share it
        self._counts: Counter[str] = Counter()
        self._since = clock()
        self.summaries = 0

    def note(self, reason: str) -> None:
        """One connection was dropped for ``reason``; summarise if an interval has passed."""
        with self._lock:
            self._counts[reason] += 1
        if self._clock() - self._since >= self.interval_s:
            self.flush()

    def flush(self) -> str | None:
        """Log (and return) the summary of what was counted since the last one, if anything."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
            since, self._since = self._since, self._clock()
        total = sum(counts.values())
        if not total:
            return None
        span_s = self._since - since
        span = "minute" if 50 <= span_s <= 70 else f"{span_s:.0f} s"
        detail = ", ".join(f"{n} {reason}" for reason, n in counts.most_common())
        line = f"{total} connections dropped for bad requests in the last {span} ({detail})"
        self.summaries += 1
        self.target.warning("%s", line)
        return line

    async def run(self) -> None:
        """Flush every interval, so the last burst is reported too (a server task)."""
        while True:
            await asyncio.sleep(self.interval_s)
            self.flush()


#: The process's one counter: every transport notes into it, each server flushes it.
BAD_PEERS = BadPeerLog()
