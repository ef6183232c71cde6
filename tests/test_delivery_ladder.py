"""Tiers, the --ladder spec, overrides, and the TierChooser (alone and on the simulated link)."""

from __future__ import annotations

import itertools

import pytest

from camstream.delivery import (
    DEFAULT_LADDER_SPEC,
    Overrides,
    Tier,
    TierChooser,
    default_ladder,
    parse_ladder,
)
from camstream.errors import ConfigError
from linksim import MBIT, Phase, run

# -- tiers and the spec ----------------------------------------------------------


def test_tier_sizes_keep_the_aspect_are_even_and_never_scale_up() -> None:
    assert Tier(name="half", quality=70, scale=0.5).size_for(1280, 720) == (640, 360)
    assert Tier(name="q", quality=60, scale=0.25).size_for(1280, 720) == (320, 180)
    assert Tier(name="3/8", quality=60, scale=0.375).size_for(1280, 720) == (480, 270 + 0)
    assert Tier(name="w", quality=60, width=640).size_for(1920, 1080) == (640, 360)
    assert Tier(name="w", quality=60, width=4000).size_for(1280, 720) == (1280, 720)
    width, height = Tier(name="odd", quality=60, scale=0.3).size_for(1281, 721)
    assert width % 2 == 0 and height % 2 == 0


def test_the_source_frame_serves_a_full_tier_at_or_above_its_quality() -> None:
    full = Tier(name="full", quality=80)
    assert full.is_source(1280, 720, 80)
    assert not Tier(name="full@60", quality=60).is_source(1280, 720, 80)
    assert not Tier(name="half", quality=80, scale=0.5).is_source(1280, 720, 80)


def test_the_default_ladder_reduces_size_before_quality() -> None:
    ladder = default_ladder(quality=80)
    assert [t.name for t in ladder] == DEFAULT_LADDER_SPEC.split(",")
    assert ladder[0].quality == 80 and ladder[0].scale == 1.0
    sizes = [t.size_for(1280, 720) for t in ladder]
    assert sizes == [(1280, 720), (640, 360), (480, 270), (320, 180), (320, 180)]
    assert [t.quality for t in ladder] == [80, 70, 60, 60, 40]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1280x720@80,640x360@60,320x180@50", [(1.0, 1280, 80), (1.0, 640, 60), (1.0, 320, 50)]),
        ("full,1/2@70,0.25@60", [(1.0, None, 75), (0.5, None, 70), (0.25, None, 60)]),
        ("100%, 50%@50", [(1.0, None, 75), (0.5, None, 50)]),
        ("FULL@90", [(1.0, None, 90)]),
        ("960", [(1.0, 960, 75)]),
    ],
)
def test_ladder_specs_parse(spec: str, expected: list[tuple[float, int | None, int]]) -> None:
    tiers = parse_ladder(spec, quality=75)
    assert [(t.scale, t.width, t.quality) for t in tiers] == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "comma-separated"),
        ("full,,1/2", "comma-separated"),
        ("full@0", "quality must be 1..100"),
        ("full@abc", "quality must be 1..100"),
        ("1/0", "division by zero"),
        ("3/2", "scale must be in (0, 1]"),
        ("big@50", "bad size"),
        ("8x8", "width must be"),
        ("640x0", "height must be positive"),
        ("1/2@60,full@80", "best first"),
        ("640@60,1280@60", "best first"),
        ("1/2@60,1/2@60", "appears twice"),
    ],
)
def test_bad_ladder_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
        parse_ladder(spec)


# -- overrides -------------------------------------------------------------------


def test_overrides_pin_a_tier_or_turn_adaptation_off() -> None:
    ladder = default_ladder(80)
    assert Overrides().tiers(ladder) == ladder
    assert Overrides(adaptive=False).tiers(ladder) == (ladder[0],)
    (pinned,) = Overrides(width=640).tiers(ladder)
    assert pinned.size_for(1280, 720) == (640, 360) and pinned.quality == 80
    (pinned,) = Overrides(quality=50).tiers(ladder)
    assert pinned.size_for(1280, 720) == (1280, 720) and pinned.quality == 50
    chooser = TierChooser(ladder, source_fps=30, overrides=Overrides(fps=10))
    assert chooser.adaptive and chooser.target_fps == 10
    assert TierChooser(ladder, source_fps=5, overrides=Overrides(fps=10)).target_fps == 5


@pytest.mark.parametrize("bad", [{"width": 8}, {"quality": 0}, {"fps": 0}])
def test_bad_overrides_raise(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Overrides(**bad)  # type: ignore[arg-type]


def test_stats_name_the_tier_and_its_size() -> None:
    chooser = _chooser()
    chooser.observe_size(chooser.tier, 150_000, source_size=(1920, 1080))
    chooser.update(0.0, rate_bps=625_000, link_limited=True)
    stats = chooser.stats()
    assert stats["tier"] == chooser.tier.name and stats["tier_index"] == chooser.index
    assert (stats["tier_width"], stats["tier_height"]) == chooser.tier.size_for(1920, 1080)
    assert stats["steps_down"] == 1 and stats["adaptive"] is True


def test_a_pinned_viewer_never_moves() -> None:
    chooser = TierChooser(default_ladder(), source_fps=30, overrides=Overrides(adaptive=False))
    chooser.observe_size(chooser.tier, 150_000)
    assert chooser.update(1.0, rate_bps=10_000, link_limited=True) == default_ladder()[0]


# -- the chooser, step by step ---------------------------------------------------


def _chooser(**kwargs: float) -> TierChooser:
    chooser = TierChooser(default_ladder(), source_fps=30, **kwargs)  # type: ignore[arg-type]
    chooser.observe_size(chooser.tier, 150_000)
    return chooser


def test_unobserved_tiers_are_estimated_from_the_observed_one() -> None:
    chooser = _chooser()
    assert chooser.expected_bytes(0) == 150_000
    expected = [chooser.expected_bytes(i) for i in range(5)]
    assert all(a is not None and b is not None and a > b for a, b in itertools.pairwise(expected))
    half = expected[1]
    assert half is not None and 30_000 < half < 60_000  # measured: about 42 KB
    chooser.observe_size(chooser.tiers[1], 50_000)
    assert chooser.expected_bytes(1) == 50_000


def test_it_steps_down_at_once_and_straight_to_a_tier_that_fits() -> None:
    chooser = _chooser()
    # 5 Mbit/s is 625 KB/s: 0.85 * 625 KB / 30 fps = 17.7 KB per frame.
    tier = chooser.update(0.0, rate_bps=625_000, link_limited=True)
    expected = chooser.expected_bytes(chooser.index)
    assert expected is not None and expected * 30 <= 0.85 * 625_000
    above = chooser.expected_bytes(chooser.index - 1)
    assert above is not None and above * 30 > 0.85 * 625_000
    assert tier == chooser.tiers[chooser.index] and chooser.steps_down == 1


def test_a_tier_just_too_big_for_the_link_is_left_too() -> None:
    chooser = _chooser()
    need = chooser.need_bps(0)
    assert need is not None
    chooser.update(0.0, rate_bps=need / 1.1, link_limited=True)
    assert chooser.index == 1


def test_it_does_not_step_down_while_the_link_is_not_the_limit() -> None:
    chooser = _chooser()
    # A long link opening its window: the rate is low, but nothing queued yet.
    assert chooser.update(0.0, rate_bps=1_000_000, link_limited=False) == chooser.tiers[0]


def test_it_steps_up_one_tier_after_the_hold_when_room_is_seen() -> None:
    chooser = _chooser()
    chooser.update(0.0, rate_bps=625_000, link_limited=True)
    start = chooser.index
    need_above = chooser.need_bps(start - 1)
    assert need_above is not None
    rate = need_above / 0.7  # room for the tier above, with margin
    chooser.update(1.0, rate_bps=rate, link_limited=False)
    assert chooser.index == start
    chooser.update(1.9, rate_bps=rate, link_limited=False)
    assert chooser.index == start
    chooser.update(2.05, rate_bps=rate, link_limited=False)
    assert chooser.index == start - 1  # one tier, not straight to the top


def test_failed_probes_back_off_exponentially_up_to_a_cap() -> None:
    chooser = _chooser(hold_s=1.0, probation_s=1.0, max_hold_s=8.0)
    chooser.update(0.0, rate_bps=625_000, link_limited=True)
    bottom = chooser.index
    need = chooser.need_bps(bottom)
    assert need is not None
    rate = need / 0.8  # carries this tier; says nothing about the next
    probes: list[float] = []
    t = 0.0
    while t < 90:
        t = round(t + 0.05, 2)
        if chooser.index < bottom:
            # The link cannot carry the tier above: it queues at once.
            chooser.update(t, rate_bps=rate, link_limited=True)
            assert chooser.index == bottom
            continue
        chooser.update(t, rate_bps=rate, link_limited=False)
        if chooser.index < bottom:
            probes.append(t)
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(probes)]
    # Blind probes wait twice the boundary's hold: 2, 4, 8, 16, then the cap of 16 s.
    assert probes[0] == pytest.approx(2.05, abs=0.06)
    assert gaps[:3] == pytest.approx([4.1, 8.1, 16.1], abs=0.06)
    assert all(gap == pytest.approx(16.1, abs=0.06) for gap in gaps[3:])
    assert chooser.failed_probes == len(probes)


def test_a_probe_that_holds_through_probation_stays() -> None:
    chooser = _chooser()
    chooser.update(0.0, rate_bps=625_000, link_limited=True)
    bottom = chooser.index
    need = chooser.need_bps(bottom)
    assert need is not None
    t = 0.0
    while chooser.index == bottom:
        t += 0.05
        chooser.update(t, rate_bps=need, link_limited=False)
    for _ in range(100):
        t += 0.05
        chooser.update(t, rate_bps=(chooser.need_bps(chooser.index) or 0), link_limited=False)
    assert chooser.failed_probes == 0
    assert chooser.index < bottom


# -- on the simulated link -------------------------------------------------------


def test_bandwidth_drop_steps_down_fast_and_its_return_steps_back_up_without_flapping() -> None:
    phases = [Phase(0, 50 * MBIT), Phase(10, 5 * MBIT), Phase(20, 50 * MBIT)]
    result = run(phases, duration_s=45)
    assert result.share_at_tier(3, 10, 0) == 1
    # Down within a few hundred ms of the drop, to a tier 5 Mbit/s carries.
    down_at, down_to = result.changes(10, 20)[0]
    assert down_at - 10 <= 0.5
    assert down_to >= 3
    assert result.fps(11, 20) >= 28
    # While thin, probes upward are rare (exponential back-off): no flapping.
    assert len(result.changes(11, 20)) <= 4
    # Back at full size within a few seconds of the return, and it stays there.
    assert result.share_at_tier(26, 45, 0) == 1
    assert result.changes(26, 45) == []


def test_a_slow_viewer_fps_request_lowers_the_need_so_it_keeps_a_bigger_tier() -> None:
    thin = [Phase(0, 5 * MBIT)]
    full_rate = run(thin, duration_s=20)
    ten_fps = TierChooser(default_ladder(), source_fps=30, overrides=Overrides(fps=10))
    slow = run(thin, duration_s=20, chooser=ten_fps)
    tier_full_rate = min(d.tier for d in full_rate.window(10, 20))
    tier_ten_fps = max(d.tier for d in slow.window(10, 20))
    assert tier_ten_fps < tier_full_rate
    assert 9 <= slow.fps(10, 20) <= 10.5
    assert slow.age_ms(10, 20, 99) <= 150
