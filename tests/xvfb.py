"""A real X server for window tests: Xvfb on a free display, plus screenshots and keys.

::

    with xvfb_display() as display:          # ":57"; skips the test if Xvfb is missing
        env = {**os.environ, "DISPLAY": display}
        ...
        image = screenshot(display)          # BGR numpy array of the whole screen

Xvfb is started by PID and killed by that PID; nothing is killed by name.
Screenshots use ``xwd`` (parsed here, no ImageMagick needed) or, failing that,
ImageMagick's ``import``. Keys are sent with ``xdotool`` through XTEST, which
works without a window manager once the window has the input focus.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

SCREEN = (1280, 800)
_SOCKET_DIR = "/tmp/.X11-unix"


def _free_display_number(start: int = 57) -> int:
    for number in range(start, start + 200):
        taken = os.path.exists(f"/tmp/.X{number}-lock") or os.path.exists(
            f"{_SOCKET_DIR}/X{number}"
        )
        if not taken:
            return number
    raise RuntimeError("no free X display number between :57 and :256")


def _accepts_clients(display: str, deadline: float) -> bool:
    """The socket file appears at bind(), before listen(): wait until a client really connects."""
    probe = ["xdotool", "getdisplaygeometry"] if shutil.which("xdotool") else ["true"]
    env = {**os.environ, "DISPLAY": display}
    while time.monotonic() < deadline:
        if os.path.exists(f"{_SOCKET_DIR}/X{display[1:]}"):
            result = subprocess.run(probe, check=False, env=env, capture_output=True, timeout=10)
            if result.returncode == 0:
                return True
        time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def xvfb_display(timeout_s: float = 10.0) -> Iterator[str]:
    """Start ``Xvfb :N`` on a free N and yield ``":N"``; skip the test without Xvfb."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (Debian: apt-get install xvfb)")
    process: subprocess.Popen[bytes] | None = None
    number = 0
    for _attempt in range(3):  # another test run may grab the same number at once
        number = _free_display_number(57 + _attempt * 10)
        process = subprocess.Popen(
            [
                "Xvfb",
                f":{number}",
                "-screen",
                "0",
                f"{SCREEN[0]}x{SCREEN[1]}x24",
                "-nolisten",
                "tcp",
                # Without it the server resets whenever its last client leaves (as
                # between two tests), and a client arriving meanwhile is refused.
                "-noreset",
            ],
            stdout=subprocess.DEVNULL,
            # Not a pipe that nobody reads: once full, it would block the X server.
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while process.poll() is None and time.monotonic() < deadline:
            if os.path.exists(f"{_SOCKET_DIR}/X{number}"):
                break
            time.sleep(0.02)
        if process.poll() is None and _accepts_clients(f":{number}", deadline):
            break
        _stop(process)
        process = None
    if process is None:
        pytest.skip(f"Xvfb did not start within {timeout_s} s")
    try:
        yield f":{number}"
    finally:
        _stop(process)


def parse_xwd(data: bytes) -> np.ndarray:
    """A BGR image from an XWD dump (ZPixmap, 24/32 bits per pixel, TrueColor)."""
    fields = struct.unpack(">25I", data[:100])
    header_size, version, pixmap_format = fields[0], fields[1], fields[2]
    width, height = fields[4], fields[5]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    masks = fields[14:17]
    ncolors = fields[19]
    if version != 7 or pixmap_format != 2 or bits_per_pixel not in (24, 32):
        raise ValueError(
            f"unsupported XWD: version {version}, format {pixmap_format}, {bits_per_pixel} bpp"
        )
    offset = header_size + ncolors * 12
    step = bits_per_pixel // 8
    rows = np.frombuffer(data, np.uint8, bytes_per_line * height, offset).reshape(height, -1)
    raw = rows[:, : width * step].reshape(height, width, step)
    if step == 3:
        raw = np.concatenate([raw, np.zeros((height, width, 1), np.uint8)], axis=2)
    dtype = "<u4" if byte_order == 0 else ">u4"
    pixels = np.ascontiguousarray(raw).view(dtype)[..., 0]
    channels = []
    for mask in reversed(masks):  # blue, green, red
        shift = (mask & -mask).bit_length() - 1
        channels.append(((pixels & mask) >> shift).astype(np.uint8))
    return np.dstack(channels)


def screenshot(display: str) -> np.ndarray:
    """The whole screen of ``display`` as a BGR image."""
    env = {**os.environ, "DISPLAY": display}
    if shutil.which("xwd"):
        result = subprocess.run(
            ["xwd", "-root", "-silent", "-display", display],
            capture_output=True,
            timeout=20,
            check=True,
            env=env,
        )
        return parse_xwd(result.stdout)
    if shutil.which("import"):
        result = subprocess.run(
            ["import", "-display", display, "-window", "root", "png:-"],
            capture_output=True,
            timeout=20,
            check=True,
            env=env,
        )
        image = cv2.imdecode(np.frombuffer(result.stdout, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None, "ImageMagick import returned no PNG"
        return image
    pytest.skip("no screenshot tool (Debian: apt-get install x11-apps)")


def xdotool(display: str, *args: str, timeout_s: float = 10.0) -> str:
    """Run xdotool on ``display``; its stdout (``""`` when it finds nothing)."""
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed (Debian: apt-get install xdotool)")
    try:
        result = subprocess.run(
            ["xdotool", *args],
            capture_output=True,
            timeout=timeout_s,
            check=False,
            env={**os.environ, "DISPLAY": display},
        )
    except subprocess.TimeoutExpired:  # e.g. --sync waiting for a focus that never comes
        return ""
    return result.stdout.decode()


def press_key_until_exit(
    display: str, window: str, key: str, process: subprocess.Popen[str], attempts: int = 3
) -> int:
    """Focus ``window``, press ``key``, and return the exit code once ``process`` ends.

    The key is pressed again (up to ``attempts`` times, 5 s apart) if the process
    is still running: on a loaded machine the focus can arrive after the key.
    """
    for _ in range(attempts):
        xdotool(display, "windowfocus", "--sync", window)
        xdotool(display, "key", key)
        try:
            return process.wait(5)
        except subprocess.TimeoutExpired:
            continue
    raise AssertionError(f"pressing {key} {attempts} times did not end the window's process")


def find_window(
    display: str, name: str, timeout_s: float, size: tuple[int, int] | None = None
) -> tuple[str, tuple[int, int, int, int]]:
    """Wait for a visible window whose title matches ``name`` (and of ``size``, if given).

    Returns (id, (x, y, width, height)).
    """
    deadline = time.monotonic() + timeout_s
    seen: dict[str, tuple[int, ...]] = {}
    while True:
        for window_id in xdotool(display, "search", "--onlyvisible", "--name", name).split():
            geometry = dict(
                line.split("=", 1)
                for line in xdotool(display, "getwindowgeometry", "--shell", window_id).split()
                if "=" in line
            )
            box = tuple(int(geometry.get(k, 0)) for k in ("X", "Y", "WIDTH", "HEIGHT"))
            seen[window_id] = box
            if box[2] > 1 and box[3] > 1 and (size is None or box[2:] == size):
                return window_id, (box[0], box[1], box[2], box[3])
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"no visible window named {name!r} (size {size}) within {timeout_s} s; "
                f"saw (id: x, y, width, height) {seen or 'none'}"
            )
        time.sleep(0.1)
