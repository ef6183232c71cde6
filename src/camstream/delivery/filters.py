"""Windowed max and min filters over timestamped samples (monotonic deques).

``value`` is the max (min) of the samples of the last ``window_s`` seconds,
counted back from the newest sample. Old samples expire only when a new one
arrives: with no news, the last estimate stands, as in BBR. Memory is bounded
by ``max_samples``.
"""

from __future__ import annotations

from collections import deque

__all__ = ["WindowedMax", "WindowedMin"]


class WindowedMax:
    """Max of the samples within ``window_s`` of the newest one."""

    _sign = 1.0

    def __init__(self, window_s: float, *, max_samples: int = 512) -> None:
        self.window_s = window_s
        self._max_samples = max_samples
        # (time, sign * value), the signed values decreasing from front to back.
        self._samples: deque[tuple[float, float]] = deque()

    @property
    def value(self) -> float | None:
        if not self._samples:
            return None
        return self._samples[0][1] * self._sign

    def update(self, value: float, now_s: float) -> None:
        signed = value * self._sign
        samples = self._samples
        while samples and samples[-1][1] <= signed:
            samples.pop()
        samples.append((now_s, signed))
        while samples[0][0] < now_s - self.window_s or len(samples) > self._max_samples:
            samples.popleft()

    def reset(self, value: float, now_s: float) -> None:
        """Forget every sample: ``value`` is the truth from now on."""
        self._samples.clear()
        self._samples.append((now_s, value * self._sign))


class WindowedMin(WindowedMax):
    """Min of the samples within ``window_s`` of the newest one."""

    _sign = -1.0
