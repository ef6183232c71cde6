"""Replaying a recording at its original timing, with a seek, and through a Server."""

from __future__ import annotations

import itertools
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from camstream import Client, Server
from camstream.errors import ConfigError, SourceError
from camstream.recording import (
    Recorder,
    RecorderConfig,
    ReplaySource,
    is_recording,
    iter_recording,
)
from recording_support import T0_NS, frame_at

MS = 1_000_000


def record(tmp_path: Path, gaps_ms: list[int], *, segment_s: float = 60.0) -> list:
    """Frames whose spacing is ``gaps_ms`` (variable rate), recorded under tmp_path/cam."""
    times = [T0_NS]
    for gap in gaps_ms:
        times.append(times[-1] + gap * MS)
    sent = [frame_at(i, t) for i, t in enumerate(times)]
    config = RecorderConfig(root_dir=str(tmp_path), segment_s=segment_s, queue_max_frames=500)
    with Recorder("cam", config) as recorder:
        for frame in sent:
            recorder.offer(frame)
    return sent


def test_replay_keeps_the_original_variable_timing(tmp_path: Path) -> None:
    gaps_ms = [40, 120, 40, 200, 40, 40, 120, 40]  # 640 ms in all
    sent = record(tmp_path, gaps_ms)
    source = ReplaySource(tmp_path / "cam")
    arrivals: list[float] = []
    got = []
    with source:
        while (frame := source.read_frame()) is not None:
            arrivals.append(time.monotonic())
            got.append(frame)
    assert [f.data for f in got] == [f.data for f in sent]  # JPEG bytes untouched
    assert [f.seq for f in got] == list(range(len(sent)))
    for g, s in zip(got, sent, strict=True):
        assert abs(g.captured_at_ns - s.captured_at_ns) <= MS // 2
    assert (got[0].width, got[0].height) == (160, 120)
    # Each frame is due at its recorded offset from the first: never early, late
    # only by scheduling noise on a busy machine. (Gaps between two frames may
    # shrink after a late one: the schedule is fixed, so lateness does not add up.)
    played_ms = [(arrival - arrivals[0]) * 1000 for arrival in arrivals]
    due_ms = list(itertools.accumulate([0, *gaps_ms]))
    for played, due in zip(played_ms, due_ms, strict=True):
        assert due - 2 <= played <= due + 60, (played_ms, due_ms)
    total_ms = (arrivals[-1] - arrivals[0]) * 1000
    assert 640 - 5 <= total_ms <= 640 + 80  # a fixed schedule: lateness does not add up


def test_seek_to_an_iso_time_across_segments(tmp_path: Path) -> None:
    sent = record(tmp_path, [100] * 49, segment_s=1.0)  # 5 s in 5 segments
    start_iso = "2026-12-02T18:00:02.350Z"  # T0 is 18:00:00.000123456
    first = next(iter_recording(str(tmp_path / "cam"), start_iso))
    assert first[1] == sent[24].data  # 2.400123456 s: the first frame at or after 2.35 s
    replayed = list(iter_recording(str(tmp_path / "cam"), start_iso))
    assert [d for _, d in replayed] == [f.data for f in sent[24:]]
    # One segment file alone, seeking inside it.
    segment = sorted((tmp_path / "cam").glob("*.mkv"))[2]  # 2 s .. 2.9 s
    inside = list(iter_recording(str(segment), T0_NS + 2_550 * MS))
    assert [d for _, d in inside] == [f.data for f in sent[26:30]]


def test_read_gives_bgr_images_and_bad_input_raises(tmp_path: Path) -> None:
    sent = record(tmp_path, [10, 10])
    with ReplaySource(tmp_path / "cam", speed=10.0) as source:
        image = source.read()
    assert image is not None and image.shape == (120, 160, 3) and image.dtype == np.uint8
    expected = cv2.imdecode(np.frombuffer(sent[0].data, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(image, expected)
    with pytest.raises(ConfigError, match="ISO 8601"):
        ReplaySource(tmp_path / "cam", start="not a time")
    with pytest.raises(ConfigError):
        ReplaySource(tmp_path / "cam", speed=0)
    with pytest.raises(SourceError, match="no recording"):
        ReplaySource(tmp_path / "missing").open()


def test_interrupt_cuts_a_long_gap_short(tmp_path: Path) -> None:
    record(tmp_path, [5_000])
    source = ReplaySource(tmp_path / "cam", max_gap_s=30.0)
    with source:
        assert source.read_frame() is not None
        started = time.monotonic()
        source.interrupt()
        assert source.read_frame() is None
        assert time.monotonic() - started < 1.0


def test_a_server_streams_a_recording(tmp_path: Path) -> None:
    sent = record(tmp_path, [50] * 39)  # 2 s at 20 fps
    source = ReplaySource(tmp_path / "cam")
    with (
        Server(source, host="127.0.0.1", port=0, always_capture=True) as server,
        Client(server.url) as client,
    ):
        image = client.read(timeout_s=10)
    assert image is not None and image.shape == (120, 160, 3)
    del sent


def test_long_gaps_are_shortened_to_max_gap(tmp_path: Path) -> None:
    record(tmp_path, [3_000, 3_000, 40])  # paused twice for 3 s
    started = time.monotonic()
    with ReplaySource(tmp_path / "cam", max_gap_s=0.1) as source:
        count = 0
        while source.read_frame() is not None:
            count += 1
    elapsed = time.monotonic() - started
    assert count == 4
    assert 0.2 <= elapsed < 1.5  # two 0.1 s gaps and 40 ms, not 6 s


@pytest.mark.ffmpeg
def test_recordings_are_told_apart_from_other_videos(tmp_path: Path) -> None:
    record(tmp_path, [40, 40])
    directory = tmp_path / "cam"
    [segment] = directory.glob("*.mkv")
    renamed = tmp_path / "renamed.mkv"
    renamed.write_bytes(segment.read_bytes())
    other = tmp_path / "other.mkv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=5:duration=0.4",
         "-c:v", "mjpeg", str(other)],
        check=True, timeout=30,
    )  # fmt: skip
    assert is_recording(directory) and is_recording(segment) and is_recording(renamed)
    assert not is_recording(other)
    assert not is_recording(tmp_path / "missing.mkv")
    (tmp_path / "empty").mkdir()
    assert not is_recording(tmp_path / "empty")
