"""Which frames of one camera are new and live (pure: no sockets, clock injected).

* **New**: a frame is new if its publisher run (epoch) is new or its seq is
  higher than the last one of that run. Frames seen twice (push, then the same
  one by pull) or late are ignored.
* **Renumbered**: a relay's hub wants one increasing seq per camera, but a
  restarted publisher counts from its start again. Within a run the relay seq
  is the publisher's seq plus an offset (so gaps still mean skipped frames; the
  first run keeps the publisher's numbers); a new run moves the offset so that
  the seq keeps increasing.
* **Live**: JetStream keeps the last frame of a dead publisher forever. A frame
  captured more than ``stale_after_s`` ago (by the wall clock, so hosts need
  NTP) is not live, and neither is a camera that has had no new frame for
  ``stale_after_s`` (by the monotonic clock, which no clock skew can fool).
"""

from __future__ import annotations

import dataclasses
import enum

from ..errors import ConfigError
from ..frame import Frame

__all__ = ["CameraTrack", "Verdict"]


class Verdict(enum.Enum):
    LIVE = "live"  # new and fresh: show it
    OLD = "old"  # already seen, or older than what was shown
    STALE = "stale"  # new to us, but captured too long ago: NO SIGNAL


class CameraTrack:
    def __init__(self, stale_after_s: float) -> None:
        if stale_after_s <= 0:
            raise ConfigError(f"stale_after_s must be positive, got {stale_after_s!r}")
        self.stale_after_s = stale_after_s
        self.epoch: str | None = None
        self.last_seq = -1  # the publisher's seq of the newest frame seen
        self.last_relay_seq = -1
        self.skipped = 0  # frames the publisher made between the last two new ones
        self._offset = 0
        self._last_new_s: float | None = None
        self.live = False

    def observe(
        self, frame: Frame, epoch: str, *, now_s: float, now_ns: int
    ) -> tuple[Verdict, Frame]:
        """Judge ``frame``; for LIVE, also return it renumbered for the relay's hub."""
        if epoch == self.epoch and frame.seq <= self.last_seq:
            return Verdict.OLD, frame
        if epoch != self.epoch:
            self.skipped = 0
            self._offset = max(0, self.last_relay_seq + 1 - frame.seq)
        else:
            self.skipped = frame.seq - self.last_seq - 1
        self.epoch = epoch
        self.last_seq = frame.seq
        if (now_ns - frame.captured_at_ns) / 1e9 > self.stale_after_s:
            self.live = False
            return Verdict.STALE, frame
        self._last_new_s = now_s
        self.live = True
        relay_frame = dataclasses.replace(frame, seq=frame.seq + self._offset)
        self.last_relay_seq = relay_frame.seq
        return Verdict.LIVE, relay_frame

    def check(self, now_s: float) -> bool:
        """Still live at ``now_s``? Flips to False once no new frame came for too long."""
        if self.live and (
            self._last_new_s is None or now_s - self._last_new_s > self.stale_after_s
        ):
            self.live = False
        return self.live

    def silent_for_s(self, now_s: float, started_s: float) -> float:
        """Seconds since the last live frame (or since ``started_s`` if none)."""
        return now_s - (self._last_new_s if self._last_new_s is not None else started_s)
