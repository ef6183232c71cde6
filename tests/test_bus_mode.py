"""The push/pull decision and the per-camera track: pure, clock injected, no sockets."""

from __future__ import annotations

import pytest

from camstream.bus.mode import Mode, ModeDecider, ModePolicy
from camstream.bus.track import CameraTrack, Verdict
from camstream.errors import ConfigError
from camstream.frame import Codec, Frame

FPS = 30
DT = 1 / FPS
POLICY = ModePolicy(
    max_lag_s=0.25, max_pending_msgs=2, behind_samples=3, pull_hold_s=5.0, probe_samples=10
)


def keep_up(decider: ModeDecider, start_s: float, seconds: float, age_s: float = 0.01) -> float:
    now = start_s
    while now < start_s + seconds:
        decider.on_push_frame(now, age_s, 0)
        now += DT
    return now


def test_push_that_keeps_up_stays_push_whatever_the_clock_offset() -> None:
    decider = ModeDecider(POLICY)
    # A constant 2 s clock offset between hosts is not lag: only growth counts.
    keep_up(decider, 0.0, 60.0, age_s=2.0)
    assert decider.mode is Mode.PUSH
    assert decider.switches == 0
    assert decider.last_lag_s == pytest.approx(0.0)


def test_growing_age_switches_to_pull_after_three_behind_samples() -> None:
    decider = ModeDecider(POLICY)
    now = keep_up(decider, 0.0, 1.0)
    ages = []
    age = 0.01
    while decider.mode is Mode.PUSH:
        age += 0.05  # a slow consumer: each frame is 50 ms older than the last
        ages.append(age)
        decider.on_push_frame(now, age, 0)
        now += DT
        assert len(ages) < 100
    # The lag (age over the 0.01 s floor) passes 0.25 s at the 6th frame; the
    # 3rd behind frame in a row switches.
    assert len(ages) == 8
    assert decider.reason.startswith("push fell behind (lag")


def test_one_late_frame_is_jitter_not_a_trend() -> None:
    decider = ModeDecider(POLICY)
    now = keep_up(decider, 0.0, 1.0)
    for _ in range(20):
        decider.on_push_frame(now, 0.9, 0)  # one spike
        now += DT
        now = keep_up(decider, now, 0.1)  # then fine again
    assert decider.mode is Mode.PUSH


def test_pending_frames_switch_to_pull() -> None:
    decider = ModeDecider(POLICY)
    now = keep_up(decider, 0.0, 1.0)
    modes = [decider.on_push_frame(now + i * DT, 0.01, pending_msgs=5) for i in range(3)]
    assert modes == [Mode.PUSH, Mode.PUSH, Mode.PULL]
    assert decider.reason == "push fell behind (pending frames)"


def test_slow_consumer_switches_at_once() -> None:
    decider = ModeDecider(POLICY)
    assert decider.on_slow_consumer(1.0) is Mode.PULL
    assert decider.reason == "slow consumer"
    assert decider.on_slow_consumer(2.0) is Mode.PULL
    assert decider.switches == 1


def test_pull_returns_to_push_only_after_the_hold_and_clean_probes() -> None:
    decider = ModeDecider(POLICY)
    decider.on_slow_consumer(0.0)
    now = 0.0
    # Keeping up (no skipped frames) but before the hold ends: stay in pull.
    while now < 4.9:
        assert decider.on_pull_frame(now, 0.01, skipped=0) is Mode.PULL
        now += DT
    assert decider.on_pull_frame(5.0, 0.01, skipped=0) is Mode.PUSH
    assert decider.reason == "pull keeps up with the publisher"


def test_pull_that_skips_frames_stays_pull() -> None:
    decider = ModeDecider(POLICY)
    decider.on_slow_consumer(0.0)
    now = 0.0
    for i in range(3000):  # 100 s of a thin link: every pull skips a frame or two
        decider.on_pull_frame(now, 0.3, skipped=1 + i % 2)
        now += DT
    assert decider.mode is Mode.PULL
    # One skip resets the probe: ten clean pulls in a row are needed.
    for _ in range(9):
        decider.on_pull_frame(now, 0.01, skipped=0)
        now += DT
    assert decider.on_pull_frame(now, 0.01, skipped=1) is Mode.PULL
    assert decider.mode is Mode.PULL


def test_a_failed_return_to_push_doubles_the_hold_up_to_the_cap() -> None:
    policy = ModePolicy(pull_hold_s=5.0, max_pull_hold_s=20.0, probe_samples=1)
    decider = ModeDecider(policy)
    decider.on_slow_consumer(0.0)
    holds = []
    now = 0.0
    for _ in range(4):
        now += decider.hold_s
        assert decider.on_pull_frame(now, 0.01, skipped=0) is Mode.PUSH
        now += 1.0  # push fails again quickly
        decider.on_slow_consumer(now)
        holds.append(decider.hold_s)
    assert holds == [10.0, 20.0, 20.0, 20.0]
    # A long, stable push period resets the hold.
    now += decider.hold_s
    decider.on_pull_frame(now, 0.01, skipped=0)
    now += 60.0
    decider.on_slow_consumer(now)
    assert decider.hold_s == 5.0


def test_late_push_frames_after_the_switch_do_not_flip_back() -> None:
    decider = ModeDecider(POLICY)
    decider.on_slow_consumer(0.0)
    assert decider.on_push_frame(0.1, 0.01, 0) is Mode.PULL


def test_a_stalled_pull_falls_back_to_push() -> None:
    decider = ModeDecider(POLICY)
    decider.on_slow_consumer(0.0)
    assert decider.on_pull_idle(0.5, idle_s=0.9, frame_interval_s=DT) is Mode.PULL
    # A slow camera (1 fps) is not a stall after 1 s: three intervals are allowed.
    assert decider.on_pull_idle(0.5, idle_s=2.5, frame_interval_s=1.0) is Mode.PULL
    assert decider.on_pull_idle(0.6, idle_s=1.1, frame_interval_s=DT) is Mode.PUSH
    assert decider.reason.startswith("pull stalled")
    assert decider.on_pull_idle(0.7, idle_s=5.0, frame_interval_s=DT) is Mode.PUSH


def test_a_relay_may_start_in_pull() -> None:
    decider = ModeDecider(ModePolicy(start_in_pull=True, probe_samples=1), now_s=0.0)
    assert decider.mode is Mode.PULL
    assert decider.on_pull_frame(1.0, 0.01, skipped=0) is Mode.PULL  # the hold still counts
    assert decider.on_pull_frame(5.0, 0.01, skipped=0) is Mode.PUSH


def test_policy_is_validated() -> None:
    with pytest.raises(ConfigError):
        ModePolicy(max_lag_s=0)
    with pytest.raises(ConfigError):
        ModePolicy(behind_samples=0)
    with pytest.raises(ConfigError):
        ModePolicy(pull_hold_s=10, max_pull_hold_s=5)


# -- track ---------------------------------------------------------------------

S = 1_000_000_000


def frame(seq: int, captured_s: float) -> Frame:
    return Frame(seq, int(captured_s * S), 4, 4, Codec.JPEG, b"x%d" % seq)


def test_track_accepts_new_frames_and_ignores_repeats() -> None:
    track = CameraTrack(stale_after_s=2.0)
    verdict, out = track.observe(frame(10, 100.0), "a", now_s=0.0, now_ns=int(100.01 * S))
    assert verdict is Verdict.LIVE
    assert out.seq == 10  # the first run keeps the publisher's numbers
    assert track.observe(frame(10, 100.0), "a", now_s=0.1, now_ns=int(100.1 * S))[0] is Verdict.OLD
    assert track.observe(frame(9, 99.9), "a", now_s=0.1, now_ns=int(100.1 * S))[0] is Verdict.OLD
    verdict, out = track.observe(frame(13, 100.1), "a", now_s=0.2, now_ns=int(100.2 * S))
    assert (verdict, out.seq, track.skipped) == (Verdict.LIVE, 13, 2)


def test_a_restarted_publisher_keeps_the_relay_seq_increasing() -> None:
    track = CameraTrack(stale_after_s=2.0)
    track.observe(frame(500, 100.0), "a", now_s=0.0, now_ns=int(100.0 * S))
    verdict, out = track.observe(frame(0, 110.0), "b", now_s=10.0, now_ns=int(110.0 * S))
    assert verdict is Verdict.LIVE
    assert out.seq == 501
    verdict, out = track.observe(frame(3, 110.1), "b", now_s=10.1, now_ns=int(110.1 * S))
    assert out.seq == 504  # gaps still mean skipped frames
    assert track.skipped == 2


def test_a_retained_old_frame_is_stale_not_live() -> None:
    track = CameraTrack(stale_after_s=2.0)
    verdict, _ = track.observe(frame(7, 100.0), "a", now_s=0.0, now_ns=int(102.5 * S))
    assert verdict is Verdict.STALE
    assert not track.live
    assert not track.check(0.0)


def test_no_new_frame_for_the_bound_is_no_signal_by_the_monotonic_clock() -> None:
    track = CameraTrack(stale_after_s=2.0)
    # The wall clocks disagree by 1.5 s: still fresh, and staleness comes from
    # the monotonic clock, not from the capture time.
    track.observe(frame(1, 100.0), "a", now_s=50.0, now_ns=int(101.5 * S))
    assert track.check(51.9)
    assert not track.check(52.1)
    verdict, _ = track.observe(frame(2, 103.0), "a", now_s=53.0, now_ns=int(103.1 * S))
    assert verdict is Verdict.LIVE
    assert track.check(53.0)
    assert track.silent_for_s(54.0, started_s=0.0) == pytest.approx(1.0)


def test_track_validates_its_bound() -> None:
    with pytest.raises(ConfigError):
        CameraTrack(stale_after_s=0)
