"""Which segments to delete: a pure policy of maximum age and maximum total bytes.

No clock and no file system here: the caller passes the time and the segments
(oldest first or not; they are sorted by start time) and deletes what comes back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ConfigError
from .index import SegmentInfo

__all__ = ["RetentionPolicy", "select_for_deletion"]


@dataclass(frozen=True, kw_only=True)
class RetentionPolicy:
    """``max_age_s``: a segment whose last frame is older goes. ``max_total_bytes``:
    the oldest segments go until the camera's recordings fit. ``None``: no limit.
    """

    max_age_s: float | None = None
    max_total_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.max_age_s is not None and self.max_age_s <= 0:
            raise ConfigError(f"record max age must be positive seconds, got {self.max_age_s!r}")
        if self.max_total_bytes is not None and self.max_total_bytes <= 0:
            raise ConfigError(
                f"record max bytes must be a positive number of bytes, got {self.max_total_bytes!r}"
            )


def select_for_deletion(
    segments: Iterable[SegmentInfo],
    policy: RetentionPolicy,
    *,
    now_ns: int,
    keep_path: str | None = None,
) -> list[SegmentInfo]:
    """The segments to delete, oldest first.

    ``keep_path`` (the segment being written) is never chosen, even when it
    alone exceeds the size limit: deleting it would lose what is being recorded.
    """
    ordered = sorted(segments, key=lambda s: (s.start_ns, s.path))
    doomed: list[SegmentInfo] = []
    kept: list[SegmentInfo] = []
    horizon_ns = None if policy.max_age_s is None else now_ns - int(policy.max_age_s * 1e9)
    for segment in ordered:
        if segment.path != keep_path and horizon_ns is not None and segment.end_ns < horizon_ns:
            doomed.append(segment)
        else:
            kept.append(segment)
    if policy.max_total_bytes is not None:
        total = sum(s.size_bytes for s in kept)
        for segment in list(kept):
            if total <= policy.max_total_bytes:
                break
            if segment.path == keep_path:
                continue
            doomed.append(segment)
            kept.remove(segment)
            total -= segment.size_bytes
    return sorted(doomed, key=lambda s: (s.start_ns, s.path))
