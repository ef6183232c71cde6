"""Small measurement helpers shared by the server, clients and viewer."""

from __future__ import annotations

import collections
import time

__all__ = ["RateMeter", "ThroughputMeter"]


class RateMeter:
    """Events per second over a sliding window (default 1 s)."""

    def __init__(self, window_s: float = 1.0) -> None:
        self._window_ns = int(window_s * 1e9)
        self._stamps: collections.deque[int] = collections.deque()

    def tick(self, now_ns: int | None = None) -> None:
        now = time.monotonic_ns() if now_ns is None else now_ns
        self._stamps.append(now)
        self._trim(now)

    def rate(self, now_ns: int | None = None) -> float:
        now = time.monotonic_ns() if now_ns is None else now_ns
        self._trim(now)
        return len(self._stamps) * 1e9 / self._window_ns

    def _trim(self, now: int) -> None:
        horizon = now - self._window_ns
        while self._stamps and self._stamps[0] < horizon:
            self._stamps.popleft()


class ThroughputMeter:
    """An amount per second (e.g. bytes) over a sliding window (default 1 s)."""

    def __init__(self, window_s: float = 1.0) -> None:
        self._window_ns = int(window_s * 1e9)
        self._samples: collections.deque[tuple[int, int]] = collections.deque()
        self._total = 0

    def add(self, amount: int, now_ns: int | None = None) -> None:
        now = time.monotonic_ns() if now_ns is None else now_ns
        self._samples.append((now, amount))
        self._total += amount
        self._trim(now)

    def rate(self, now_ns: int | None = None) -> float:
        now = time.monotonic_ns() if now_ns is None else now_ns
        self._trim(now)
        return self._total * 1e9 / self._window_ns

    def _trim(self, now: int) -> None:
        horizon = now - self._window_ns
        while self._samples and self._samples[0][0] < horizon:
            self._total -= self._samples.popleft()[1]
