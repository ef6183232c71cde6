"""The delivery controller: unit behaviour, then whole runs on the simulated link (linksim).

Targets from issue 8, on a 30 fps source with ~150 KB full frames: bounded age
and >= 24 fps on 5 Mbit/s by stepping down; full rate at full size on 100 and
200 ms round trips; a bandwidth drop seen within a few hundred ms. Each run is
a few milliseconds of arithmetic and exactly repeatable.
"""

from __future__ import annotations

import pytest

from camstream.delivery import (
    ControllerConfig,
    DeliveryController,
    Overrides,
    TierChooser,
    default_ladder,
)
from camstream.errors import ConfigError
from linksim import MBIT, Phase, frame_bytes, run

# -- unit behaviour -------------------------------------------------------------


def test_an_idle_path_always_takes_a_frame_and_the_first_window_is_two_frames() -> None:
    ctrl = DeliveryController()
    assert ctrl.may_send(10_000_000, 0.0)  # even a huge frame: nothing is in flight
    ctrl.on_frame_sent(1, 150_000, 0.0)
    assert ctrl.inflight_limit_bytes is None
    assert ctrl.may_send(150_000, 0.01)
    ctrl.on_frame_sent(2, 150_000, 0.01)
    assert not ctrl.may_send(150_000, 0.02)
    assert ctrl.bytes_in_flight == 300_000
    assert ctrl.frames_in_flight == 2


def test_one_ack_gives_rate_rtt_and_a_limit_of_bdp_plus_one_frame_time() -> None:
    ctrl = DeliveryController(ControllerConfig(target_fps=25.0))
    ctrl.on_frame_sent(1, 100_000, 0.0)
    ctrl.on_frame_acked(1, 0.2)
    assert ctrl.min_rtt_s == pytest.approx(0.2)
    assert ctrl.smoothed_rtt_s == pytest.approx(0.2)
    assert ctrl.delivery_rate_bps == pytest.approx(500_000)
    # rate * (min_rtt + 1 / fps) = 500 KB/s * (0.2 + 0.04) s
    assert ctrl.inflight_limit_bytes == pytest.approx(120_000, abs=1)
    assert ctrl.bytes_in_flight == 0


def test_stats_show_the_measured_link() -> None:
    ctrl = DeliveryController()
    assert ctrl.stats()["min_rtt_ms"] is None
    ctrl.on_frame_sent(1, 100_000, 0.0)
    ctrl.on_frame_acked(1, 0.2)
    stats = ctrl.stats()
    assert stats["link_rate_bps"] == 500_000 and stats["min_rtt_ms"] == 200.0
    assert stats["bytes_in_flight"] == 0 and stats["link_limited"] is False


def test_acks_are_cumulative_and_unknown_acks_are_counted_not_trusted() -> None:
    ctrl = DeliveryController()
    for frame_id in range(3):
        ctrl.on_frame_sent(frame_id, 1000, frame_id * 0.01)
    ctrl.on_frame_acked(1, 0.05)
    assert ctrl.frames_in_flight == 1
    assert ctrl.bytes_in_flight == 1000
    ctrl.on_frame_acked(0, 0.06)  # already covered by the ack of 1
    ctrl.on_frame_acked(99, 0.06)
    assert ctrl.unknown_acks == 2
    assert ctrl.frames_acked == 2
    ctrl.on_frame_acked(2, 0.07)
    assert ctrl.bytes_in_flight == 0


def test_a_frame_never_acknowledged_is_declared_lost_so_the_window_reopens() -> None:
    ctrl = DeliveryController(ControllerConfig(ack_timeout_min_s=1.0))
    ctrl.on_frame_sent(1, 1000, 0.0)
    ctrl.on_frame_acked(1, 0.01)
    ctrl.on_frame_sent(2, 50_000, 0.1)
    ctrl.on_frame_sent(3, 50_000, 0.1)
    assert not ctrl.may_send(50_000, 0.5)
    assert ctrl.may_send(50_000, 1.2)
    assert ctrl.frames_lost == 2
    assert ctrl.bytes_in_flight == 0
    ctrl.on_frame_acked(3, 1.3)  # too late: not trusted for a sample
    assert ctrl.unknown_acks == 1


def test_memory_is_bounded_by_max_outstanding() -> None:
    ctrl = DeliveryController(ControllerConfig(max_outstanding=8))
    for frame_id in range(100):
        ctrl.on_frame_sent(frame_id, 10, 0.0)
    assert ctrl.frames_in_flight == 8
    assert ctrl.bytes_in_flight == 80
    assert ctrl.frames_lost == 92


def test_max_fps_paces_the_sender() -> None:
    ctrl = DeliveryController(ControllerConfig(max_fps=10.0))
    ctrl.on_frame_sent(1, 1000, 0.0)
    ctrl.on_frame_acked(1, 0.001)
    assert not ctrl.may_send(1000, 0.05)
    assert ctrl.may_send(1000, 0.096)


def test_http_viewers_are_measured_from_tcp_info() -> None:
    ctrl = DeliveryController()
    ctrl.on_frame_sent(1, 40_000, 0.0)
    ctrl.on_frame_sent(2, 40_000, 0.0)
    # The kernel still holds 30 KB of the 80 KB: frame 1 is delivered, frame 2 is not.
    ctrl.on_transport_sample(
        0.05,
        rtt_s=0.011,
        min_rtt_s=0.01,
        delivery_rate_bps=1_000_000,
        notsent_bytes=10_000,
        unacked_bytes=20_000,
    )
    assert ctrl.frames_in_flight == 1
    assert ctrl.bytes_in_flight == 40_000
    assert ctrl.min_rtt_s == pytest.approx(0.01)
    assert ctrl.delivery_rate_bps == pytest.approx(1_000_000)
    assert ctrl.inflight_limit_bytes == pytest.approx(1_000_000 * (0.01 + 1 / 30), abs=1)
    ctrl.on_transport_sample(0.1, notsent_bytes=0, unacked_bytes=0)
    assert ctrl.bytes_in_flight == 0


def _running_at_2_mbyte_per_s() -> DeliveryController:
    """A stream past its first samples (those need no confirmation)."""
    ctrl = DeliveryController()
    for i in range(6):
        t = -0.06 + i * 0.01
        ctrl.on_transport_sample(t, rtt_s=0.011, min_rtt_s=0.01, delivery_rate_bps=2e6)
    return ctrl


def test_a_queue_that_lasts_a_frame_interval_marks_the_link_as_the_limit() -> None:
    ctrl = _running_at_2_mbyte_per_s()
    assert not ctrl.link_limited
    ctrl.on_transport_sample(0.1, rtt_s=0.2, delivery_rate_bps=5e5)
    assert not ctrl.link_limited  # one late sample could be a hiccup
    ctrl.on_transport_sample(0.15, rtt_s=0.22, delivery_rate_bps=6e5)
    assert ctrl.link_limited
    # Confirmed queued samples are the link's rate now: the old max is forgotten.
    assert ctrl.delivery_rate_bps == pytest.approx(6e5)


def test_a_hiccup_does_not_throw_away_what_the_link_carried() -> None:
    ctrl = _running_at_2_mbyte_per_s()
    ctrl.on_transport_sample(0.1, rtt_s=0.06, delivery_rate_bps=3e5)
    ctrl.on_transport_sample(0.101, rtt_s=0.05, delivery_rate_bps=2e5)  # the burst after it
    ctrl.on_transport_sample(0.11, rtt_s=0.011, delivery_rate_bps=1.9e6)
    assert not ctrl.link_limited
    assert ctrl.delivery_rate_bps == pytest.approx(2e6)


def test_viewer_stalls_do_not_knock_a_fast_link_off_full_size() -> None:
    stalls = [(1.0 + 1.5 * i, 0.05) for i in range(12)]  # 50 ms every 1.5 s
    result = run([Phase(0, 100 * MBIT)], duration_s=20, stalls=stalls)
    assert result.share_at_tier(2, 20, 0) >= 0.95
    assert result.fps(2, 20) >= 29


def test_app_limited_samples_raise_the_estimate_but_never_lower_it() -> None:
    ctrl = DeliveryController()
    ctrl.on_frame_sent(1, 100_000, 0.0)
    ctrl.on_frame_acked(1, 0.05)  # 2 MB/s
    assert ctrl.delivery_rate_bps == pytest.approx(2e6)
    ctrl.on_frame_sent(2, 50_000, 0.1)  # never held back: app-limited
    ctrl.on_frame_acked(2, 0.15)  # 1 MB/s: says only "at least this much"
    assert ctrl.delivery_rate_bps == pytest.approx(2e6)
    ctrl.on_frame_sent(3, 150_000, 0.2)
    ctrl.on_frame_acked(3, 0.25)  # 3 MB/s
    assert ctrl.delivery_rate_bps == pytest.approx(3e6)


def test_app_limited_kernel_rates_are_bursts_and_are_ignored() -> None:
    ctrl = DeliveryController()
    ctrl.on_transport_sample(0.0, rtt_s=0.01, min_rtt_s=0.01, delivery_rate_bps=6e5)
    # A small frame through a token bucket's burst: line rate, for a moment.
    ctrl.on_transport_sample(0.1, rtt_s=0.01, delivery_rate_bps=5e8, rate_app_limited=True)
    assert ctrl.delivery_rate_bps == pytest.approx(6e5)


@pytest.mark.parametrize(
    "config",
    [
        {"target_fps": 0},
        {"bdp_gain": -1},
        {"queue_frames": -0.5},
        {"initial_window_frames": 0},
        {"max_fps": 0},
    ],
)
def test_bad_configuration_raises_config_error(config: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        ControllerConfig(**config)  # type: ignore[arg-type]


# -- whole runs on the simulated link ------------------------------------------


def test_thin_link_5_mbit_keeps_age_bounded_and_rate_up_by_stepping_down() -> None:
    result = run([Phase(0, 5 * MBIT)], duration_s=60)
    assert result.fps(3, 60) >= 24
    assert result.age_ms(3, 60, 50) <= 100
    assert result.age_ms(3, 60, 99) <= 150
    # No creeping queue: the age late in the run is what it was early on.
    assert result.age_ms(55, 60, 50) <= result.age_ms(3, 8, 50) + 20
    assert result.share_at_tier(3, 60, 0) == 0  # full size does not fit; smaller tiers do


def test_two_mbit_still_moves_and_its_standing_queue_does_not_creep() -> None:
    # Even the smallest tier is a little too big for 2 Mbit/s at 30 fps, so a
    # queue stands for good. A minimum RTT that expired with time would learn
    # that queue as the path's and let the window and the age creep up.
    result = run([Phase(0, 2 * MBIT)], duration_s=120)
    assert result.fps(3, 120) >= 15
    assert result.age_ms(3, 120, 99) <= 250
    assert result.age_ms(110, 120, 50) <= result.age_ms(5, 15, 50) + 20


@pytest.mark.parametrize("rtt_ms", [100, 200])
def test_long_fat_link_runs_full_rate_at_full_size(rtt_ms: int) -> None:
    result = run([Phase(0, 100 * MBIT, one_way_s=rtt_ms / 2000)], duration_s=20)
    assert result.fps(3, 20) >= 29.5
    assert result.share_at_tier(3, 20, 0) >= 0.99
    # RTT/2 + serialisation: nothing waits in a queue.
    serialisation_ms = 1000 * frame_bytes(0, 0) / (100 * MBIT) * 1.2
    assert result.age_ms(3, 20, 50) <= rtt_ms / 2 + serialisation_ms + 5


def test_long_thin_link_is_bounded_too() -> None:
    result = run([Phase(0, 5 * MBIT, one_way_s=0.05)], duration_s=30)
    assert result.fps(5, 30) >= 24
    assert result.age_ms(5, 30, 99) <= 150


def test_a_round_trip_that_grows_mid_stream_is_learned_and_full_size_comes_back() -> None:
    phases = [Phase(0, 100 * MBIT, one_way_s=0.001), Phase(10, 100 * MBIT, one_way_s=0.1)]
    result = run(phases, duration_s=40)
    # A lone frame coming back 200 ms late looks like a bandwidth drop at first,
    # so it steps down; three in a row say the path got longer.
    assert result.fps(11, 40) >= 28
    assert result.share_at_tier(25, 40, 0) >= 0.99
    assert result.age_ms(25, 40, 99) <= 100 + 1000 * frame_bytes(0, 0) / (100 * MBIT) * 1.2 + 5


def test_a_small_bottleneck_buffer_does_not_make_it_worse() -> None:
    result = run([Phase(0, 5 * MBIT, buffer_bytes=30_000)], duration_s=30)
    assert result.fps(3, 30) >= 24
    assert result.age_ms(3, 30, 99) <= 150


def test_a_bandwidth_drop_is_absorbed_within_a_second() -> None:
    phases = [Phase(0, 50 * MBIT), Phase(10, 5 * MBIT)]
    result = run(phases, duration_s=20)
    assert result.share_at_tier(5, 10, 0) == 1
    first_down = result.changes(10, 20)[0][0]
    assert first_down - 10 <= 0.5
    # The frame already in flight at 50 Mbit/s drains; an overdue ack holds the
    # next ones back instead of queueing them behind it, so the age is bounded
    # again within half a second.
    assert result.age_ms(10.5, 20, 100) <= 150
    assert result.fps(10.5, 20) >= 24


class TwoFrameWindow(DeliveryController):
    """Today's native protocol: two frames in flight, whatever the link."""

    def may_send(self, next_size_bytes: int, now_s: float) -> bool:
        return self.frames_in_flight < 2


class NeverLinkLimited(DeliveryController):
    """A controller that never tells the ladder the link is the limit."""

    @property
    def link_limited(self) -> bool:
        return False


def test_the_simulation_catches_a_fixed_two_frame_window() -> None:
    """The runs above have teeth: today's fixed window fails the issue's links."""
    long = run([Phase(0, 100 * MBIT, one_way_s=0.05)], duration_s=20, controller=TwoFrameWindow())
    assert long.fps(3, 20) < 24  # 2 frames per round trip
    # Today, unadapted: two full frames queue on a thin link.
    today = TierChooser(default_ladder(), source_fps=30, overrides=Overrides(adaptive=False))
    thin = run([Phase(0, 5 * MBIT)], duration_s=30, controller=TwoFrameWindow(), chooser=today)
    assert thin.age_ms(3, 30, 50) > 300
    assert thin.fps(3, 30) < 6


def test_the_simulation_catches_a_controller_that_hides_the_bottleneck() -> None:
    thin = run([Phase(0, 5 * MBIT)], duration_s=30, controller=NeverLinkLimited())
    assert thin.fps(3, 30) < 24  # stays at full size
