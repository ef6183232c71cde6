"""A deterministic discrete-event model of one viewer's link, for the delivery tests.

The path: the server hands a frame to the bottleneck (a FIFO draining at the
link rate), its last byte reaches the viewer one one-way delay after it leaves
the bottleneck, and the viewer's ack takes another one-way delay back. Rate,
one-way delay and the bottleneck's buffer change over time on a schedule.
TCP never loses data, so a frame that overflows the bottleneck buffer is not
dropped: it costs two round trips (at least 10 ms) of idle link instead,
roughly what a tail-loss probe and retransmission cost a TCP flow.

The sender mirrors a native session with the controller and the chooser: a
30 fps source keeps only its newest frame; at every event (a new frame, an ack)
the sender picks the tier, asks ``may_send`` and, if allowed, sends the newest
frame at that tier. Everything is plain arithmetic on floats: a 30 s run takes
a few milliseconds and is exactly repeatable.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from camstream.delivery import (
    ControllerConfig,
    DeliveryController,
    Tier,
    TierChooser,
    default_ladder,
)

MBIT = 1_000_000 / 8  # bytes/s

# Bytes per frame of each default tier on the camera-like 720p scene, relative to
# full q80 (measured with cv2: 1, 0.28, 0.16, 0.083, 0.058).
DEFAULT_TIER_FACTORS = (1.0, 0.283, 0.158, 0.083, 0.058)
FULL_FRAME_BYTES = 150_000


@dataclass(frozen=True)
class Phase:
    """From ``start_s`` on, the link runs at ``rate_bps`` with ``one_way_s`` each way."""

    start_s: float
    rate_bps: float
    one_way_s: float = 0.001
    buffer_bytes: float = math.inf


class Sender(Protocol):
    """The controller's decision interface, so a broken one can be swapped in."""

    def may_send(self, next_size_bytes: int, now_s: float) -> bool: ...
    def on_frame_sent(self, frame_id: int, size_bytes: int, now_s: float) -> None: ...
    def on_frame_acked(self, frame_id: int, now_s: float) -> None: ...
    @property
    def delivery_rate_bps(self) -> float: ...
    @property
    def link_limited(self) -> bool: ...
    @property
    def smoothed_rtt_s(self) -> float | None: ...


@dataclass
class Delivered:
    seq: int
    captured_s: float
    arrived_s: float
    tier: int
    size: int

    @property
    def age_s(self) -> float:
        return self.arrived_s - self.captured_s


@dataclass
class Result:
    delivered: list[Delivered] = field(default_factory=list)
    tier_changes: list[tuple[float, int]] = field(default_factory=list)  # (time, new index)

    def window(self, start_s: float, end_s: float) -> list[Delivered]:
        return [d for d in self.delivered if start_s <= d.arrived_s < end_s]

    def fps(self, start_s: float, end_s: float) -> float:
        return len(self.window(start_s, end_s)) / (end_s - start_s)

    def age_ms(self, start_s: float, end_s: float, pct: float) -> float:
        ages = sorted(d.age_s for d in self.window(start_s, end_s))
        if not ages:
            return math.inf
        return 1000 * ages[min(len(ages) - 1, int(pct / 100 * len(ages)))]

    def share_at_tier(self, start_s: float, end_s: float, tier: int) -> float:
        frames = self.window(start_s, end_s)
        return sum(d.tier == tier for d in frames) / max(1, len(frames))

    def changes(self, start_s: float, end_s: float) -> list[tuple[float, int]]:
        return [c for c in self.tier_changes if start_s <= c[0] < end_s]


class Link:
    """The bottleneck FIFO with its schedule."""

    def __init__(self, phases: Sequence[Phase]) -> None:
        self.phases = sorted(phases, key=lambda p: p.start_s)
        self.busy_until = 0.0

    def phase(self, t: float) -> Phase:
        current = self.phases[0]
        for phase in self.phases:
            if phase.start_s <= t:
                current = phase
        return current

    def transmit(self, now: float, size: int) -> float:
        """Queue ``size`` bytes at ``now``; return when the last one leaves the bottleneck."""
        start = max(now, self.busy_until)
        phase = self.phase(now)
        queued = (start - now) * phase.rate_bps
        if queued + size > phase.buffer_bytes:
            # Loss recovery: a tail-loss probe fires after about two round trips
            # (at least 10 ms) with nothing delivered meanwhile.
            start += max(0.01, 4 * phase.one_way_s)
        remaining = float(size)
        t = start
        while True:
            phase = self.phase(t)
            later = [p.start_s for p in self.phases if p.start_s > t]
            segment_end = later[0] if later else math.inf
            can = (segment_end - t) * phase.rate_bps
            if can >= remaining:
                t += remaining / phase.rate_bps
                break
            remaining -= can
            t = segment_end
        self.busy_until = t
        return t


def frame_bytes(tier: int, seq: int, factors: Sequence[float] = DEFAULT_TIER_FACTORS) -> int:
    """Deterministic sizes: the tier's share of a full frame, ±10 % with the content."""
    return int(FULL_FRAME_BYTES * factors[tier] * (1 + 0.1 * math.sin(seq * 0.7)))


def run(
    phases: Sequence[Phase],
    *,
    duration_s: float,
    controller: Sender | None = None,
    chooser: TierChooser | None = None,
    ladder: Sequence[Tier] | None = None,
    fps: float = 30.0,
    stalls: Sequence[tuple[float, float]] = (),
) -> Result:
    """Stream for ``duration_s`` over the link and record every delivered frame.

    ``stalls`` are (start, seconds) during which the viewer reads nothing (a
    busy CPU, a Wi-Fi retry): frames arriving then are acked when it ends.
    """
    tiers = tuple(chooser.tiers if chooser is not None else ladder or default_ladder())
    pick = chooser or TierChooser(tiers, source_fps=fps)
    # As a session would: the controller allows for, and paces to, the viewer's rate.
    config = ControllerConfig(target_fps=pick.target_fps, max_fps=pick.overrides.fps)
    ctrl: Sender = controller if controller is not None else DeliveryController(config)
    link = Link(phases)
    result = Result()
    events: list[tuple[float, int, str, int]] = []  # (time, order, kind, seq)
    order = 0

    def push(t: float, kind: str, seq: int) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (t, order, kind, seq))

    for seq in range(int(duration_s * fps)):
        push(seq / fps, "capture", seq)
    pending: tuple[int, float] | None = None  # newest unsent frame: (seq, captured)
    in_flight: dict[int, Delivered] = {}
    last_index = pick.index
    while events:
        now, _, kind, seq = heapq.heappop(events)
        if kind == "capture":
            pending = (seq, now)
        elif kind == "arrive":
            result.delivered.append(in_flight.pop(seq))
        else:
            ctrl.on_frame_acked(seq, now)
        if pending is None:
            continue
        tier = pick.update(
            now,
            rate_bps=ctrl.delivery_rate_bps,
            link_limited=ctrl.link_limited,
            rtt_s=ctrl.smoothed_rtt_s,
        )
        index = tiers.index(tier)
        if index != last_index:
            result.tier_changes.append((now, index))
            last_index = index
        expected = pick.expected_bytes(pick.index) or frame_bytes(index, pending[0])
        if not ctrl.may_send(int(expected), now):
            continue
        seq, captured = pending
        pending = None
        size = frame_bytes(index, seq)
        pick.observe_size(tier, size)
        ctrl.on_frame_sent(seq, size, now)
        left = link.transmit(now, size)
        one_way = link.phase(left).one_way_s
        arrive = left + one_way
        for start, length in stalls:
            if start <= arrive < start + length:
                arrive = start + length
        in_flight[seq] = Delivered(seq, captured, arrive, index, size)
        push(arrive, "arrive", seq)
        push(arrive + link.phase(arrive).one_way_s, "ack", seq)
    return result
