"""Push or pull-latest: a pure decision from observed lag (no sockets, clock injected).

A push subscription is the cheapest way to get every frame while the relay keeps
up. When it does not (the relay is slow itself, or its link to NATS is thin),
messages queue in the client and in the NATS server, and the age of what the
relay shows grows without bound. Pull-latest (one direct get of the newest
message at a time) cannot build a backlog, at the cost of a request per frame.

Signals, per camera:

* **lag**: a frame's age minus the lowest age seen recently. The floor absorbs
  a constant clock offset between hosts, so only *growth* counts.
* **pending**: frames already received but not yet handled by the client.
* **slow consumer**: nats-py dropped messages because its queue was full.

PUSH -> PULL after ``behind_samples`` behind observations in a row (one late
frame is jitter, not a trend), or at once on a slow-consumer report.
PULL -> PUSH at once when pulls bring nothing new for ``pull_stall_s`` (the
stream is stalled, e.g. electing a new leader after a node died, while plain
subscriptions still get frames); otherwise after at least ``pull_hold_s`` in
pull, once the last
``probe_samples`` pulls each got the very next frame (the relay keeps up with
the publisher). If push fails again soon, the hold doubles (up to
``max_pull_hold_s``), so a relay on a thin link does not flap.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["Mode", "ModeDecider", "ModePolicy"]


class Mode(enum.Enum):
    PUSH = "push"
    PULL = "pull"


@dataclass(frozen=True, kw_only=True)
class ModePolicy:
    max_lag_s: float = 0.25
    max_pending_msgs: int = 2
    behind_samples: int = 3
    pull_hold_s: float = 5.0
    max_pull_hold_s: float = 60.0
    probe_samples: int = 20
    floor_window_s: float = 30.0
    # A push period shorter than this that ends in pull again counts as a failed
    # probe (the hold doubles); a longer one resets the hold.
    stable_push_s: float = 30.0
    # Start in pull (a relay known to sit behind a thin link); it still probes push.
    start_in_pull: bool = False
    # Pull got nothing new for this long (and for 3 frame intervals): the stream
    # may have lost its leader (a Raft election takes seconds) while core NATS
    # still carries the frames, so push is tried.
    pull_stall_s: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "max_lag_s",
            "pull_hold_s",
            "max_pull_hold_s",
            "floor_window_s",
            "pull_stall_s",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        for name in ("max_pending_msgs", "behind_samples", "probe_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.max_pull_hold_s < self.pull_hold_s:
            raise ConfigError("max_pull_hold_s must be at least pull_hold_s")


class _WindowMin:
    """Minimum of the values seen in the last ``window_s`` (monotonic deque)."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._items: deque[tuple[float, float]] = deque()

    def add(self, now_s: float, value: float) -> float:
        while self._items and self._items[-1][1] >= value:
            self._items.pop()
        self._items.append((now_s, value))
        while self._items[0][0] < now_s - self._window_s:
            self._items.popleft()
        return self._items[0][1]


class ModeDecider:
    """The push/pull state of one camera. Feed it observations; read :attr:`mode`."""

    def __init__(self, policy: ModePolicy | None = None, *, now_s: float = 0.0) -> None:
        self.policy = policy or ModePolicy()
        self.mode = Mode.PULL if self.policy.start_in_pull else Mode.PUSH
        self.switches = 0
        self.last_lag_s = 0.0
        self._floor = _WindowMin(self.policy.floor_window_s)
        self._behind = 0
        self._probe_ok = 0
        self._hold_s = self.policy.pull_hold_s
        self._since_s = now_s
        self.reason = "start"

    @property
    def hold_s(self) -> float:
        """How long the current (or next) pull period lasts at least."""
        return self._hold_s

    def _lag(self, now_s: float, age_s: float) -> float:
        self.last_lag_s = max(0.0, age_s - self._floor.add(now_s, age_s))
        return self.last_lag_s

    def _switch(self, now_s: float, mode: Mode, reason: str) -> None:
        if mode is Mode.PULL:
            stayed_s = now_s - self._since_s
            if self.switches and stayed_s < self.policy.stable_push_s:
                self._hold_s = min(self._hold_s * 2, self.policy.max_pull_hold_s)
            elif self.switches:
                self._hold_s = self.policy.pull_hold_s
        self.mode = mode
        self.switches += 1
        self.reason = reason
        self._since_s = now_s
        self._behind = 0
        self._probe_ok = 0

    def on_push_frame(self, now_s: float, age_s: float, pending_msgs: int) -> Mode:
        """A frame arrived by push ``age_s`` after capture, with more waiting behind it."""
        lag_s = self._lag(now_s, age_s)
        if self.mode is not Mode.PUSH:
            return self.mode  # a late push message after the switch
        if lag_s > self.policy.max_lag_s or pending_msgs > self.policy.max_pending_msgs:
            self._behind += 1
        else:
            self._behind = 0
        if self._behind >= self.policy.behind_samples:
            what = f"lag {lag_s:.3f} s" if lag_s > self.policy.max_lag_s else "pending frames"
            self._switch(now_s, Mode.PULL, f"push fell behind ({what})")
        return self.mode

    def on_slow_consumer(self, now_s: float) -> Mode:
        """nats-py dropped messages for this subscription: its queue was full."""
        if self.mode is Mode.PUSH:
            self._switch(now_s, Mode.PULL, "slow consumer")
        return self.mode

    def on_pull_frame(self, now_s: float, age_s: float, skipped: int) -> Mode:
        """A pull got a new frame; ``skipped`` frames were published since the last one."""
        self._lag(now_s, age_s)
        if self.mode is not Mode.PULL:
            return self.mode
        self._probe_ok = self._probe_ok + 1 if skipped == 0 else 0
        if now_s - self._since_s >= self._hold_s and self._probe_ok >= self.policy.probe_samples:
            self._switch(now_s, Mode.PUSH, "pull keeps up with the publisher")
        return self.mode

    def on_pull_idle(self, now_s: float, idle_s: float, frame_interval_s: float) -> Mode:
        """Pulls have brought nothing new for ``idle_s`` (the camera was live before)."""
        if self.mode is Mode.PULL and idle_s > max(self.policy.pull_stall_s, 3 * frame_interval_s):
            self._switch(now_s, Mode.PUSH, "pull stalled (stream leader lost?)")
        return self.mode
