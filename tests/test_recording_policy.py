"""The pure parts of recording: retention, pre-record ring, index, segment names."""

from __future__ import annotations

import json
import os

import pytest

from camstream.errors import ConfigError
from camstream.recording import (
    PreRecordBuffer,
    RetentionPolicy,
    SegmentIndex,
    SegmentInfo,
    parse_time_ns,
    rebuild_index,
    segment_name,
    select_for_deletion,
)
from camstream.recording.naming import parse_segment_name
from recording_support import T0_NS, frame_at

S = 1_000_000_000


def seg(i: int, *, size: int = 100, length_s: int = 60) -> SegmentInfo:
    start = T0_NS + i * length_s * S
    return SegmentInfo(f"/r/{i}.mkv", start, start + (length_s - 1) * S, size, 10)


# -- retention ------------------------------------------------------------------


def test_retention_by_age_deletes_only_segments_that_ended_before_the_horizon() -> None:
    segments = [seg(i) for i in range(5)]  # end at 59, 119, 179, 239, 299 s
    now = T0_NS + 300 * S
    doomed = select_for_deletion(segments, RetentionPolicy(max_age_s=130), now_ns=now)
    assert [s.path for s in doomed] == ["/r/0.mkv", "/r/1.mkv"]  # ended at 59 s and 119 s


def test_retention_by_size_deletes_the_oldest_first_until_it_fits() -> None:
    segments = [seg(i, size=100) for i in (3, 0, 2, 1)]  # unsorted on purpose
    doomed = select_for_deletion(segments, RetentionPolicy(max_total_bytes=250), now_ns=T0_NS)
    assert [s.path for s in doomed] == ["/r/0.mkv", "/r/1.mkv"]


def test_retention_never_deletes_the_segment_being_written() -> None:
    segments = [seg(0, size=100), seg(1, size=1000)]
    doomed = select_for_deletion(
        segments, RetentionPolicy(max_total_bytes=500), now_ns=T0_NS, keep_path="/r/1.mkv"
    )
    assert [s.path for s in doomed] == ["/r/0.mkv"]
    aged = select_for_deletion(
        segments, RetentionPolicy(max_age_s=1), now_ns=T0_NS + 10**6 * S, keep_path="/r/1.mkv"
    )
    assert [s.path for s in aged] == ["/r/0.mkv"]


def test_retention_without_limits_keeps_everything_and_bad_limits_raise() -> None:
    assert select_for_deletion([seg(0)], RetentionPolicy(), now_ns=T0_NS + 10**9 * S) == []
    with pytest.raises(ConfigError):
        RetentionPolicy(max_age_s=0)
    with pytest.raises(ConfigError):
        RetentionPolicy(max_total_bytes=-1)


# -- pre-record ring ----------------------------------------------------------------


def test_prerecord_keeps_the_last_seconds_by_capture_time() -> None:
    ring = PreRecordBuffer(duration_s=2.0, max_bytes=10**9)
    for i in range(50):  # 10 fps for 5 s
        ring.push(frame_at(i, T0_NS + i * S // 10, data=b"x" * 10))
    kept = ring.drain()
    assert [f.seq for f in kept] == list(range(29, 50))  # 4.9 s - 2 s = 2.9 s onwards
    assert len(ring) == 0 and ring.bytes == 0


def test_prerecord_is_bounded_by_bytes_too() -> None:
    ring = PreRecordBuffer(duration_s=60.0, max_bytes=1000)
    for i in range(100):
        ring.push(frame_at(i, T0_NS + i * S // 10, data=b"x" * 300))
        assert ring.bytes <= 1000
    assert [f.seq for f in ring.drain()] == [97, 98, 99]
    ring.push(frame_at(0, T0_NS, data=b"x" * 1001))  # alone bigger than the bound
    assert len(ring) == 0


def test_prerecord_off_keeps_nothing() -> None:
    ring = PreRecordBuffer(duration_s=0, max_bytes=1000)
    ring.push(frame_at(0, T0_NS, data=b"x"))
    assert ring.drain() == []


# -- index and names ---------------------------------------------------------------


def test_index_finds_the_segment_holding_a_time() -> None:
    index = SegmentIndex(seg(i) for i in (2, 0, 1))
    assert index.find(T0_NS + 61 * S) == seg(1)
    assert index.find(T0_NS) == seg(0)
    assert index.find(T0_NS + 59 * S + 1) is None  # the gap between 0 and 1
    assert index.find(T0_NS - 1) is None
    assert index.find(T0_NS + 10_000 * S) is None
    assert index.from_time(T0_NS + 59 * S + 1) == [seg(1), seg(2)]
    assert index.from_time(T0_NS + 30 * S) == [seg(0), seg(1), seg(2)]
    index.put(SegmentInfo("/r/1.mkv", seg(1).start_ns, seg(1).end_ns + S, 5, 1))  # grew
    assert len(index) == 3 and index.total_bytes == 205


def test_index_is_fast_with_many_segments() -> None:
    index = SegmentIndex(seg(i, length_s=10) for i in range(20_000))
    import time

    started = time.perf_counter()
    for i in range(0, 20_000, 20):
        assert index.find(T0_NS + i * 10 * S + 5 * S) == seg(i, length_s=10)
    assert time.perf_counter() - started < 0.2  # 1000 lookups in 20 000 segments


def test_segment_names_sort_by_time_and_parse_back() -> None:
    starts = [T0_NS, T0_NS + 1, T0_NS + 9 * S, T0_NS + 10 * S, T0_NS + 86_400 * S]
    names = [segment_name(t) for t in starts]
    assert names == sorted(names)
    assert [parse_segment_name(n) for n in names] == starts
    assert names[0] == "20261202T180000.000123456Z.mkv"
    assert parse_segment_name("notes.mkv") is None


def test_iso_times_parse_to_ns() -> None:
    assert parse_time_ns("2026-12-02T18:00:00Z") == T0_NS - 123_456
    assert parse_time_ns("2026-12-02T19:00:00.5+01:00") == T0_NS - 123_456 + S // 2
    assert parse_time_ns("2026-12-02T18:00:00") == T0_NS - 123_456  # no zone: UTC
    with pytest.raises(ValueError):
        parse_time_ns("yesterday")


def test_index_rebuilds_from_the_directory(tmp_path: os.PathLike[str]) -> None:
    directory = os.fspath(tmp_path)
    infos = []
    for i in range(3):
        path = os.path.join(directory, segment_name(T0_NS + i * 60 * S))
        with open(path, "wb") as f:
            f.write(b"x" * (10 + i))
        infos.append(SegmentInfo(path, T0_NS + i * 60 * S, T0_NS + i * 60 * S + S, 10 + i, 5))
    SegmentIndex(infos[:2]).save(directory)
    with open(os.path.join(directory, "other.txt"), "w") as f:
        f.write("not a segment")
    with open(infos[1].path, "ab") as f:
        f.write(b"more")  # grew after the index was saved: probe it again
    probed: list[str] = []

    def probe(path: str) -> SegmentInfo | None:
        probed.append(os.path.basename(path))
        return SegmentInfo(path, parse_segment_name(os.path.basename(path)) or 0, 0, 1, 1)

    index = rebuild_index(directory, probe)
    assert [s.path for s in index] == [s.path for s in infos]
    assert probed == [os.path.basename(infos[1].path), os.path.basename(infos[2].path)]
    assert next(iter(index)) == infos[0]  # from index.json, untouched

    with open(os.path.join(directory, "index.json"), "w") as f:
        json.dump({"segments": [{"bad": 1}]}, f)  # damaged: every file is probed
    probed.clear()
    assert len(rebuild_index(directory, probe)) == 3 and len(probed) == 3
