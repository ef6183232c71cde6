"""What ``camstream serve`` prints at start-up: every way to watch, as commands that run.

Each command is printed so that pasting it works as shown: the ``camstream``
command is named the way this shell can find it (``.venv/bin/camstream`` when it
is not on ``PATH``), and a server bound to every interface lists the addresses
other machines can use, not only 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import shutil
import socket
import sys
from urllib.parse import quote

import psutil

from ..frame import Codec
from ..server.server import Server

__all__ = ["FFPLAY_LIVE", "VLC_LIVE", "banner", "camstream_command", "reachable_hosts"]

#: ffplay in real time: frames timed by their arrival, no input buffering, late ones dropped.
FFPLAY_LIVE = (
    "ffplay -fflags nobuffer -flags low_delay -framedrop -use_wallclock_as_timestamps 1 -f mpjpeg"
)
#: VLC with a 100 ms network cache instead of its default 1 s.
VLC_LIVE = "vlc --network-caching=100"

_WILDCARDS = ("0.0.0.0", "::", "")


def camstream_command() -> str:
    """How to run ``camstream`` from this shell: the name if PATH finds it, else a path."""
    on_path = shutil.which("camstream")
    script = sys.argv[0] if sys.argv else ""
    if os.path.basename(script) == "camstream" and os.path.isfile(script):
        if on_path and os.path.realpath(on_path) == os.path.realpath(script):
            return "camstream"
        relative = os.path.relpath(script)
        shown = relative if not relative.startswith("..") else os.path.abspath(script)
        if os.sep not in shown:
            shown = os.path.join(".", shown)
        return shlex.quote(shown)
    if on_path:
        return "camstream"
    return f"{shlex.quote(sys.executable)} -m camstream"


def reachable_hosts(bind_host: str) -> list[str]:
    """Addresses other machines can use to reach a server bound to ``bind_host``.

    A wildcard bind lists this machine's non-loopback addresses (IPv4 first, then
    global IPv6 for ``::``); any other bind is reachable only at its own address.
    """
    if bind_host not in _WILDCARDS:
        return [bind_host]
    families = (socket.AF_INET, socket.AF_INET6) if bind_host == "::" else (socket.AF_INET,)
    found: list[str] = []
    for family in families:
        for entries in psutil.net_if_addrs().values():
            for entry in entries:
                if entry.family != family:
                    continue
                address = entry.address.split("%", 1)[0]
                ip = ipaddress.ip_address(address)
                if ip.is_loopback or ip.is_link_local or address in found:
                    continue
                found.append(address)
    return found


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def banner(server: Server) -> str:
    """The start-up text: what is served, and one runnable command per way to watch."""
    c = server.config
    cmd = camstream_command()
    encoding = "PNG (lossless)" if c.codec is Codec.PNG else f"JPEG q{c.quality}"
    native_scheme = "camstreams" if c.tls else "camstream"
    http_scheme = "https" if c.tls else "http"
    here = server.url
    page = server.http_url
    lines = [
        f"camstream serving {server.source.description} as {encoding}",
        f"  native viewer : {cmd} view {here}",
    ]
    if c.token is not None:
        # The fragment never reaches a server or its logs; the page takes it from there.
        lines.append(f"  browser       : {page}#token={quote(c.token, safe='')}")
    else:
        lines.append(f"  browser       : {page}")
    stream = f"{page}stream.mjpg"
    lines.append(f"  MJPEG stream  : {stream}  (cv2.VideoCapture, any MJPEG player)")
    # Players as printed must keep up with a live stream (benchmarks/glass.py): ffplay
    # guesses 25 fps for MJPEG parts without wall-clock times and falls behind a 30 fps
    # stream; VLC buffers a whole second of any network stream by default.
    lines.append(f"  ffplay        : {FFPLAY_LIVE} {stream}")
    lines.append(f"  VLC           : {VLC_LIVE} {stream}")
    if c.codec is Codec.PNG:
        # Players need JPEG parts; lossless frames go over the native protocol.
        lines.append(
            f"                  JPEG q{c.quality} for players; lossless: {page}snapshot.png"
        )
    lines.append(f"  status        : {page}status")
    if c.token is not None:
        lines.append("  authentication: token required (viewers pass --token or CAMSTREAM_TOKEN)")
    if c.host in _WILDCARDS:
        others = reachable_hosts(c.host)
        if others:
            lines.append("  from other machines:")
            for host in others:
                where = _host_port(host, server.port)
                lines.append(
                    f"    {cmd} view {native_scheme}://{where}    {http_scheme}://{where}/"
                )
        else:
            lines.append("  from other machines: no network address found on this machine")
    lines += [
        "  no display?",
        f"    {cmd} view --headless {here}",
        f"    {cmd} snapshot {here} -o frame.jpg",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)
