"""Tiers: the sizes and qualities a frame can be served at, and the ``--ladder`` spec.

A :class:`Tier` is codec-agnostic: a size (a fraction of the source, or a
target width that keeps the source's aspect) and a quality 1..100 that the
encoder maps to its own knob (JPEG quality today; a later H.264 tier could map
it to a bitrate). Tiers never scale up.

The default ladder reduces **size before quality**, because on camera-like
content that is where the bytes are: 720p q80 → 640x360 q70 is about 3.5x
fewer bytes, → 320x180 q60 about 12x, for about a millisecond of resizing
(``cv2.INTER_AREA``) and encoding. Quality alone buys far less per step.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from fractions import Fraction

from ..errors import ConfigError

__all__ = ["DEFAULT_LADDER_SPEC", "Tier", "default_ladder", "parse_ladder", "relative_bytes"]

#: ``full`` means the source's size at the server's configured quality.
DEFAULT_LADDER_SPEC = "full,1/2@70,3/8@60,1/4@60,1/4@40"

_MIN_WIDTH = 16
_MAX_WIDTH = 16384
# JPEG bytes relative to q60 on camera-like content (measured with libjpeg-turbo
# on a textured, noisy 720p scene); only a prior until real sizes are observed.
_QUALITY_BYTES = ((1, 0.2), (20, 0.45), (30, 0.59), (45, 0.8), (60, 1.0), (70, 1.17), (80, 1.45),
                  (90, 2.1), (100, 4.0))  # fmt: skip
# Bytes grow slower than area: a smaller picture has more detail per pixel.
_AREA_EXPONENT = 0.77


@dataclass(frozen=True, slots=True)
class Tier:
    """One rung of the ladder. ``width`` (keeping the aspect) wins over ``scale``."""

    name: str
    quality: int
    scale: float = 1.0
    width: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.quality, bool) or not 1 <= self.quality <= 100:
            raise ConfigError(f"tier {self.name!r}: quality must be 1..100, got {self.quality!r}")
        if not 0 < self.scale <= 1:
            raise ConfigError(f"tier {self.name!r}: scale must be in (0, 1], got {self.scale!r}")
        if self.width is not None and not _MIN_WIDTH <= self.width <= _MAX_WIDTH:
            raise ConfigError(
                f"tier {self.name!r}: width must be {_MIN_WIDTH}..{_MAX_WIDTH}, got {self.width!r}"
            )

    def size_for(self, source_width: int, source_height: int) -> tuple[int, int]:
        """This tier's picture size for a source of the given size (never larger)."""
        factor = self.scale if self.width is None else min(1.0, self.width / source_width)
        if factor >= 1.0:
            return source_width, source_height
        # Even sizes: 4:2:0 chroma (and any later video codec) wants them.
        width = max(2, 2 * round(source_width * factor / 2))
        height = max(2, 2 * round(source_height * factor / 2))
        return min(width, source_width), min(height, source_height)

    def is_source(self, source_width: int, source_height: int, source_quality: int) -> bool:
        """True if the source frame itself serves this tier (no re-encode)."""
        same_size = self.size_for(source_width, source_height) == (source_width, source_height)
        return same_size and self.quality >= source_quality


def _quality_bytes(quality: int) -> float:
    for (q0, b0), (q1, b1) in itertools.pairwise(_QUALITY_BYTES):
        if q0 <= quality <= q1:
            return b0 + (b1 - b0) * (quality - q0) / (q1 - q0)
    return _QUALITY_BYTES[-1][1]


def relative_bytes(tier: Tier, source_width: int, source_height: int) -> float:
    """A prior for a tier's bytes, relative units (compare tiers of one source only)."""
    width, height = tier.size_for(source_width, source_height)
    area = (width * height) / (source_width * source_height)
    return math.pow(area, _AREA_EXPONENT) * _quality_bytes(tier.quality)


def default_ladder(quality: int = 80) -> tuple[Tier, ...]:
    """The default ladder with ``quality`` as the full tier's (no tier above it)."""
    return parse_ladder(DEFAULT_LADDER_SPEC, quality=quality)


_SCALE = re.compile(r"^(?:(\d+)/(\d+)|(\d*\.\d+|\d+)(%?))$")
_SIZE = re.compile(r"^(\d+)(?:x(\d+))?$")


def _parse_size(text: str, entry: str) -> tuple[float, int | None]:
    """``full``, ``1/2``, ``0.5``, ``50%`` → (scale, None); ``640`` or ``640x360`` → (1, 640)."""
    if text == "full":
        return 1.0, None
    if "x" in text or (text.isdigit() and int(text) > 1):
        match = _SIZE.match(text)
        if match is None:
            raise ConfigError(f"ladder tier {entry!r}: bad size {text!r}; use WIDTH or WxH")
        width = int(match.group(1))
        if not _MIN_WIDTH <= width <= _MAX_WIDTH:
            raise ConfigError(
                f"ladder tier {entry!r}: width must be {_MIN_WIDTH}..{_MAX_WIDTH}, got {width}"
            )
        if match.group(2) is not None and int(match.group(2)) == 0:
            raise ConfigError(f"ladder tier {entry!r}: height must be positive")
        return 1.0, width
    match = _SCALE.match(text)
    if match is None:
        raise ConfigError(
            f"ladder tier {entry!r}: bad size {text!r}; "
            "use full, a fraction (1/2), a scale (0.5 or 50%), WIDTH or WxH"
        )
    if match.group(1) is not None:
        if int(match.group(2)) == 0:
            raise ConfigError(f"ladder tier {entry!r}: division by zero")
        scale = float(Fraction(int(match.group(1)), int(match.group(2))))
    else:
        scale = float(match.group(3)) / (100.0 if match.group(4) else 1.0)
    if not 0 < scale <= 1:
        raise ConfigError(f"ladder tier {entry!r}: scale must be in (0, 1], got {scale:g}")
    return scale, None


def parse_ladder(spec: str, *, quality: int = 80) -> tuple[Tier, ...]:
    """Parse ``--ladder``: comma-separated ``SIZE[@QUALITY]`` tiers, best first.

    SIZE is ``full``, a fraction of the source (``1/2``, ``0.5``, ``50%``), or a
    width (``640``; ``640x360`` is accepted and the height then follows the
    source's aspect). QUALITY defaults to ``quality`` (the server's). Examples:
    ``"full,1/2@70,1/4@60"``, ``"1280x720@80,640x360@60,320x180@50"``.
    """
    entries = [part.strip() for part in spec.split(",")]
    if not spec.strip() or any(not part for part in entries):
        raise ConfigError(
            f"ladder {spec!r}: give comma-separated tiers such as 'full,1/2@70,1/4@60'"
        )
    tiers: list[Tier] = []
    for entry in entries:
        size_text, _, quality_text = entry.lower().partition("@")
        if quality_text:
            if not quality_text.isdigit() or not 1 <= int(quality_text) <= 100:
                raise ConfigError(f"ladder tier {entry!r}: quality must be 1..100")
            tier_quality = int(quality_text)
        else:
            tier_quality = quality
        scale, width = _parse_size(size_text.strip(), entry)
        tier = Tier(name=entry, quality=tier_quality, scale=scale, width=width)
        if any((t.scale, t.width, t.quality) == (scale, width, tier_quality) for t in tiers):
            raise ConfigError(f"ladder {spec!r}: tier {entry!r} appears twice")
        tiers.append(tier)
    _check_order(tiers, spec)
    return tuple(tiers)


def _check_order(tiers: list[Tier], spec: str) -> None:
    """Tiers must not grow from one to the next (comparable when of the same kind)."""
    for upper, lower in itertools.pairwise(tiers):
        if (upper.width is None) != (lower.width is None):
            continue  # a width and a scale compare only for a known source size
        upper_size = upper.width if upper.width is not None else upper.scale
        lower_size = lower.width if lower.width is not None else lower.scale
        if (lower_size, lower.quality) > (upper_size, upper.quality):
            raise ConfigError(
                f"ladder {spec!r}: list tiers best first; {lower.name!r} is larger than "
                f"{upper.name!r} before it"
            )
