"""Which segment holds a given time: a sorted list of segments, searched by bisection.

The index lives in memory and is saved as ``index.json`` next to the segments
whenever a segment is finished. It is never the only truth: segment names carry
their start times, so :func:`rebuild_index` recovers it from the directory after
a crash (a segment the index does not know, such as the one being written when
the process died, is probed by reading its timestamps).
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

from .naming import SEGMENT_SUFFIX, parse_segment_name

__all__ = ["INDEX_FILE", "SegmentIndex", "SegmentInfo", "rebuild_index"]

INDEX_FILE = "index.json"


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One segment file: first and last frame capture times, bytes on disk, frames."""

    path: str
    start_ns: int
    end_ns: int
    size_bytes: int
    frames: int = 0

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class SegmentIndex:
    """Segments of one camera, ordered by start time. Not thread-safe: one owner."""

    def __init__(self, segments: Iterable[SegmentInfo] = ()) -> None:
        self._segments: list[SegmentInfo] = sorted(segments, key=lambda s: (s.start_ns, s.path))
        self._starts = [s.start_ns for s in self._segments]

    def __len__(self) -> int:
        return len(self._segments)

    def __iter__(self) -> Iterator[SegmentInfo]:
        return iter(list(self._segments))

    @property
    def total_bytes(self) -> int:
        return sum(s.size_bytes for s in self._segments)

    def put(self, info: SegmentInfo) -> None:
        """Add ``info``, or replace the entry with the same path (a growing segment)."""
        self.remove(info.path)
        at = bisect.bisect_right(self._starts, info.start_ns)
        self._segments.insert(at, info)
        self._starts.insert(at, info.start_ns)

    def remove(self, path: str) -> SegmentInfo | None:
        for at, info in enumerate(self._segments):
            if info.path == path:
                del self._segments[at]
                del self._starts[at]
                return info
        return None

    def find(self, t_ns: int) -> SegmentInfo | None:
        """The segment whose span holds ``t_ns``, else None (a gap, or out of range)."""
        at = bisect.bisect_right(self._starts, t_ns) - 1
        if at >= 0 and self._segments[at].end_ns >= t_ns:
            return self._segments[at]
        return None

    def from_time(self, t_ns: int) -> list[SegmentInfo]:
        """Segments to replay from ``t_ns``: the one holding it (or the next), and later ones."""
        at = bisect.bisect_right(self._starts, t_ns) - 1
        if at < 0 or self._segments[at].end_ns < t_ns:
            at += 1
        return self._segments[at:]

    def save(self, directory: str) -> None:
        """Write ``index.json`` atomically (temp file + rename), names relative to ``directory``."""
        entries = [dict(s.to_json(), path=os.path.basename(s.path)) for s in self._segments]
        target = os.path.join(directory, INDEX_FILE)
        temp = target + ".tmp"
        with open(temp, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "segments": entries}, f)
        os.replace(temp, target)


def rebuild_index(directory: str, probe: Callable[[str], SegmentInfo | None]) -> SegmentIndex:
    """The index of ``directory``: ``index.json`` checked against the files present.

    Entries whose file is gone are dropped; files the saved index does not know,
    or whose size changed (a crash while writing), are measured with ``probe``
    (``None``: unreadable, left out). Files whose names are not segment names
    are ignored.
    """
    saved: dict[str, SegmentInfo] = {}
    try:
        with open(os.path.join(directory, INDEX_FILE), encoding="utf-8") as f:
            document = json.load(f)
        for entry in document.get("segments", []):
            info = SegmentInfo(**dict(entry, path=os.path.join(directory, entry["path"])))
            saved[info.name] = info
    except (OSError, ValueError, TypeError, KeyError):
        saved = {}  # missing or damaged: every file is probed instead
    segments: list[SegmentInfo] = []
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        names = []
    for name in names:
        if not name.endswith(SEGMENT_SUFFIX) or parse_segment_name(name) is None:
            continue
        path = os.path.join(directory, name)
        try:
            size = os.path.getsize(path)
        except OSError:
            continue
        known = saved.get(name)
        if known is not None and known.size_bytes == size:
            segments.append(known)
            continue
        probed = probe(path)
        if probed is not None:
            segments.append(probed)
    return SegmentIndex(segments)
