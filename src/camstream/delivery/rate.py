"""The delivery-rate estimate of one viewer: a windowed max, and whether it still grows.

Split out of :mod:`.controller`, which computes the samples (BBR's delivery
rate estimator over frame acks, or the kernel's ``tcpi_delivery_rate``).

* The estimate is a windowed **max** of the samples: the link can do at least
  what it has been seen to do. A sample taken while the sender was not held
  back (*app-limited*) only says "at least this much", so it may raise the
  estimate but never lowers it. A sample that *queued* at the bottleneck was
  taken on a busy path, so it is the rate now and replaces the window, once
  confirmed: queued samples whose acks span at least ``confirm_s`` (a frame
  interval). A real bottleneck spreads acks out by each frame's
  serialisation; a viewer that stalled for a moment (a busy CPU, a Wi-Fi
  retry) returns a late, low sample or two and then a burst of acks, which
  must not throw away what the link was seen to carry.
* **Full pipe** (BBR): at the end of each round trip of frames in which the
  sender was held back, the estimate should have grown by 25 %. Two rounds
  without that growth mean the link, not the window, is the limit; while it
  grows a long link is merely opening up.
"""

from __future__ import annotations

from .filters import WindowedMax

__all__ = ["RateEstimator"]

_GROWTH = 1.25
_STALLED_ROUNDS = 2
_UNCONFIRMED_SAMPLES = 4


class RateEstimator:
    """Bottleneck rate in bytes/s from delivery-rate samples."""

    def __init__(self, window_s: float, window_rtts: float) -> None:
        self._window_s = window_s
        self._window_rtts = window_rtts
        self._filter = WindowedMax(window_s)
        self.latest_bps = 0.0
        self.rounds = 0
        self._next_round_delivered = 0
        self._growth_base_bps = 0.0
        self._stalled_rounds = 0
        self._queued_run: list[tuple[float, float]] = []  # (time, rate) of queued samples
        self.congested = False
        self.samples = 0

    @property
    def value_bps(self) -> float:
        return self._filter.value or 0.0

    @property
    def stalled(self) -> bool:
        """Held back by the window, and the rate stopped growing: the pipe is full."""
        return self._stalled_rounds >= _STALLED_ROUNDS

    def sample(
        self,
        rate_bps: float,
        now_s: float,
        *,
        app_limited: bool,
        queued: bool,
        srtt_s: float,
        confirm_s: float,
    ) -> None:
        """Take one sample; ``queued`` ones must span ``confirm_s`` of acks to count."""
        self.latest_bps = rate_bps
        # At least ``window_s``, and enough round trips on a long link.
        self._filter.window_s = max(self._window_s, self._window_rtts * srtt_s)
        self.samples += 1
        if queued:
            run = self._queued_run
            run.append((now_s, rate_bps))
            # The first samples of a stream need no confirmation: nothing seen
            # yet would be thrown away, and a thin link should not carry
            # full-size frames one moment longer than it must.
            if now_s - run[0][0] >= confirm_s or self.samples <= _UNCONFIRMED_SAMPLES:
                self._filter.reset(max(rate for _, rate in run), now_s)
                self.congested = True
                run.clear()
            return
        self._queued_run.clear()
        self.congested = False
        if not app_limited or rate_bps >= self.value_bps:
            self._filter.update(rate_bps, now_s)

    def on_delivered(self, delivered_at_send: int, delivered_now: int, app_limited: bool) -> None:
        """A frame was delivered: at the end of a round trip, check for growth.

        ``delivered_at_send`` is the delivered byte count when that frame left;
        a round ends when a frame sent after the previous round's end arrives.
        """
        if delivered_at_send < self._next_round_delivered:
            return
        self._next_round_delivered = delivered_now
        self.rounds += 1
        rate = self.value_bps
        if app_limited:
            # We were not pushing: nothing learned about the pipe.
            self._stalled_rounds = 0
            self._growth_base_bps = rate
        elif rate >= _GROWTH * self._growth_base_bps:
            self._growth_base_bps = rate
            self._stalled_rounds = 0
        else:
            self._stalled_rounds += 1
