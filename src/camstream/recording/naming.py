"""Segment file names: the UTC start time, fixed width, so names sort by time.

``20261202T182900.123456789Z.mkv`` starts at 2026-12-02 18:29:00.123456789 UTC.
The name alone gives a segment's start, which lets the index be rebuilt from a
directory listing after a crash.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["SEGMENT_SUFFIX", "parse_segment_name", "parse_time_ns", "segment_name"]

SEGMENT_SUFFIX = ".mkv"
_NAME = re.compile(r"^(\d{8}T\d{6})\.(\d{9})Z\.mkv$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def segment_name(start_ns: int) -> str:
    """The file name of a segment whose first frame was captured at ``start_ns``."""
    seconds, fraction_ns = divmod(start_ns, 1_000_000_000)
    when = _EPOCH + dt.timedelta(seconds=seconds)
    return f"{when:%Y%m%dT%H%M%S}.{fraction_ns:09d}Z{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    """The start time (ns since the epoch) a segment name encodes, else None."""
    match = _NAME.match(name)
    if match is None:
        return None
    try:
        when = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    seconds = (when - _EPOCH) // dt.timedelta(seconds=1)
    return seconds * 1_000_000_000 + int(match.group(2))


def parse_time_ns(when: str | dt.datetime | int) -> int:
    """ns since the epoch from an ISO 8601 string, a datetime, or ns already.

    A time without a zone is taken as UTC: recordings are named in UTC, and a
    replay URL's ``?start=`` must not depend on the server's local zone.
    Raises ValueError for text that is not ISO 8601.
    """
    if isinstance(when, int):
        return when
    if isinstance(when, str):
        text = when.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
