"""Per-camera state of a :class:`~camstream.bus.nats_source.NatsFrameSource`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..frame import Frame
from .feed import CameraFeed
from .mode import ModeDecider
from .track import CameraTrack

if TYPE_CHECKING:
    from nats.aio.subscription import Subscription

__all__ = ["CameraState", "CameraStats"]


@dataclass(frozen=True, slots=True)
class CameraStats:
    camera: str
    mode: str
    mode_reason: str
    mode_switches: int
    live: bool
    last_seq: int
    frames_live: int
    frames_by_push: int
    frames_by_pull: int
    pulls: int
    pull_errors: int
    duplicates: int
    malformed: int
    stale: int
    lag_s: float


class CameraState:
    """What the source knows and counts about one followed camera (loop thread only)."""

    def __init__(self, name: str, subject: str, track: CameraTrack, decider: ModeDecider) -> None:
        self.name = name
        self.subject = subject
        self.track = track
        self.decider = decider
        self.feeds: set[CameraFeed] = set()
        self.task: asyncio.Task[None] | None = None
        self.sub: Subscription | None = None
        self.switch = asyncio.Event()
        self.latest: Frame | None = None
        self.no_signal_sent = False
        self.started_s = 0.0
        self.stream_seq: int | None = None
        self.frame_interval_s = 1 / 30
        self.counts = dict.fromkeys(
            ("live", "push", "pull", "pulls", "pull_errors", "duplicates", "malformed", "stale"), 0
        )

    def stats(self) -> CameraStats:
        c = self.counts
        return CameraStats(
            camera=self.name,
            mode=self.decider.mode.value,
            mode_reason=self.decider.reason,
            mode_switches=self.decider.switches,
            live=self.track.live,
            last_seq=self.track.last_relay_seq,
            frames_live=c["live"],
            frames_by_push=c["push"],
            frames_by_pull=c["pull"],
            pulls=c["pulls"],
            pull_errors=c["pull_errors"],
            duplicates=c["duplicates"],
            malformed=c["malformed"],
            stale=c["stale"],
            lag_s=self.decider.last_lag_s,
        )
