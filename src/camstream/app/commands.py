"""What each ``camstream`` sub-command does, once its arguments are parsed.

Kept apart from :mod:`camstream.app.cli` so these functions can be called (and
tested) with ready-made config objects. They print progress; errors are raised
and :func:`camstream.app.cli.main` turns them into one line and an exit code.
"""

from __future__ import annotations

import os
import sys
import time

import cv2
import numpy as np

from ..client.threaded import Client
from ..codec import decode
from ..config import ClientConfig, ServerConfig, parse_address
from ..errors import CamstreamError, ConnectError
from ..frame import Codec
from ..server.server import Server
from .banner import banner
from .viewer import NO_DISPLAY_HINT, display_problem, run_headless, run_window

__all__ = ["banner", "demo", "serve", "snapshot", "view"]


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _warn(text: str) -> None:
    sys.stderr.write(f"camstream: warning: {text}\n")
    sys.stderr.flush()


def _server_warnings(config: ServerConfig, note: str | None) -> None:
    if note:
        _warn(note)
    if config.exposed and config.token is None:  # only with --allow-anonymous
        _warn(
            f"listening on {config.host} without --token (--allow-anonymous): anyone who "
            "can reach this port can watch. Set --token (or CAMSTREAM_TOKEN) to require a secret."
        )
    elif config.exposed and not config.tls:
        _warn(
            f"listening on {config.host} with a token but without TLS: browsers and players "
            "send the token in clear over HTTP, and the video travels unencrypted. "
            "Add --tls-cert/--tls-key on any network you do not fully trust."
        )


def _announce(server: Server) -> None:
    # Warnings come after the port is bound: a "port in use" error is then the
    # only message, not preceded by a note about the camera it has nothing to do with.
    _say(banner(server))
    _server_warnings(server.config, server.source_note)


def serve(source: str, config: ServerConfig) -> int:
    server = Server(source, config=config)
    server.serve_forever(on_ready=_announce)
    _say("camstream: stopped")
    return 0


def demo(source: str, config: ServerConfig) -> int:
    """Server and viewer in one process; without a display, serve and say how to watch."""
    problem = display_problem()
    if problem is not None:
        _warn(f"{problem}; serving only, without a viewer window. To watch, {NO_DISPLAY_HINT}")
        return serve(source, config)
    server = Server(source, config=config)
    with server:
        _announce(server)
        _say("Viewer window open: Esc or q closes it and stops the demo.")
        run_window(server.url, ClientConfig(token=config.token, tls_verify=False))
    _say("camstream: stopped")
    return 0


def view(
    address: str,
    config: ClientConfig,
    *,
    headless: bool = False,
    seconds: float | None = None,
    overlay: bool = True,
) -> int:
    parse_address(address)  # a typo fails before any window or thread exists
    if headless:
        report = run_headless(address, config, seconds=seconds, print_line=_say)
        median = "-" if report.median_age_ms is None else f"{report.median_age_ms:.1f} ms"
        _say(
            f"received {report.frames} frames in {report.seconds:.1f} s "
            f"({report.fps:.1f} fps), median age {median}, dropped {report.dropped}, "
            f"reconnects {report.reconnects}"
        )
        if report.ended is not None:
            _say(f"stream ended: {report.ended}")
        if report.frames == 0:
            raise ConnectError(f"no frames received from {address}")  # cli._error redacts
        return 0
    problem = display_problem()
    if problem is not None:
        sys.stderr.write(
            f"camstream: error: cannot open a window: {problem}. Instead, {NO_DISPLAY_HINT}.\n"
        )
        return 2
    code = run_window(address, config, seconds=seconds, overlay=overlay)
    _say("camstream: stopped")  # as serve says it: Esc, q, Ctrl-C or the window closed
    return code


def _imwrite(path: str, image: np.ndarray) -> bool:
    try:
        return bool(cv2.imwrite(path, image))
    except cv2.error:  # e.g. no writer for that extension
        return False


def snapshot(address: str, config: ClientConfig, output: str) -> int:
    with Client(address, config=config) as client:
        frame = client.read_frame(timeout_s=config.connect_timeout_s + 5)
    extension = os.path.splitext(output)[1].lower()
    native = {Codec.JPEG: (".jpg", ".jpeg"), Codec.PNG: (".png",)}[frame.codec]
    if extension in native:
        try:
            with open(output, "wb") as handle:  # the server's bytes as they are: no re-encode
                handle.write(frame.data)
        except OSError as exc:
            raise CamstreamError(
                f"could not write {output}: {exc.strerror}; check the folder exists "
                "and is writable, or pass another -o"
            ) from None
    elif not _imwrite(output, decode(frame.data, frame.codec)):
        raise CamstreamError(
            f"could not write {output}: use a .jpg or .png file name in a writable folder"
        )
    age_ms = (time.time_ns() - frame.captured_at_ns) / 1e6
    _say(f"saved {frame.width}x{frame.height} frame #{frame.seq} to {output} (age {age_ms:.0f} ms)")
    return 0
