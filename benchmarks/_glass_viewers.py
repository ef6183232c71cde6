"""The viewers that ``glass.py`` measures: command lines with placeholders, and who runs them.

Rows without ``experiment=True`` are the default set: every viewer camstream
advertises, launched as the README/banner print it and with low-latency flags,
plus ``cv2.imshow`` of ``camstream.VideoCapture`` and the seed's client. The
experiments are other flags and schedules, run with ``--experiments`` or by name.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCH_USER = "camstream-bench"
CHROMIUM_FLAGS = [  # as tests/conftest.py uses them, but a real window, not --headless
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
    "--no-default-browser-check",
    "--password-store=basic",
    "--window-position=0,0",
    "--window-size=1300,860",
]


@dataclass(frozen=True)
class Viewer:
    name: str
    argv: tuple[str, ...]  # {url} {http} {address} {port} {python} {clients} filled in
    server: str = "camstream"  # or "seed"
    user: str | None = None  # run as this user (VLC refuses root)
    experiment: bool = False  # run only when named, or with --experiments
    env: tuple[tuple[str, str], ...] = ()  # added to the viewer's environment

    def command(self, port: int, profile: str) -> list[str]:
        fields = {
            "url": f"http://127.0.0.1:{port}/stream.mjpg",
            "http": f"http://127.0.0.1:{port}/",
            "address": f"127.0.0.1:{port}",
            "port": str(port),
            "python": sys.executable,
            "clients": str(HERE / "_glass_clients.py"),
            "profile": profile,
        }
        return [part.format(**fields) for part in self.argv]


VIEWERS = [
    Viewer("camstream-view", ("{python}", "-m", "camstream", "view", "{address}")),
    Viewer(
        "chromium",
        ("chromium", *CHROMIUM_FLAGS, "--user-data-dir={profile}", "--app={http}"),
    ),
    Viewer("ffplay-readme", ("ffplay", "-f", "mpjpeg", "{url}")),
    Viewer("ffplay-wallclock", ("ffplay", "-use_wallclock_as_timestamps", "1", "{url}")),
    Viewer(
        "ffplay-lowdelay",
        (
            "ffplay",
            *("-fflags", "nobuffer", "-flags", "low_delay", "-framedrop"),
            *("-use_wallclock_as_timestamps", "1", "-f", "mpjpeg", "{url}"),
        ),
    ),
    Viewer("vlc-readme", ("vlc", "{url}"), user=BENCH_USER),
    Viewer("vlc-caching-100", ("vlc", "--network-caching=100", "{url}"), user=BENCH_USER),
    Viewer("vlc-caching-50", ("vlc", "--network-caching=50", "{url}"), user=BENCH_USER),
    Viewer("videocapture-imshow", ("{python}", "{clients}", "videocapture", "{port}")),
    Viewer("seed", ("{python}", "{clients}", "seed", "{port}"), server="seed"),
    # experiments: other player flags, and schedules for camstream view's loop
    Viewer(
        "ffplay-nobuffer",
        ("ffplay", "-fflags", "nobuffer", "-use_wallclock_as_timestamps", "1", "{url}"),
        experiment=True,
    ),
    Viewer(
        "ffplay-sync-ext",
        (
            "ffplay",
            *("-fflags", "nobuffer", "-flags", "low_delay", "-framedrop", "-sync", "ext"),
            *("-use_wallclock_as_timestamps", "1", "{url}"),
        ),
        experiment=True,
    ),
    Viewer(  # Xvfb has no GPU: SDL's default OpenGL renderer runs on the CPU (llvmpipe)
        "ffplay-wallclock-swrender",
        ("ffplay", "-use_wallclock_as_timestamps", "1", "{url}"),
        env=(("SDL_RENDER_DRIVER", "software"),),
        experiment=True,
    ),
    Viewer(
        "ffplay-lowdelay-swrender",
        (
            "ffplay",
            *("-fflags", "nobuffer", "-flags", "low_delay", "-framedrop"),
            *("-use_wallclock_as_timestamps", "1", "-f", "mpjpeg", "{url}"),
        ),
        env=(("SDL_RENDER_DRIVER", "software"),),
        experiment=True,
    ),
    Viewer(
        "ffplay-probe0",
        (
            "ffplay",
            *("-fflags", "nobuffer", "-flags", "low_delay", "-framedrop"),
            *("-probesize", "32", "-analyzeduration", "0"),
            *("-use_wallclock_as_timestamps", "1", "-f", "mpjpeg", "{url}"),
        ),
        experiment=True,
    ),
    Viewer(  # Xvfb has no GPU: VLC's default OpenGL output renders on the CPU (llvmpipe)
        "vlc-caching-100-x11",
        ("vlc", "--network-caching=100", "--vout=xcb_x11", "{url}"),
        user=BENCH_USER,
    ),
    Viewer("vlc-readme-x11", ("vlc", "--vout=xcb_x11", "{url}"), user=BENCH_USER, experiment=True),
    Viewer(
        "vlc-caching-30", ("vlc", "--network-caching=30", "{url}"), user=BENCH_USER, experiment=True
    ),
    Viewer(
        "vlc-caching-300",
        ("vlc", "--network-caching=300", "{url}"),
        user=BENCH_USER,
        experiment=True,
    ),
    Viewer(
        "vlc-caching-0", ("vlc", "--network-caching=0", "{url}"), user=BENCH_USER, experiment=True
    ),
    Viewer(
        "vlc-caching-100-jitter-0",
        ("vlc", "--network-caching=100", "--clock-jitter=0", "{url}"),
        user=BENCH_USER,
        experiment=True,
    ),
    Viewer(
        "vlc-caching-50-synchro-0",
        ("vlc", "--network-caching=50", "--clock-synchro=0", "{url}"),
        user=BENCH_USER,
        experiment=True,
    ),
    Viewer("view-poll10", ("{python}", "{clients}", "poll10", "{port}"), experiment=True),
    Viewer("view-wait10", ("{python}", "{clients}", "wait10", "{port}"), experiment=True),
]
BY_NAME = {viewer.name: viewer for viewer in VIEWERS}
