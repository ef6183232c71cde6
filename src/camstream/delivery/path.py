"""Round trips of one viewer's path: minimum, smoothed, and what a late frame means.

Split out of :mod:`.controller`, which owns the rate and the window; this
module only judges round-trip samples. Pure, like the controller.

* The **minimum** never expires with time. Under a standing queue every recent
  sample is inflated, and a minimum that forgot the old one would let the
  window, and so the queue, creep up (BBR drains its queue to re-measure; we
  need not). It rises only on evidence that the path itself got longer: frames
  that left with nothing of ours ahead of them (so nothing of ours to queue
  behind) and still came back late, :data:`PATH_CHANGE_SAMPLES` times in a row.
* A sample is **queued** when it exceeds the minimum by more than the
  threshold, after allowing for its frame being bigger than the frame behind
  the minimum (a bigger frame takes longer to serialise; that is not queueing).
  A lone late frame counts as queued too: the link got slower (its rate
  sample is then the new rate) or the path got longer, and since bandwidth
  drops are far more common than path changes, waiting for proof costs age.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PATH_CHANGE_SAMPLES", "PathModel"]

#: Lone frames that must come back late in a row before the minimum round trip
#: is believed to have grown.
PATH_CHANGE_SAMPLES: Final = 3


class PathModel:
    """Min and smoothed round trip, and the queueing judgement of each sample."""

    def __init__(self) -> None:
        self.min_rtt_s: float | None = None
        self.min_rtt_size = 0  # bytes of the frame behind the minimum (0: per-packet)
        self.srtt_s: float | None = None
        self.queue_delay_s = 0.0
        self.queued = False
        self.path_changes = 0
        self._late_alone: list[tuple[float, int]] = []

    def set_kernel_min(self, min_rtt_s: float) -> None:
        """The kernel keeps its own windowed per-packet minimum (``tcpi_min_rtt``)."""
        self.min_rtt_s, self.min_rtt_size = min_rtt_s, 0

    def serialisation_s(self, size: int, rate_bps: float) -> float:
        """How much longer than the minimum's frame a frame of ``size`` takes to send."""
        return max(0, size - self.min_rtt_size) / rate_bps if rate_bps > 0 else 0.0

    def sample(
        self, rtt_s: float, size: int, *, ahead: int | None, rate_bps: float, threshold_s: float
    ) -> bool:
        """Record a round trip; True if it shows queueing.

        ``ahead`` is the bytes that were in flight when the frame left (``None``
        for a kernel per-packet sample, ``size`` then 0).
        """
        self.srtt_s = rtt_s if self.srtt_s is None else 0.875 * self.srtt_s + 0.125 * rtt_s
        if self.min_rtt_s is None or rtt_s <= self.min_rtt_s:
            self.min_rtt_s, self.min_rtt_size = rtt_s, size
        excess = rtt_s - self.min_rtt_s - self.serialisation_s(size, rate_bps)
        self.queue_delay_s = max(0.0, excess)
        self.queued = self.queue_delay_s > threshold_s
        if ahead != 0:
            return self.queued
        if not self.queued:
            self._late_alone.clear()
            return False
        self._late_alone.append((rtt_s, size))
        if len(self._late_alone) >= PATH_CHANGE_SAMPLES:
            self.min_rtt_s, self.min_rtt_size = min(self._late_alone)
            self._late_alone.clear()
            self.path_changes += 1
            self.queued = False
        return self.queued

    def overdue(
        self, age_s: float, size: int, ahead: int, *, rate_bps: float, threshold_s: float
    ) -> bool:
        """A frame in flight for ``age_s`` is later than the measured link explains."""
        if self.min_rtt_s is None or rate_bps <= 0:
            return False
        expected = self.min_rtt_s + self.serialisation_s(size, rate_bps) + ahead / rate_bps
        return age_s > expected + threshold_s
