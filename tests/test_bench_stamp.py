"""The glass-to-glass stamp: capture time and counter survive JPEG, scaling and a screen grab.

The benchmark modules are not a package: they are imported from ``benchmarks/``
on ``sys.path``, as ``benchmarks/run.py`` itself does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _scene import (
    CameraScene,
    StampBox,
    jpeg_size,
    locate_stamp,
    read_stamp,
    read_stamp_at,
    stamp,
    stamp_box,
)

CAPTURED_AT_NS = 1_796_236_317_170_490_123  # read back to the microsecond
EXPECTED = (1_796_236_317_170_490_000, 4321)


@pytest.fixture(scope="module")
def scene() -> CameraScene:
    return CameraScene(1280, 720)


def _through_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    assert decoded is not None
    return decoded


def _on_screen(image: np.ndarray, at: tuple[int, int] = (37, 61)) -> np.ndarray:
    """``image`` inside a larger grey 'screen grab' with a dark window frame around it."""
    height, width = image.shape[:2]
    screen = np.full((height + 200, width + 150, 3), 90, np.uint8)
    x, y = at
    screen[y - 4 : y + height + 4, x - 4 : x + width + 4] = 20
    screen[y : y + height, x : x + width] = image
    return screen


@pytest.mark.parametrize("quality", [60, 70, 80])
@pytest.mark.parametrize("scale", [1.0, 0.75, 0.5, 0.5 * 0.8, 1.25])
def test_round_trip_through_jpeg_and_scaling(
    scene: CameraScene, quality: int, scale: float
) -> None:
    """Encoded at 720p or at a 1/2 tier, then scaled again by a viewer, inside a grab."""
    image = stamp(scene.frame(17), CAPTURED_AT_NS, 4321)
    tier = image if scale >= 0.75 else cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA)
    decoded = _through_jpeg(tier, quality)
    shown_width = round(1280 * scale)
    shown = cv2.resize(decoded, (shown_width, round(720 * scale)), interpolation=cv2.INTER_LINEAR)
    assert read_stamp(_on_screen(shown)) == EXPECTED


def test_locate_gives_the_border_and_reading_there_is_cheap(scene: CameraScene) -> None:
    image = stamp(scene.frame(3), CAPTURED_AT_NS, 4321)
    x, y, w, h = stamp_box(1280, 720)
    screen = _on_screen(_through_jpeg(image, 80), at=(100, 50))
    box = locate_stamp(screen)
    assert box is not None
    cell = 720 // 60
    # the black border starts one cell (the quiet zone) inside the painted box
    assert abs(box.x - (100 + x + cell)) <= 1 and abs(box.y - (50 + y + cell)) <= 1
    assert abs(box.width - (w - 2 * cell)) <= 2 and abs(box.height - (h - 2 * cell)) <= 2
    # a crop around the box (what the benchmark grabs) reads the same
    gx, gy, gw, gh = box.grown(0.2)
    crop = screen[gy : gy + gh, gx : gx + gw]
    assert read_stamp_at(crop, box.moved(-gx, -gy)) == EXPECTED


def test_every_frame_reads_its_own_counter(scene: CameraScene) -> None:
    for counter in (0, 1, 65535, 65536 + 7):
        image = _through_jpeg(stamp(scene.frame(counter % 300), CAPTURED_AT_NS, counter), 60)
        assert read_stamp(image) == (EXPECTED[0], counter % 65536)


def test_a_grab_torn_between_two_frames_reads_as_none(scene: CameraScene) -> None:
    """Tearing: the top of one frame over the bottom of the next is no frame at all."""
    first = stamp(scene.frame(1), CAPTURED_AT_NS, 100)
    second = stamp(scene.frame(2), CAPTURED_AT_NS + 33_366_000, 101)
    _x, y, _w, _h = stamp_box(1280, 720)
    cell = 720 // 60
    # rows: quiet, border, clock, payload 1-3: the time from one frame, the counter
    # and check from the other (a tear above that only mixes identical high bits)
    tear = y + 5 * cell
    torn = np.vstack([first[:tear], second[tear:]])
    assert read_stamp(first) == (EXPECTED[0], 100)
    assert read_stamp(torn) is None


def test_no_stamp_reads_as_none(scene: CameraScene) -> None:
    assert read_stamp(scene.frame(5)) is None
    assert read_stamp(np.zeros((200, 300, 3), np.uint8)) is None
    assert read_stamp_at(scene.frame(5), StampBox(0, 0, 5000, 5000)) is None  # off the image


def test_gray_and_bgra_grabs_read_too(scene: CameraScene) -> None:
    image = _through_jpeg(stamp(scene.frame(9), CAPTURED_AT_NS, 4321), 80)
    assert read_stamp(cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)) == EXPECTED  # as mss grabs
    assert read_stamp(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)) == EXPECTED


def test_scene_compresses_like_a_camera(scene: CameraScene) -> None:
    """About 150 KB at 720p q80 (flat test patterns are a few KB); it moves and is noisy."""
    first, later = scene.frame(0), scene.frame(30)
    assert first.shape == (720, 1280, 3) and first.dtype == np.uint8
    assert 130_000 <= jpeg_size(first, 80) <= 175_000
    assert float(cv2.absdiff(first, later).mean()) > 10  # the camera pans
    assert not np.array_equal(scene.frame(1), scene.frame(2))  # every frame differs
    assert scene.frame(4) is not scene.frame(4)  # a new array every call
