"""A camera-like test scene, and a capture-time stamp painted into the pixels.

The scene (:class:`CameraScene`) looks to a JPEG encoder like a camera: a
textured, sharp-edged background that pans and shakes, an object moving across
it, and sensor noise that changes every frame. Flat test patterns compress to a
few KB and flatter every figure; this one's 720p frame is about 150 KB at JPEG
q80 (see :func:`jpeg_size`), like a real webcam's.

The stamp (:func:`stamp` / :func:`read_stamp`) carries a frame's capture time
and a counter in black and white cells, so a screen grab of any viewer tells
what it shows and how old that is. Layout, in cells (12 px at 720p)::

    quiet zone (white, 1 cell) around
    border (black, 1 cell) around
    COLS x ROWS interior: row 0 a clock (white, black, white, ...),
                          rows 1..3 the payload bits, black = 1

The payload is the capture time in microseconds (52 bits), the counter (16
bits) and a 10-bit CRC of both, so a grab torn between two frames reads as
``None`` rather than as a wrong age. The black border in its white quiet zone
is what :func:`locate_stamp` finds (a four-cornered contour of the panel's
aspect ratio), at any scale and anywhere in a larger screen grab; the clock row
confirms it. Cells are big enough for JPEG q60 and a 1/2 downscale (6 px) and
then a viewer's own scaling.

The panel sits at the top right: ``camstream view`` draws its overlay at the top
left, the page draws nothing over a live image (its bar is below the image),
and VLC shows the title at the bottom for a few seconds.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "CameraScene",
    "StampBox",
    "jpeg_size",
    "locate_stamp",
    "read_stamp",
    "read_stamp_at",
    "stamp",
    "stamp_box",
]

COLS = 26
ROWS = 4  # clock row + 3 payload rows
TIME_BITS = 52
COUNTER_BITS = 16
CHECK_BITS = 10
PAYLOAD_BITS = (ROWS - 1) * COLS  # 78 = 52 + 16 + 10
_PANEL = (COLS + 4, ROWS + 4)  # cells, with border and quiet zone
_BORDER_ASPECT = (COLS + 2) / (ROWS + 2)


def _cell_px(height: int) -> int:
    return max(4, height // 60)


def stamp_box(width: int, height: int) -> tuple[int, int, int, int]:
    """Where :func:`stamp` paints in a ``width`` x ``height`` image: (x, y, w, h)."""
    cell = _cell_px(height)
    w, h = _PANEL[0] * cell, _PANEL[1] * cell
    if w + cell > width or h + cell > height:
        raise ValueError(f"{width}x{height} is too small for a stamp ({w}x{h} px)")
    return width - w - cell, cell, w, h


def _bits(captured_at_ns: int, counter: int) -> list[int]:
    value = ((captured_at_ns // 1000) % (1 << TIME_BITS)) << COUNTER_BITS
    value |= counter % (1 << COUNTER_BITS)
    check = zlib.crc32(value.to_bytes(9, "big")) % (1 << CHECK_BITS)
    value = (value << CHECK_BITS) | check
    return [(value >> (PAYLOAD_BITS - 1 - i)) & 1 for i in range(PAYLOAD_BITS)]


def _decode_bits(bits: list[int]) -> tuple[int, int] | None:
    value = 0
    for bit in bits:
        value = (value << 1) | bit
    check = value % (1 << CHECK_BITS)
    value >>= CHECK_BITS
    if zlib.crc32(value.to_bytes(9, "big")) % (1 << CHECK_BITS) != check:
        return None
    return (value >> COUNTER_BITS) * 1000, value % (1 << COUNTER_BITS)


def _clock() -> np.ndarray:
    return (np.arange(COLS) % 2).astype(bool)  # white, black, white, ...


def stamp(image: np.ndarray, captured_at_ns: int, counter: int) -> np.ndarray:
    """Paint ``captured_at_ns`` (to the microsecond) and ``counter`` (mod 65536), in place."""
    height, width = image.shape[:2]
    x, y, w, h = stamp_box(width, height)
    cell = _cell_px(height)
    black = np.zeros((ROWS + 2, COLS + 2), bool)
    black[0, :] = black[-1, :] = black[:, 0] = black[:, -1] = True
    black[1, 1:-1] = _clock()
    black[2:-1, 1:-1] = np.array(_bits(captured_at_ns, counter), bool).reshape(ROWS - 1, COLS)
    cells = np.full(_PANEL[::-1], 255, np.uint8)
    cells[1:-1, 1:-1][black] = 0
    panel = np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)
    region = image[y : y + h, x : x + w]
    region[:] = panel[..., None] if image.ndim == 3 else panel
    return image


@dataclass(frozen=True)
class StampBox:
    """The stamp's black border in some image: top-left corner and size, in pixels."""

    x: float
    y: float
    width: float
    height: float

    def grown(self, margin: float) -> tuple[int, int, int, int]:
        """An integer (x, y, w, h) around the border, ``margin`` times its size bigger."""
        dx, dy = self.width * margin, self.height * margin
        return (
            int(self.x - dx),
            int(self.y - dy),
            int(self.width + 2 * dx) + 1,
            int(self.height + 2 * dy) + 1,
        )

    def moved(self, dx: float, dy: float) -> StampBox:
        return StampBox(self.x + dx, self.y + dy, self.width, self.height)


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    gray: np.ndarray = cv2.cvtColor(image, code)
    return gray


def _sample(gray: np.ndarray, box: StampBox) -> np.ndarray | None:
    """The interior cells' mean brightness, (ROWS, COLS), from their central part."""
    cw = box.width / (COLS + 2)
    ch = box.height / (ROWS + 2)
    rows, cols = gray.shape
    values = np.empty((ROWS, COLS))
    r_half, c_half = max(0.5, ch * 0.2), max(0.5, cw * 0.2)
    for r in range(ROWS):
        cy = box.y + (r + 1.5) * ch
        y0, y1 = round(cy - r_half), round(cy + r_half)
        if y0 < 0 or y1 > rows:
            return None
        for c in range(COLS):
            cx = box.x + (c + 1.5) * cw
            x0, x1 = round(cx - c_half), round(cx + c_half)
            if x0 < 0 or x1 > cols:
                return None
            values[r, c] = gray[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)].mean()
    return values


def read_stamp_at(image: np.ndarray, box: StampBox) -> tuple[int, int] | None:
    """Read the stamp whose border is at ``box``; ``None`` if it is not there or torn."""
    values = _sample(_gray(image), box)
    if values is None:
        return None
    clock = values[0]
    white, black = clock[~_clock()], clock[_clock()]
    if white.min() - black.max() < 40:  # not our clock row: not a stamp (or blurred away)
        return None
    threshold = (white.mean() + black.mean()) / 2
    bits = (values[1:] < threshold).astype(int).ravel().tolist()
    return _decode_bits(bits)


def locate_stamp(image: np.ndarray) -> StampBox | None:
    """Find a readable stamp anywhere in ``image`` (any scale above ~4 px a cell)."""
    gray = _gray(image)
    _, dark = cv2.threshold(gray, 100, 255, cv2.THRESH_BINARY_INV)
    contours, _ = cv2.findContours(dark, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    candidates = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        if h < (ROWS + 2) * 3 or abs(w / h - _BORDER_ASPECT) > 0.08 * _BORDER_ASPECT:
            continue
        if cv2.contourArea(contour) < 0.85 * w * h:  # the border's outside is a filled rect
            continue
        candidates.append(StampBox(float(x), float(y), float(w), float(h)))
    for box in sorted(candidates, key=lambda b: -b.width):
        if read_stamp_at(gray, box) is not None:
            return box
    return None


def read_stamp(image: np.ndarray) -> tuple[int, int] | None:
    """``(captured_at_ns, counter)`` of the stamp in ``image`` (found anywhere), or ``None``."""
    box = locate_stamp(image)
    return None if box is None else read_stamp_at(image, box)


# -- the scene --------------------------------------------------------------------


def _octave_noise(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Smooth noise of several scales in [0, 1]: clouds with detail, like foliage or a wall."""
    total = np.zeros((height, width), np.float32)
    for scale, weight in ((64, 1.0), (16, 0.6), (4, 0.45), (1, 0.24)):
        small = rng.random((max(2, height // scale), max(2, width // scale)), np.float32)
        total += weight * cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    total -= total.min()
    scaled: np.ndarray = total / total.max()
    return scaled


class CameraScene:
    """Frames that compress like a camera's: ``scene.frame(i)`` is frame ``i`` (BGR uint8).

    Each call returns a new array (the server encodes it on another thread).
    """

    def __init__(self, width: int = 1280, height: int = 720, *, seed: int = 1) -> None:
        self.width, self.height = width, height
        rng = np.random.default_rng(seed)
        self._pad = max(16, width // 10)
        bw, bh = width + 2 * self._pad, height + 2 * self._pad
        texture = _octave_noise(rng, bw, bh)
        tint = np.stack([_octave_noise(rng, bw // 8, bh // 8) for _ in range(3)], axis=2)
        tint = cv2.resize(tint, (bw, bh), interpolation=cv2.INTER_LINEAR)
        background = (texture[..., None] * 0.65 + tint * 0.35) * 235 + 10
        self._background = background.astype(np.uint8)
        for _ in range(40):  # hard edges: furniture, windows, text on a shelf
            x, y = int(rng.integers(0, bw)), int(rng.integers(0, bh))
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            size = int(rng.integers(height // 40, height // 6))
            if rng.random() < 0.5:
                cv2.rectangle(self._background, (x, y), (x + size, y + size // 2), color, -1)
            else:
                cv2.circle(self._background, (x, y), size // 2, color, 3, cv2.LINE_AA)
        self._object = (np.clip(_octave_noise(rng, height // 4, height // 4), 0, 1) * 200).astype(
            np.uint8
        )
        self._noise = [self._make_noise(rng) for _ in range(7)]

    def _make_noise(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        shape = (self.height, self.width, 3)
        noise = rng.normal(0, 1.8, shape).round().astype(np.int16)
        return np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)

    def frame(self, index: int) -> np.ndarray:
        t = index / 30.0
        pad = self._pad
        # a slow pan and a little hand shake
        dx = int(pad + pad * 0.8 * np.sin(t * 0.4) + 2 * np.sin(t * 7.1))
        dy = int(pad + pad * 0.5 * np.sin(t * 0.3 + 1) + 2 * np.cos(t * 5.3))
        image: np.ndarray = self._background[dy : dy + self.height, dx : dx + self.width].copy()
        size = self._object.shape[0]
        ox = int((self.width - size) * (0.5 + 0.45 * np.sin(t * 0.9)))
        oy = int((self.height - size) * (0.5 + 0.4 * np.sin(t * 1.3)))
        image[oy : oy + size, ox : ox + size, 1] = self._object
        plus, minus = self._noise[index % len(self._noise)]
        cv2.add(image, plus, dst=image)
        cv2.subtract(image, minus, dst=image)
        return image


def jpeg_size(image: np.ndarray, quality: int = 80) -> int:
    """Bytes of ``image`` as a JPEG at ``quality`` (OpenCV, as the server encodes)."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("cv2.imencode failed")
    return int(data.size)
