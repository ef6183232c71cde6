"""Segment files: what ffprobe and PyAV read back, rotation, and a SIGKILL mid-segment."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from camstream.recording import (
    Recorder,
    RecorderConfig,
    SegmentWriter,
    iter_segment,
    probe_segment,
)
from netfaults import wait_until
from recording_support import T0_NS, frames, jpeg_bytes

pytestmark = pytest.mark.ffmpeg
MS = 1_000_000


def ffprobe(path: str) -> dict:
    """ffprobe's view of the file: stream, decoded frame count and every packet's pts."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
         "-show_entries", "stream=codec_name,width,height,nb_read_frames:packet=pts_time",
         "-show_entries", "format_tags", "-of", "json", path],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def record_all(tmp_path: Path, sent: list, **options: object) -> Recorder:
    config = RecorderConfig(root_dir=str(tmp_path), queue_max_frames=len(sent) + 1, **options)
    recorder = Recorder("cam", config)
    with recorder:
        for frame in sent:
            assert recorder.offer(frame)
    return recorder


def test_five_seconds_at_15_fps_open_in_ffprobe_with_the_capture_times(tmp_path: Path) -> None:
    sent = frames(75, 15.0, jitter_ns=7 * MS + 400_000)  # 5 s, variable frame rate
    recorder = record_all(tmp_path, sent)
    [segment] = recorder.segments()
    assert recorder.stats()["frames_written"] == 75 and recorder.stats()["frames_dropped"] == 0

    probe = ffprobe(segment.path)
    stream = probe["streams"][0]
    assert stream["codec_name"] == "mjpeg" and (stream["width"], stream["height"]) == (160, 120)
    assert abs(int(stream["nb_read_frames"]) - 75) <= 1
    pts_s = [float(p["pts_time"]) for p in probe["packets"]]
    assert all(b > a for a, b in itertools.pairwise(pts_s)), "not monotonic"
    start_ns = int(probe["format"]["tags"]["CAMSTREAM_START_NS"])
    assert start_ns == sent[0].captured_at_ns
    # Matroska stores milliseconds: every time is the capture time, rounded to the ms.
    for pts, frame in zip(pts_s, sent, strict=True):
        assert abs(start_ns + round(pts * 1e9) - frame.captured_at_ns) <= MS // 2

    # PyAV demux: the very bytes that were offered (and that viewers received).
    back = list(iter_segment(segment.path))
    assert [data for _, data in back] == [f.data for f in sent]
    assert all(abs(t - f.captured_at_ns) <= MS // 2 for (t, _), f in zip(back, sent, strict=True))
    probed = probe_segment(segment.path)  # what the index says is what is on disk
    assert probed is not None
    assert (probed.start_ns, probed.frames, probed.size_bytes) == (
        segment.start_ns,
        segment.frames,
        segment.size_bytes,
    )
    assert abs(probed.end_ns - segment.end_ns) <= MS // 2


def test_segments_rotate_by_capture_time_with_sortable_names(tmp_path: Path) -> None:
    sent = frames(100, 10.0)  # 10 s
    recorder = record_all(tmp_path, sent, segment_s=3.0)
    segments = recorder.segments()
    assert [s.frames for s in segments] == [30, 30, 30, 10]
    names = sorted(os.listdir(recorder.directory))
    assert names == [*sorted(s.name for s in segments), "index.json"]
    assert [s.start_ns for s in segments] == [sent[i].captured_at_ns for i in (0, 30, 60, 90)]
    assert recorder.find(sent[45].captured_at_ns) == segments[1]
    read_back = [data for s in segments for _, data in iter_segment(s.path)]
    assert read_back == [f.data for f in sent]


def test_a_new_size_starts_a_new_segment(tmp_path: Path) -> None:
    small = frames(5, 10.0)
    from recording_support import frame_at

    big = [frame_at(i, T0_NS + (5 + i) * 100 * MS, width=320, height=240) for i in range(5)]
    recorder = record_all(tmp_path, small + big)
    assert [s.frames for s in recorder.segments()] == [5, 5]
    assert ffprobe(recorder.segments()[1].path)["streams"][0]["width"] == 320


def test_a_frame_from_the_past_is_refused(tmp_path: Path) -> None:
    first, second = frames(2, 10.0)
    writer = SegmentWriter(str(tmp_path), second)
    writer.write(second)
    with pytest.raises(ValueError, match="before"):
        writer.write(first)
    assert writer.close().frames == 1


_CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from camstream.recording import Recorder, RecorderConfig
    from recording_support import frames
    sent = frames(600, 25.0)  # 40 ms apart: 25 frames per 1 s segment
    config = RecorderConfig(root_dir=sys.argv[1], segment_s=1.0, queue_max_frames=1000)
    recorder = Recorder("cam", config)
    recorder.open()
    for frame in sent:
        recorder.offer(frame)
        time.sleep(0.004)
        print(recorder.stats()["frames_written"], flush=True)
    time.sleep(60)
    """
)


def test_sigkill_mid_segment_leaves_playable_files(tmp_path: Path) -> None:
    tests_dir = str(Path(__file__).parent)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path), tests_dir],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        written = 0
        deadline = time.monotonic() + 30
        while written < 62 and time.monotonic() < deadline:  # 2.5 s of footage: mid-segment
            line = child.stdout.readline()
            assert line, child.stderr.read() if child.stderr else "child ended"
            written = int(line)
        assert written >= 62
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()

    directory = tmp_path / "cam"
    names = sorted(n for n in os.listdir(directory) if n.endswith(".mkv"))
    assert len(names) >= 3  # two finished 1 s segments and the one being written
    expected = [jpeg_bytes(i) for i in range(600)]
    seen = 0
    for name in names:
        path = str(directory / name)
        count = int(ffprobe(path)["streams"][0]["nb_read_frames"])
        data = [d for _, d in iter_segment(path)]
        assert count == len(data) > 0
        assert data == expected[seen : seen + len(data)], f"{name} holds other frames"
        seen += len(data)
    for name in names[:-1]:
        assert len(list(iter_segment(str(directory / name)))) == 25  # finished: whole
    # Everything written before the kill is there, except at most the one frame
    # FFmpeg's Matroska muxer holds back until the next arrives.
    assert seen >= written - 1

    # A new recorder finds the cut segment (not in index.json) by probing it.
    recorder = Recorder("cam", RecorderConfig(root_dir=str(tmp_path), continuous=False))
    with recorder:
        wait_until(lambda: len(recorder.segments()) == len(names), 10, "index rebuilt")
    assert sum(s.frames for s in recorder.segments()) == seen
