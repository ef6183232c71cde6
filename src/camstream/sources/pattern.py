"""Synthetic images: a moving test pattern and a "NO SIGNAL" placeholder.

Pure functions of their arguments (plus the wall clock when ``now`` is None), no
threads. The test pattern must cost almost nothing next to JPEG encoding, so
everything that does not move is rendered once per size and cached; each call
copies that background and draws only the moving box and two lines of text.
"""

from __future__ import annotations

import functools
import time

import cv2
import numpy as np

from ..errors import ConfigError

__all__ = ["render_placeholder", "render_test_pattern"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
# Bar colours (BGR) in the classic order: white, yellow, cyan, green, magenta, red, blue.
_BARS = np.array(
    [[191, 191, 191], [0, 191, 191], [191, 191, 0], [0, 191, 0], [191, 0, 191], [0, 0, 191],
     [191, 0, 0]],
    dtype=np.float32,
)  # fmt: skip
_BARS_END = 0.45  # fractions of the height where each band ends
_RAMP_END = 0.55
_TRACK_END = 0.72


def _check_size(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or not 16 <= value <= 16384:
            raise ConfigError(f"{name} must be an integer between 16 and 16384, got {value!r}")


def _clock_text(now: float) -> str:
    local = time.localtime(now)
    return time.strftime("%H:%M:%S", local) + f".{int(now * 1000) % 1000:03d}"


@functools.lru_cache(maxsize=4)
def _pattern_background(width: int, height: int) -> np.ndarray:
    h_bars, h_ramp, h_track = (int(height * f) for f in (_BARS_END, _RAMP_END, _TRACK_END))
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)
    image = np.zeros((height, width, 3), np.float32)

    bar_index = np.minimum((xs * len(_BARS)).astype(np.int32), len(_BARS) - 1)
    shade = 0.75 + 0.25 * np.cos(ys[:h_bars] * np.pi)  # vertical shading, so not flat
    image[:h_bars] = _BARS[bar_index][None, :, :] * shade[:, None, None]

    image[h_bars:h_ramp] = (xs * 255.0)[None, :, None]

    # A checkerboard behind the moving box gives the encoder edges to chew on and
    # makes motion (and tearing or freezes) easy to see.
    cell = max(4, height // 24)
    rows = (np.arange(h_ramp, h_track) // cell)[:, None]
    cols = (np.arange(width) // cell)[None, :]
    checker = ((rows + cols) % 2).astype(np.float32)
    image[h_ramp:h_track] = (60.0 + 80.0 * checker)[:, :, None]

    # Info panel: a dark, gently varying field for the counter and the clock.
    ripple = 10.0 * np.outer(np.cos(ys[h_track:] * 4 * np.pi), np.sin(xs * 6 * np.pi))
    image[h_track:] = (30.0 + ripple)[:, :, None]

    # Mild fixed sensor-like noise: JPEG sizes then resemble a camera's, not a cartoon's.
    # A tiled 97x97 patch is as good as full-size noise to the eye and far cheaper.
    tile = np.random.default_rng(12345).normal(0.0, 2.0, (97, 97, 1)).astype(np.float32)
    reps = (-(-height // 97), -(-width // 97), 1)
    image += np.tile(tile, reps)[:height, :width]
    out = np.clip(image, 0, 255).astype(np.uint8)
    label_scale = max(height / 1440.0, 0.3)
    cv2.putText(
        out, "camstream", (max(4, width // 80), max(12, int(h_bars * 0.12))),
        _FONT, label_scale, (16, 16, 16), max(1, round(label_scale * 2)), cv2.LINE_AA,
    )  # fmt: skip
    out.flags.writeable = False  # shared by every call; copies are drawn on
    return out


def render_test_pattern(
    index: int, width: int, height: int, *, now: float | None = None
) -> np.ndarray:
    """A BGR ``uint8`` test image (heightxwidthx3) for frame number ``index``.

    A box bounces across a checkerboard by a few pixels per index, and the panel
    below shows the index and the wall-clock time (``now``, default
    ``time.time()``) as HH:MM:SS.mmm, so a frozen, repeated or late frame is
    visible at a glance. Consecutive indices always give different images.
    """
    _check_size(width, height)
    image: np.ndarray = _pattern_background(width, height).copy()
    h_ramp, h_track = int(height * _RAMP_END), int(height * _TRACK_END)

    box = max(4, (h_track - h_ramp) * 3 // 4)
    step = max(2, width // 160)
    travel = max(1, width - box)
    # Bounce rather than wrap so the box never jumps; the step guarantees movement.
    phase = (index * step) % (2 * travel)
    x0 = phase if phase < travel else 2 * travel - phase
    y0 = h_ramp + (h_track - h_ramp - box) // 2
    hue = (index * 3) % 180
    colour = cv2.cvtColor(np.array([[[hue, 220, 255]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    border = max(1, box // 12)
    image[y0 : y0 + box, x0 : x0 + box] = 0
    image[y0 + border : y0 + box - border, x0 + border : x0 + box - border] = colour

    panel = height - h_track
    scale = panel / 60.0
    thickness = max(1, round(scale * 2))
    margin = max(4, width // 40)
    baseline_y = h_track + int(panel * 0.72)
    cv2.putText(
        image, f"#{index}", (margin, baseline_y), _FONT, scale, (255, 255, 255), thickness,
        cv2.LINE_AA,
    )  # fmt: skip
    clock = _clock_text(time.time() if now is None else now)
    small = scale * 0.6
    (text_w, _), _ = cv2.getTextSize(clock, _FONT, small, max(1, thickness // 2))
    cv2.putText(
        image, clock, (max(margin, width - margin - text_w), baseline_y), _FONT, small,
        (80, 230, 255), max(1, thickness // 2), cv2.LINE_AA,
    )  # fmt: skip
    return image


@functools.lru_cache(maxsize=4)
def _placeholder_background(width: int, height: int) -> np.ndarray:
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)
    column = 24.0 + 16.0 * (1.0 - ys)  # dark, slightly lighter at the top
    image = np.broadcast_to(column[:, None, None], (height, width, 3))
    out = np.ascontiguousarray(image).astype(np.uint8)
    out.flags.writeable = False
    return out


def render_placeholder(
    text: str, width: int, height: int, *, now: float | None = None
) -> np.ndarray:
    """A dark BGR ``uint8`` image with ``text`` (e.g. "NO SIGNAL") large and centred.

    A smaller line below shows the wall-clock time, so viewers can tell the
    server is alive even though the camera is not.
    """
    _check_size(width, height)
    image: np.ndarray = _placeholder_background(width, height).copy()
    thickness = max(1, height // 90)
    # Fit the headline to ~80% of the width, and no taller than a fifth of the image.
    (unit_w, unit_h), _ = cv2.getTextSize(text or " ", _FONT, 1.0, thickness)
    scale = min(0.8 * width / max(unit_w, 1), 0.2 * height / max(unit_h, 1))
    (text_w, text_h), _ = cv2.getTextSize(text, _FONT, scale, thickness)
    origin = ((width - text_w) // 2, (height + text_h) // 2)
    cv2.putText(image, text, origin, _FONT, scale, (235, 235, 235), thickness, cv2.LINE_AA)

    clock = _clock_text(time.time() if now is None else now)
    small = max(scale * 0.35, 0.3)
    small_thickness = max(1, thickness // 2)
    (clock_w, clock_h), _ = cv2.getTextSize(clock, _FONT, small, small_thickness)
    clock_origin = ((width - clock_w) // 2, min(height - 4, origin[1] + text_h + 2 * clock_h))
    cv2.putText(
        image, clock, clock_origin, _FONT, small, (150, 150, 150), small_thickness, cv2.LINE_AA
    )
    return image
