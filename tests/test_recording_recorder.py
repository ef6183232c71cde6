"""The Recorder: bounded queue and drops, pre-record, full disk, retention, restart."""

from __future__ import annotations

import logging
import os
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from camstream.errors import ConfigError
from camstream.frame import Codec, Frame
from camstream.recording import (
    INSTALL_HINT,
    Recorder,
    RecorderConfig,
    RetentionPolicy,
    iter_segment,
)
from netfaults import wait_until
from recording_support import (
    T0_NS,
    DiskControl,
    ManualClock,
    frame_at,
    frames,
    restamp,
)

S = 1_000_000_000


@pytest.mark.parametrize(
    ("max_frames", "max_bytes"),
    [(5, 10_000_000), (100, 250_000)],
    ids=["bounded-by-frames", "bounded-by-bytes"],
)
def test_a_slow_disk_drops_frames_instead_of_blocking_offer(
    tmp_path: Path, max_frames: int, max_bytes: int
) -> None:
    disk = DiskControl()
    disk.write_delay_s = 0.02  # every write of every frame: a disk far slower than 30 fps
    config = RecorderConfig(
        root_dir=str(tmp_path), queue_max_frames=max_frames, queue_max_bytes=max_bytes
    )
    recorder = Recorder("cam", config, open_file=disk.opener())
    offer_s: list[float] = []
    tracemalloc.start()
    try:
        with recorder:
            for i in range(150):
                # A fresh 100 kB payload per frame, as a camera makes them: memory
                # only stays bounded if the recorder lets go of the dropped ones.
                frame = frame_at(i, T0_NS + i * S // 30, data=os.urandom(100_000))
                started = time.perf_counter()
                recorder.offer(frame)
                offer_s.append(time.perf_counter() - started)
                del frame
            _, peak_bytes = tracemalloc.get_traced_memory()
            stats = recorder.stats()
    finally:
        tracemalloc.stop()
    assert stats["frames_dropped"] > 100  # the disk kept up with only a few
    assert stats["queue_peak_frames"] <= max_frames and stats["queue_peak_bytes"] <= max_bytes
    assert stats["queue_peak_frames"] >= 2  # the bound was reached, not just never needed
    # Queued without bound, 150 frames would be 15 MB; the queue allows 0.5 MB at most.
    assert peak_bytes < 3_000_000, peak_bytes
    # offer() never waited for the disk (one write alone sleeps 20 ms).
    assert sorted(offer_s)[-3] < 0.01, sorted(offer_s)[-5:]
    final = recorder.stats()
    assert final["frames_written"] + final["frames_dropped"] == 150
    written = [d for s in recorder.segments() for _, d in iter_segment(s.path)]
    assert len(written) == final["frames_written"]


def test_prerecorded_seconds_start_the_recording(tmp_path: Path) -> None:
    config = RecorderConfig(root_dir=str(tmp_path), continuous=False, prerecord_s=2.0)
    sent = frames(60, 10.0)  # 6 s at 10 fps
    with Recorder("cam", config) as recorder:
        for frame in sent[:50]:  # idle for 5 s: only the ring keeps frames
            assert not recorder.offer(frame)
        assert recorder.stats()["prerecord_frames"] == 21  # 2.9 s .. 4.9 s
        assert recorder.segments() == []
        recorder.start()
        for frame in sent[50:]:
            assert recorder.offer(frame)
        recorder.stop()
        wait_until(lambda: recorder.stats()["state"] == "idle", 5, "recording stopped")
        assert recorder.offer(sent[-1]) is False  # idle again: back to the ring
    [segment] = recorder.segments()
    recorded = list(iter_segment(segment.path))
    assert [d for _, d in recorded] == [f.data for f in sent[29:]]
    assert segment.start_ns == sent[29].captured_at_ns


def test_a_full_disk_pauses_with_one_warning_and_resumes(tmp_path: Path) -> None:
    disk = DiskControl()
    clock = ManualClock()
    notices: list[tuple[int, str]] = []
    config = RecorderConfig(root_dir=str(tmp_path), retry_interval_s=5.0, queue_max_frames=500)
    recorder = Recorder(
        "cam",
        config,
        open_file=disk.opener(),
        monotonic_s=clock.mono,
        on_notice=lambda level, message: notices.append((level, message)),
    )
    sent = frames(60, 10.0)
    with recorder:
        for frame in sent[:10]:
            recorder.offer(frame)
        wait_until(lambda: recorder.stats()["frames_written"] == 10, 5, "10 frames written")
        disk.full = True
        for frame in sent[10:20]:
            recorder.offer(frame)
        wait_until(lambda: recorder.stats()["state"] == "disk_full", 5, "disk full noticed")
        wait_until(lambda: recorder.stats()["queue_frames"] == 0, 5, "queue drained")
        for _ in range(3):  # retries while still full: no new warning
            clock.mono_s += 6
            recorder.offer(restamp(sent[20], sent[20].captured_at_ns))
            wait_until(lambda: recorder.stats()["queue_frames"] == 0, 5, "queue drained")
        assert [level for level, _ in notices] == [logging.WARNING]
        assert "disk is full" in notices[0][1] and "streaming continues" in notices[0][1]
        stats = recorder.stats()
        assert stats["state"] == "disk_full" and stats["recording"]
        assert stats["frames_dropped_unwritable"] == 13 and stats["frames_written"] == 10
        assert "No space left" in stats["last_error"]

        disk.full = False
        for frame in sent[21:30]:  # before the retry is due: still dropped
            recorder.offer(frame)
        wait_until(lambda: recorder.stats()["queue_frames"] == 0, 5, "queue drained")
        assert recorder.stats()["frames_written"] == 10
        clock.mono_s += 6
        for frame in sent[30:40]:
            recorder.offer(frame)
        wait_until(lambda: recorder.stats()["frames_written"] == 20, 5, "writing resumed")
        assert recorder.stats()["state"] == "recording"
        assert [level for level, _ in notices] == [logging.WARNING, logging.INFO]
    segments = recorder.segments()
    # The cut segment stays readable, without the one frame the muxer still held.
    assert [s.frames for s in segments] == [9, 10]
    assert [d for _, d in iter_segment(segments[0].path)] == [f.data for f in sent[:9]]
    assert [d for _, d in iter_segment(segments[1].path)] == [f.data for f in sent[30:40]]


def test_retention_deletes_the_oldest_segments(tmp_path: Path) -> None:
    clock = ManualClock(wall_ns=T0_NS)
    config = RecorderConfig(
        root_dir=str(tmp_path),
        segment_s=1.0,
        queue_max_frames=500,
        retention=RetentionPolicy(max_total_bytes=3 * 12_000),
    )
    sent = frames(100, 10.0)  # 10 segments of about 10 kB each
    with Recorder("cam", config, clock_ns=clock.ns) as recorder:
        for frame in sent:
            recorder.offer(frame)
    kept = recorder.segments()
    assert 2 <= len(kept) <= 4 and sum(s.size_bytes for s in kept) <= 3 * 12_000
    assert kept[-1].start_ns == sent[90].captured_at_ns  # the newest survive
    on_disk = sorted(n for n in os.listdir(recorder.directory) if n.endswith(".mkv"))
    assert on_disk == [s.name for s in kept]
    assert recorder.stats()["segments_deleted"] == 10 - len(kept)

    # By age: a later recorder on the same directory, 30 s after the last frame.
    clock.wall_ns = sent[-1].captured_at_ns + 30 * S
    aged = RecorderConfig(root_dir=str(tmp_path), retention=RetentionPolicy(max_age_s=30.5))
    with Recorder("cam", aged, clock_ns=clock.ns) as later:
        wait_until(lambda: later.stats()["segments_deleted"] > 0, 5, "age retention")
        assert [s.name for s in later.segments()] == [kept[-1].name]


def test_the_index_survives_a_restart_and_finds_times(tmp_path: Path) -> None:
    sent = frames(50, 10.0)
    config = RecorderConfig(root_dir=str(tmp_path), segment_s=2.0, queue_max_frames=100)
    with Recorder("cam", config) as first:
        for frame in sent:
            first.offer(frame)
    listed = first.segments()
    with Recorder("cam", RecorderConfig(root_dir=str(tmp_path), continuous=False)) as second:
        wait_until(lambda: len(second.segments()) == len(listed), 5, "index loaded")
        assert second.segments() == listed
        assert second.find(sent[33].captured_at_ns) == listed[1]
        assert second.segment_path(listed[2].name) == listed[2].path
        assert second.segment_path("../../etc/passwd") is None


def test_placeholders_and_png_are_not_recorded(tmp_path: Path) -> None:
    real = frames(3, 10.0)
    placeholder = Frame(9, T0_NS + S, 160, 120, Codec.JPEG, real[0].data, placeholder=True)
    png = Frame(10, T0_NS + 2 * S, 160, 120, Codec.PNG, b"\x89PNG")
    with Recorder("cam", RecorderConfig(root_dir=str(tmp_path))) as recorder:
        assert not recorder.offer(placeholder)
        assert not recorder.offer(png)
        for frame in real:
            recorder.offer(frame)
    stats = recorder.stats()
    assert stats["frames_skipped"] == 2 and stats["frames_written"] == 3
    assert stats["state"] == "closed"


def test_a_frame_older_than_the_last_written_is_counted_not_written(tmp_path: Path) -> None:
    a, b = frames(2, 10.0)
    with Recorder("cam", RecorderConfig(root_dir=str(tmp_path))) as recorder:
        recorder.offer(b)
        recorder.offer(a)
    assert recorder.stats()["frames_out_of_order"] == 1
    assert recorder.stats()["frames_written"] == 1


def test_bad_settings_and_a_missing_pyav_raise_config_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError):
        RecorderConfig(root_dir=str(tmp_path), segment_s=0)
    with pytest.raises(ConfigError):
        RecorderConfig(root_dir=str(tmp_path), queue_max_frames=0)
    with pytest.raises(ConfigError, match="camera name"):
        Recorder("../x", RecorderConfig(root_dir=str(tmp_path)))
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` fail
    with pytest.raises(ConfigError) as caught:
        Recorder("cam", RecorderConfig(root_dir=str(tmp_path)))
    assert INSTALL_HINT in str(caught.value)
    assert "pip install 'camstream[record]'" in str(caught.value)
