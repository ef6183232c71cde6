"""The ``camstream`` command: serve, view, snapshot, demo.

This is the only place that prints errors and chooses exit codes: 0 success,
1 a runtime failure (e.g. the server could not be reached), 2 a usage, config or
source problem, 130 interrupted. The library only raises.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from .._version import __version__
from ..config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    TOKEN_ENV,
    ClientConfig,
    ServerConfig,
    redact,
)
from ..errors import (
    AddressInUseError,
    AuthenticationError,
    CamstreamError,
    ConfigError,
    ConnectError,
    SourceError,
)
from ..frame import Codec
from . import commands
from .delivery_options import (
    add_server_delivery_options,
    add_viewer_delivery_options,
    client_delivery_options,
    server_delivery_options,
)
from .record_options import (
    add_record_command,
    add_record_options,
    record_command,
    recorder_config_from_args,
)

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that names the fix, then exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_in(low: int, high: int, meaning: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number; give {meaning} from {low} to {high}"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{value} is out of range; give {meaning} from {low} to {high}"
            )
        return value

    parse.__name__ = meaning  # argparse names the type in some messages
    return parse


def _float_from(low: float, meaning: str, *, inclusive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; give {meaning}") from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"{text} is out of range; give {meaning}")
        return value

    parse.__name__ = meaning
    return parse


_fps = _float_from(0, "frames per second, 0 or more (0 = as fast as possible)", inclusive=True)
_seconds = _float_from(0, "a number of seconds above 0", inclusive=False)


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "address",
        nargs="?",
        default=f"{DEFAULT_HOST}:{DEFAULT_PORT}",
        help="HOST[:PORT] or camstream://HOST:PORT (camstreams:// for TLS); "
        f"default {DEFAULT_HOST}:{DEFAULT_PORT}",
    )
    parser.add_argument(
        "--token", help=f"shared secret if the server requires one (or set ${TOKEN_ENV})"
    )
    parser.add_argument("--tls-ca", metavar="PEM", help="CA file to verify the server's TLS cert")
    parser.add_argument(
        "--insecure", action="store_true", help="TLS without verifying the certificate"
    )
    parser.add_argument(
        "--timeout", type=_seconds, default=5.0, metavar="S", help="connect timeout (default 5)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="camstream",
        description="Live camera video over the network with latency that never grows.",
        epilog="Start with: camstream demo   (or: camstream serve, then camstream view)",
    )
    parser.add_argument("--version", action="version", version=f"camstream {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    serve = sub.add_parser(
        "serve",
        help="stream a camera, file, URL or test pattern",
        description="Stream a source to native viewers (camstream view) and browsers, on one port.",
    )
    _add_server_options(serve)

    demo = sub.add_parser(
        "demo",
        help="serve the test pattern (or camera) and open a viewer window on it",
        description="Start a server and a viewer in one process. Without a display, "
        "serves and prints how to watch.",
    )
    _add_server_options(demo)

    view = sub.add_parser(
        "view",
        help="watch a stream in an OpenCV window (Esc or q quits)",
        description="Connect to a camstream server and show the newest frame every 10 ms.",
    )
    _add_client_options(view)
    view.add_argument("--no-overlay", action="store_true", help="hide the fps/latency overlay")
    view.add_argument("--headless", action="store_true", help="no window: print live stats instead")
    view.add_argument(
        "--seconds",
        type=_seconds,
        metavar="N",
        help="stop after N seconds (default: run until Esc/Ctrl-C)",
    )
    view.add_argument("--no-reconnect", action="store_true", help="exit when the server goes")
    add_viewer_delivery_options(view)

    snap = sub.add_parser(
        "snapshot", help="save one frame to a file", description="Save the newest frame."
    )
    _add_client_options(snap)
    snap.add_argument(
        "-o", "--output", default="frame.jpg", help="output image (.jpg/.png), default frame.jpg"
    )
    add_record_command(sub)
    return parser


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("source")
    g.add_argument(
        "--source",
        default="auto",
        help="camera index (0), device (/dev/video0), video file, rtsp:// or http:// URL, "
        "'test' (moving test pattern) or 'auto' (camera 0, else test pattern; default)",
    )
    g.add_argument(
        "--width",
        type=_int_in(16, 16384, "a width in pixels"),
        help="capture width (test pattern default 1280)",
    )
    g.add_argument(
        "--height",
        type=_int_in(16, 16384, "a height in pixels"),
        help="capture height (test pattern default 720)",
    )
    g.add_argument("--fps", type=_fps, help="capture rate; 0 = as fast as possible")
    g.add_argument("--loop", action="store_true", help="loop a video file at its end")
    g.add_argument(
        "--always-capture",
        action="store_true",
        help="keep capturing while nobody watches (default: capture on demand)",
    )
    e = parser.add_argument_group("encoding")
    e.add_argument(
        "--quality",
        type=_int_in(1, 100, "a JPEG quality"),
        default=80,
        help="JPEG quality 1-100 (default 80)",
    )
    e.add_argument(
        "--png",
        type=_int_in(0, 9, "a PNG compression level"),
        nargs="?",
        const=1,
        metavar="LEVEL",
        help="lossless PNG instead of JPEG, compression 0-9 (default 1)",
    )
    e.add_argument(
        "--encode-workers",
        type=_int_in(1, 16, "a number of encoder threads"),
        default=1,
        help="parallel encoder threads (default 1)",
    )
    add_server_delivery_options(parser)
    n = parser.add_argument_group("network")
    n.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}; 0.0.0.0 exposes it to the network)",
    )
    n.add_argument(
        "--port",
        type=_int_in(0, 65535, "a TCP port"),
        default=DEFAULT_PORT,
        help=f"default {DEFAULT_PORT}; 0 picks a free port (the banner shows which)",
    )
    n.add_argument(
        "--max-viewers",
        type=_int_in(1, 100_000, "a viewer limit"),
        default=64,
        help="default 64",
    )
    n.add_argument(
        "--max-connections-per-address",
        type=_int_in(1, 100_000, "a connection limit"),
        default=32,
        metavar="N",
        help="open connections one client address may hold, loopback included (default 32; "
        "raise it behind a reverse proxy, whose connections all come from one address)",
    )
    n.add_argument("--token", help=f"require this shared secret (or set ${TOKEN_ENV})")
    n.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="serve without a token on a non-loopback --host (anyone who can reach the "
        "port can watch); refused otherwise",
    )
    n.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="answer HTTP requests for this host name too (repeatable; * for any). "
        "Loopback, the --host address and this machine's addresses are always answered; "
        "other names get 421 (a defence against DNS rebinding)",
    )
    n.add_argument("--tls-cert", metavar="PEM", help="TLS certificate (native and HTTPS)")
    n.add_argument("--tls-key", metavar="PEM", help="TLS private key")
    add_record_options(parser)


def server_config_from_args(args: argparse.Namespace) -> ServerConfig:
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    return ServerConfig(
        host=args.host,
        port=args.port,
        codec=Codec.PNG if args.png is not None else Codec.JPEG,
        quality=args.quality,
        png_compression=1 if args.png is None else args.png,
        width=args.width,
        height=args.height,
        fps=args.fps,
        loop=args.loop,
        always_capture=args.always_capture,
        encode_workers=args.encode_workers,
        max_viewers=args.max_viewers,
        token=token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        record=recorder_config_from_args(args),
        **server_delivery_options(args),
        allow_anonymous=args.allow_anonymous,
        allowed_hosts=tuple(args.allowed_host),
        max_connections_per_address=args.max_connections_per_address,
    )


def client_config_from_args(args: argparse.Namespace, *, reconnect: bool = True) -> ClientConfig:
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    return ClientConfig(
        token=token,
        tls_ca=args.tls_ca,
        tls_verify=not args.insecure,
        connect_timeout_s=args.timeout,
        reconnect=reconnect,
        **client_delivery_options(args),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit code (argparse exits 2 itself on bad usage)."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # name the sub-command whose --help lists the valid options
        _parser_for(parser, args.command).error(f"unrecognized arguments: {' '.join(extras)}")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    # FFmpeg (inside OpenCV) prints its own line for every failed URL open; our
    # error already says what went wrong. Read when FFmpeg is first used.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (CamstreamError, TimeoutError) as exc:
        return _report(exc)


def _report(exc: BaseException) -> int:
    """One line on stderr that says what to do, and the exit code for ``exc``."""
    if isinstance(exc, (ConfigError, SourceError, AddressInUseError)):
        _error(str(exc))
        return EXIT_USAGE
    if isinstance(exc, AuthenticationError):
        # The library's words name its API (token=...); say it in the command's terms.
        if exc.token_sent:
            _error(f"{exc}: check --token or {TOKEN_ENV}")
        else:
            _error(f"this server requires a token: pass --token TOKEN or set {TOKEN_ENV}")
    elif isinstance(exc, ConnectError):
        _error(f"{exc}. Is `camstream serve` running there, on that port?")
    else:
        _error(str(exc) or type(exc).__name__)
    return EXIT_FAILURE


def _parser_for(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    # argparse offers no public way to get a sub-command's parser back.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            sub: argparse.ArgumentParser = action.choices[command]
            return sub
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    if args.command in ("serve", "demo"):
        server_config = server_config_from_args(args)
        if args.command == "demo":
            return commands.demo(args.source, server_config)
        return commands.serve(args.source, server_config)
    if args.command == "record":
        stats = record_command(args.action, args.address, args.token)
        state = "recording" if stats.get("recording") else "not recording"
        sys.stdout.write(f"camstream: {state} into {stats.get('directory')}\n")
        return 0
    if args.command == "view":
        return commands.view(
            args.address,
            client_config_from_args(args, reconnect=not args.no_reconnect),
            headless=args.headless,
            seconds=args.seconds,
            overlay=not args.no_overlay,
        )
    return commands.snapshot(
        args.address, client_config_from_args(args, reconnect=False), args.output
    )


def _error(message: str) -> None:
    # Messages quote addresses as the user typed them: never print a ?token=.
    sys.stderr.write(f"camstream: error: {redact(message)}\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
