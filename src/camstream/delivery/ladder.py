"""Per-viewer tier choice: the largest tier the viewer's link carries at the target rate.

Pure and clock-injected, like the controller that feeds it. The inputs are the
controller's delivery-rate estimate and its ``link_limited`` flag, plus the
actual encoded bytes of each tier (an EWMA the caller feeds with
:meth:`TierChooser.observe_size`; tiers not seen yet are estimated from the
newest observed tier through the ladder's size/quality prior).

``need(tier) = expected bytes per frame * target fps`` (target fps: the
source's, or less if the viewer asked for less).

* **Down, at once**: when the link is the limit (the newest sample queued at
  the bottleneck, so the rate estimate is the link's) and ``rate < need``,
  jump straight to the best tier whose need fits in ``fit_margin * rate``
  (the smallest if none does). Waiting would only age the frames.
* **Up, carefully, one tier at a time**, after a condition has held
  continuously for a hold time:

  - *seen room*: the next tier's need fits in ``up_margin * rate`` (the rate
    is visible when frames leave into an idle path, e.g. short links); hold
    ``hold_s``;
  - *probe*: the current tier is carried at full rate and the link has not
    queued for the hold time, but the rate shows no room: either it shows only
    what we send (a long link), or it is the link's and the next tier's need
    is within 10 % of it; hold ``2 * hold_s``. A rate well above what we send
    that the next tier clearly exceeds rules the probe out.

  Every step up is on probation for ``max(probation_s, 4 * RTT)``. A step
  down during probation doubles that boundary's hold (up to ``max_hold_s``),
  a probation passed resets it. This is the hysteresis that keeps tiers from
  flapping: a rung that did not fit is tried again ever more rarely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from .tiers import (
    DEFAULT_LADDER_SPEC,
    Tier,
    default_ladder,
    parse_ladder,
    relative_bytes,
)

#: A rate up to this multiple of what we send may be only what we send.
_SHOWS_ONLY_OURS = 1.25
#: A seen rate this close to the next tier's need does not rule a probe out.
_NOT_HOPELESS = 1.1

__all__ = [
    "DEFAULT_LADDER_SPEC",
    "Overrides",
    "Tier",
    "TierChooser",
    "default_ladder",
    "parse_ladder",
]


@dataclass(frozen=True, kw_only=True)
class Overrides:
    """What a viewer asked for (``?width=&quality=&fps=&adaptive=0``, or client options).

    ``width`` and/or ``quality`` pin the viewer to one tier (the other one from
    the ladder's top tier); ``adaptive=False`` pins it to the top tier; ``fps``
    lowers the target rate and the viewer stays adaptive.
    """

    width: int | None = None
    quality: int | None = None
    fps: float | None = None
    adaptive: bool = True

    def __post_init__(self) -> None:
        if self.width is not None and not 16 <= self.width <= 16384:
            raise ConfigError(f"width must be 16..16384, got {self.width!r}")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise ConfigError(f"quality must be 1..100, got {self.quality!r}")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"fps must be positive, got {self.fps!r}")

    def tiers(self, ladder: Sequence[Tier]) -> tuple[Tier, ...]:
        """The tiers this viewer may use."""
        top = ladder[0]
        if self.width is not None or self.quality is not None:
            quality = top.quality if self.quality is None else self.quality
            width = top.width if self.width is None else self.width
            scale = top.scale if width is None else 1.0
            name = f"{width or 'full'}@{quality}"
            return (Tier(name=name, quality=quality, scale=scale, width=width),)
        if not self.adaptive:
            return (top,)
        return tuple(ladder)


class TierChooser:
    """Chooses one viewer's tier; call :meth:`update` before each frame is sent."""

    def __init__(
        self,
        ladder: Sequence[Tier],
        *,
        source_fps: float,
        overrides: Overrides | None = None,
        initial_index: int = 0,
        fit_margin: float = 0.85,
        up_margin: float = 0.75,
        hold_s: float = 1.0,
        max_hold_s: float = 30.0,
        probation_s: float = 1.0,
        ewma_alpha: float = 0.25,
    ) -> None:
        if not ladder:
            raise ConfigError("the ladder needs at least one tier")
        if not source_fps > 0:
            raise ConfigError(f"source fps must be positive, got {source_fps!r}")
        self.overrides = overrides or Overrides()
        self.tiers = self.overrides.tiers(ladder)
        self.index = min(max(0, initial_index), len(self.tiers) - 1)
        self._source_fps = source_fps
        self.fit_margin = fit_margin
        self.up_margin = up_margin
        self.hold_s = hold_s
        self.max_hold_s = max_hold_s
        self.probation_s = probation_s
        self._alpha = ewma_alpha
        self._ewma: list[float | None] = [None] * len(self.tiers)
        self._last_observed: int | None = None
        self._source_size = (1280, 720)
        self._holds = [hold_s] * len(self.tiers)  # per boundary: index of the tier above
        self._up_since: float | None = None
        self._probation: tuple[int, float] | None = None  # (tier index, until)
        self.steps_down = 0
        self.steps_up = 0
        self.failed_probes = 0

    @property
    def tier(self) -> Tier:
        return self.tiers[self.index]

    @property
    def adaptive(self) -> bool:
        return len(self.tiers) > 1

    @property
    def target_fps(self) -> float:
        wanted = self.overrides.fps
        return self._source_fps if wanted is None else min(wanted, self._source_fps)

    def stats(self) -> dict[str, str | int | float | bool]:
        """What ``/status`` and the overlays show about this viewer's tier."""
        width, height = self.tier.size_for(*self._source_size)
        return {
            "tier": self.tier.name,
            "tier_index": self.index,
            "tier_width": width,
            "tier_height": height,
            "tier_quality": self.tier.quality,
            "adaptive": self.adaptive,
            "target_fps": self.target_fps,
            "steps_down": self.steps_down,
            "steps_up": self.steps_up,
            "failed_probes": self.failed_probes,
        }

    def set_source_fps(self, fps: float) -> None:
        if fps > 0:
            self._source_fps = fps

    def observe_size(
        self, tier: Tier, size_bytes: int, *, source_size: tuple[int, int] | None = None
    ) -> None:
        """Feed the actual encoded size of a frame served at ``tier``."""
        if source_size is not None and min(source_size) > 0:
            self._source_size = source_size
        try:
            index = self.tiers.index(tier)
        except ValueError:
            return
        old = self._ewma[index]
        self._ewma[index] = size_bytes if old is None else old + self._alpha * (size_bytes - old)
        self._last_observed = index

    def expected_bytes(self, index: int) -> float | None:
        """Expected bytes per frame at tier ``index`` (``None`` before any observation)."""
        known = self._ewma[index]
        if known is not None:
            return known
        ref = self._last_observed
        if ref is None:
            return None
        ref_bytes = self._ewma[ref]
        assert ref_bytes is not None
        width, height = self._source_size
        ratio = relative_bytes(self.tiers[index], width, height) / relative_bytes(
            self.tiers[ref], width, height
        )
        return ref_bytes * ratio

    def need_bps(self, index: int) -> float | None:
        expected = self.expected_bytes(index)
        return None if expected is None else expected * self.target_fps

    def update(
        self,
        now_s: float,
        *,
        rate_bps: float,
        link_limited: bool,
        rtt_s: float | None = None,
    ) -> Tier:
        """Decide the tier for the next frame from the controller's view of the link."""
        need = self.need_bps(self.index)
        if len(self.tiers) == 1 or need is None or rate_bps <= 0:
            return self.tier
        if link_limited and rate_bps < need:
            self._step_down(now_s, rate_bps)
            return self.tier
        if link_limited:
            self._up_since = None
        if self._probation is not None and now_s >= self._probation[1]:
            self._holds[self._probation[0]] = self.hold_s  # the rung fits: forgive it
            self._probation = None
        if self.index > 0 and not link_limited:
            self._consider_up(now_s, rate_bps, need, rtt_s)
        return self.tier

    def _step_down(self, now_s: float, rate_bps: float) -> None:
        target = len(self.tiers) - 1
        for index in range(self.index + 1, len(self.tiers)):
            need = self.need_bps(index)
            if need is not None and need <= self.fit_margin * rate_bps:
                target = index
                break
        if target == self.index:
            return
        if self._probation is not None and self._probation[1] > now_s:
            failed = self._probation[0]
            self._holds[failed] = min(self.max_hold_s, 2 * self._holds[failed])
            self.failed_probes += 1
        self._probation = None
        self._up_since = None
        self.index = target
        self.steps_down += 1

    def _consider_up(self, now_s: float, rate_bps: float, need: float, rtt_s: float | None) -> None:
        upper = self.index - 1
        upper_need = self.need_bps(upper)
        if upper_need is None:
            return
        if upper_need <= 0.5 * rate_bps:
            # Plenty of room seen: past failures count half (a burst-friendly
            # link can show room it cannot sustain, so they still count).
            hold = max(self.hold_s, self._holds[upper] / 2)
        elif upper_need <= self.up_margin * rate_bps:
            hold = self._holds[upper]  # room seen
        elif rate_bps >= 0.9 * need and (
            rate_bps <= _SHOWS_ONLY_OURS * need or upper_need <= _NOT_HOPELESS * rate_bps
        ):
            # Carried fine, but no room seen. Samples of frames sent into an
            # idle path lie between what we send and what the link can do; on
            # a long link they show only what we send. So probe, ever more
            # rarely if it keeps failing, unless a rate well above our own
            # sending (the link's, then) says the next tier cannot fit.
            hold = 2 * self._holds[upper]
        else:
            self._up_since = None
            return
        if self._up_since is None:
            self._up_since = now_s
            return
        if now_s - self._up_since < hold:
            return
        self.index = upper
        self.steps_up += 1
        self._up_since = None
        self._probation = (upper, now_s + max(self.probation_s, 4 * (rtt_s or 0.0)))
