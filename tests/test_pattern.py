"""pattern: the moving test pattern and the NO SIGNAL placeholder."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from camstream.codec import JpegEncoder
from camstream.errors import ConfigError
from camstream.sources.pattern import render_placeholder, render_test_pattern


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (320, 240), (16, 16), (101, 57)])
def test_pattern_shape_and_dtype(width: int, height: int) -> None:
    image = render_test_pattern(0, width, height)
    assert image.shape == (height, width, 3)
    assert image.dtype == np.uint8
    assert image.flags.writeable and image.flags.c_contiguous


def test_consecutive_indices_differ_and_the_box_moves() -> None:
    frames = [render_test_pattern(i, 320, 240, now=100.0) for i in range(300)]
    for a, b in itertools.pairwise(frames):
        assert not np.array_equal(a, b)
    # With the clock fixed, the difference must include the moving box, not just the counter.
    track = slice(int(240 * 0.55), int(240 * 0.72))
    for i in (0, 57, 150, 298):
        assert not np.array_equal(frames[i][track], frames[i + 1][track])


def test_same_inputs_give_same_image_and_the_cache_is_not_mutated() -> None:
    a = render_test_pattern(5, 320, 240, now=1.5)
    a[:] = 0  # callers own their copy
    b = render_test_pattern(5, 320, 240, now=1.5)
    assert np.array_equal(b, render_test_pattern(5, 320, 240, now=1.5))
    assert b.any()


def test_clock_is_drawn() -> None:
    assert not np.array_equal(
        render_test_pattern(1, 320, 240, now=0.0), render_test_pattern(1, 320, 240, now=0.5)
    )


def test_pattern_compresses_like_a_picture() -> None:
    image = render_test_pattern(3, 640, 480)
    size = len(JpegEncoder(80).encode(image))
    raw = image.nbytes
    # Neither flat (a few KB) nor noise (close to raw): a camera picture is 3-15% of raw.
    assert raw * 0.01 < size < raw * 0.25, size
    assert image.std() > 20


def test_placeholder() -> None:
    image = render_placeholder("NO SIGNAL", 640, 480, now=0.0)
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    assert image.mean() < 60  # dark
    assert image.max() > 200  # with bright text
    centre = image[200:280, 100:540]
    assert centre.max() > 200  # the headline is centred
    assert not np.array_equal(image, render_placeholder("OTHER", 640, 480, now=0.0))
    pattern = render_test_pattern(0, 640, 480, now=0.0)
    assert np.abs(image.astype(int) - pattern).mean() > 30


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 10), (20000, 100), (640.0, 480)])
def test_bad_sizes_are_config_errors(width: object, height: object) -> None:
    with pytest.raises(ConfigError):
        render_test_pattern(0, width, height)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        render_placeholder("x", width, height)  # type: ignore[arg-type]
