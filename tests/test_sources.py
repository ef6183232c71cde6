"""sources: every kind of source, its errors, and open_source()'s spec parsing."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from camstream.errors import ConfigError, SourceError
from camstream.sources import (
    CallableSource,
    CameraSource,
    FileSource,
    IterableSource,
    Source,
    TestPatternSource,
    UrlSource,
    open_default_source,
    open_source,
)

FRAMES_IN_CLIP = 12


def _level(image: np.ndarray) -> int:
    return round(float(image.mean()) / 20)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 12-frame MJPG clip whose frame i is flat grey at level 20*i (readable back as i)."""
    path = str(tmp_path_factory.mktemp("video") / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (64, 48))
    assert writer.isOpened()
    for i in range(FRAMES_IN_CLIP):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    return path


def _read(source: Source) -> np.ndarray:
    image = source.read()
    assert image is not None
    return image


def _read_all(source: Source, limit: int = 1000) -> list[np.ndarray]:
    images: list[np.ndarray] = []
    with source:
        while (image := source.read()) is not None and len(images) < limit:
            images.append(image)
    return images


# -- test pattern ------------------------------------------------------------


def test_test_pattern_is_paced() -> None:
    source = TestPatternSource(64, 48, fps=50)
    with source:
        started = time.monotonic()
        images = [source.read() for _ in range(11)]
        elapsed = time.monotonic() - started
    assert all(i is not None and i.shape == (48, 64, 3) for i in images)
    # 10 periods of 20 ms; loose upper bound because the machine is shared.
    assert elapsed >= 0.18
    assert elapsed < 2.0
    assert source.nominal_fps == 50
    assert source.description == "test pattern 64x48@50"


def test_test_pattern_unpaced_and_frames_differ() -> None:
    source = TestPatternSource(64, 48, fps=0)
    with source:
        started = time.monotonic()
        images = [_read(source) for _ in range(30)]
        elapsed = time.monotonic() - started
    assert elapsed < 1.0  # 30 periods at any real pacing would be far longer than 0 ms
    assert source.nominal_fps is None
    assert all(not np.array_equal(a, b) for a, b in itertools.pairwise(images))


def test_interrupt_cuts_a_pacing_wait_short() -> None:
    source = TestPatternSource(64, 48, fps=0.5)  # one image every 2 s
    with source:
        source.read()  # the first tick is immediate
        timer = threading.Timer(0.1, source.interrupt)
        timer.start()
        started = time.monotonic()
        assert source.read() is not None
        timer.join()
    assert time.monotonic() - started < 1.5


def test_test_pattern_rejects_bad_options() -> None:
    with pytest.raises(ConfigError):
        TestPatternSource(64, 48, fps=-1)
    with pytest.raises(ConfigError):
        TestPatternSource(8, 48)
    with pytest.raises(SourceError, match="not open"):
        TestPatternSource(64, 48).read()


# -- files -------------------------------------------------------------------


def test_file_plays_in_order_then_ends(clip: str) -> None:
    source = FileSource(clip, fps=0)
    images = _read_all(source)
    assert [_level(i) for i in images] == list(range(FRAMES_IN_CLIP))
    assert images[0].shape == (48, 64, 3) and images[0].dtype == np.uint8
    assert source.description == f"file {clip}"


def test_file_loops(clip: str) -> None:
    source = FileSource(clip, loop=True, fps=0)
    with source:
        levels = [_level(source.read()) for _ in range(2 * FRAMES_IN_CLIP + 3)]  # type: ignore[arg-type]
    expected = list(range(FRAMES_IN_CLIP)) * 2 + [0, 1, 2]
    assert levels == expected


def test_file_plays_at_its_own_rate(clip: str) -> None:
    source = FileSource(clip)
    with source:
        assert source.nominal_fps == pytest.approx(25.0)
        started = time.monotonic()
        for _ in range(6):
            assert source.read() is not None
        elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 2.0  # 5 periods of 40 ms


def test_file_can_be_reopened_after_close(clip: str) -> None:
    source = FileSource(clip, fps=0)
    assert len(_read_all(source)) == FRAMES_IN_CLIP
    source.close()  # idempotent
    assert len(_read_all(source)) == FRAMES_IN_CLIP


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.mp4")
    with pytest.raises(SourceError, match=r"video file not found: .*nope\.mp4"):
        FileSource(path).open()


def test_unreadable_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "notes.avi"
    path.write_text("this is not a video")
    with pytest.raises(SourceError, match="could not be opened"):
        FileSource(str(path)).open()


# -- cameras and URLs --------------------------------------------------------


def test_missing_camera_fails_quickly_with_a_fix() -> None:
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"camera 9 could not be opened.*--source test"):
        CameraSource(9).open()
    assert time.monotonic() - started < 3.0


def test_url_to_a_closed_port_fails_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(SourceError, match="could not be opened"):
        UrlSource("http://127.0.0.1:9/stream.mjpg").open()
    assert time.monotonic() - started < 8.0


def test_url_description_hides_credentials() -> None:
    assert (
        UrlSource("rtsp://admin:secret@10.0.0.5/live").description == "URL rtsp://***@10.0.0.5/live"
    )


def test_default_source_falls_back_to_the_test_pattern() -> None:
    if os.path.exists("/dev/video0"):
        pytest.skip("this machine has a camera")
    source, note = open_default_source(width=320, height=240, fps=15)
    assert isinstance(source, TestPatternSource)
    assert (source.width, source.height, source.fps) == (320, 240, 15)
    assert note is not None and "no camera found" in note and "test pattern" in note


# -- iterables and callables -------------------------------------------------


def _images(n: int) -> Iterator[np.ndarray]:
    for i in range(n):
        yield np.full((8, 8, 3), i, np.uint8)


def test_iterable_source_yields_then_ends() -> None:
    images = _read_all(IterableSource(_images(3)))
    assert [int(i[0, 0, 0]) for i in images] == [0, 1, 2]


def test_iterable_source_expands_grayscale() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (image,) = _read_all(IterableSource([gray, gray[:, :, None]]))[:1]
    assert image.shape == (3, 4, 3)
    assert np.array_equal(image[:, :, 2], gray)


@pytest.mark.parametrize(
    ("item", "complaint"),
    [
        ("a string", "gave a str"),
        ([[1, 2]], "gave a list"),
        (np.zeros((4, 4, 3), np.float32), "dtype float32"),
        (np.zeros((4, 4, 4), np.uint8), r"shape \(4, 4, 4\)"),
        (np.zeros((4,), np.uint8), r"shape \(4,\)"),
        (np.zeros((0, 4, 3), np.uint8), r"shape \(0, 4, 3\)"),
    ],
)
def test_iterable_source_validates_items(item: object, complaint: str) -> None:
    source = IterableSource([item])  # type: ignore[list-item]
    with source, pytest.raises(SourceError, match=complaint):
        source.read()


def test_callable_source() -> None:
    calls = iter([np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), np.uint8), None])

    def grab() -> np.ndarray | None:
        return next(calls)

    source = CallableSource(grab)
    images = _read_all(source)
    assert [i.shape for i in images] == [(4, 4, 3), (4, 4, 3)]
    assert source.description == "callable grab"
    bad = CallableSource(lambda: 42)  # type: ignore[arg-type,return-value]
    with bad, pytest.raises(SourceError, match="gave a int"):
        bad.read()


def test_paced_iterable() -> None:
    source = IterableSource(_images(6), fps=50)
    started = time.monotonic()
    assert len(_read_all(source)) == 6
    assert time.monotonic() - started >= 0.08


# -- open_source -------------------------------------------------------------


def test_open_source_parses_specs(clip: str) -> None:
    assert isinstance(open_source(0), CameraSource)
    camera = open_source("2", width=640, height=480, fps=15)
    assert isinstance(camera, CameraSource) and camera.device == 2 and camera.width == 640
    device = open_source("/dev/video3")
    assert isinstance(device, CameraSource) and device.device == "/dev/video3"
    pattern = open_source("test")
    assert isinstance(pattern, TestPatternSource)
    assert (pattern.width, pattern.height, pattern.fps) == (1280, 720, 30.0)
    sized = open_source("test", width=320, height=240, fps=0)
    assert isinstance(sized, TestPatternSource) and (sized.width, sized.fps) == (320, 0)
    assert isinstance(open_source("rtsp://cam.local/live"), UrlSource)
    assert isinstance(open_source("http://cam.local/video.mjpg"), UrlSource)
    video = open_source(clip, loop=True, fps=10)
    assert isinstance(video, FileSource) and video.loop and video.fps == 10
    assert isinstance(open_source(Path(clip)), FileSource)
    assert isinstance(open_source([np.zeros((4, 4, 3), np.uint8)]), IterableSource)
    assert isinstance(open_source(_images(1)), IterableSource)
    assert isinstance(open_source(lambda: None), CallableSource)
    existing = TestPatternSource(64, 48)
    assert open_source(existing) is existing


def test_open_source_does_not_open_anything() -> None:
    source = open_source(9)  # a missing camera: fails only when opened
    with pytest.raises(SourceError):
        source.open()


@pytest.mark.parametrize("spec", ["clip.mp4", "tset", "", "/no/such/file.avi"])
def test_unknown_spec_explains_the_choices(spec: str) -> None:
    with pytest.raises(SourceError, match=r"no such source .*camera index.*rtsp://.*'test'"):
        open_source(spec)


def test_unsupported_spec_type() -> None:
    with pytest.raises(SourceError, match="float"):
        open_source(1.5)  # type: ignore[arg-type]
    with pytest.raises(SourceError, match="bool"):
        open_source(True)
