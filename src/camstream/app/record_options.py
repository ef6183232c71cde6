"""The ``--record`` options of ``camstream serve`` and the ``camstream record`` command."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from typing import Any

from ..config import TOKEN_ENV, parse_address
from ..errors import CamstreamError, ConfigError, ConnectError
from ..recording.config import RecorderConfig
from ..recording.retention import RetentionPolicy

__all__ = [
    "add_record_command",
    "add_record_options",
    "record_command",
    "recorder_config_from_args",
]

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _bytes(text: str) -> int:
    """``500M``, ``20G``, ``1048576``: a size in bytes (binary units)."""
    value = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = value[-1:] if value[-1:] in _UNITS and not value[-1:].isdigit() else ""
    try:
        number = float(value[: len(value) - len(unit)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; give e.g. 500M or 20G") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the size must be above 0")
    return int(number * _UNITS[unit])


def _duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``12h``, ``7d``: seconds."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in _DURATION_UNITS else "s"
    number_text = value[:-1] if value[-1:] in _DURATION_UNITS else value
    try:
        number = float(number_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; give e.g. 90s, 15m, 7d"
        ) from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the duration must be above 0")
    return number * _DURATION_UNITS[unit]


def add_record_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "recording",
        "segments of MJPEG in Matroska, one folder per camera (needs camstream[record])",
    )
    g.add_argument("--record", metavar="DIR", help="record every camera into DIR/NAME/")
    g.add_argument(
        "--record-segment",
        type=_duration,
        default=60.0,
        metavar="T",
        help="length of one file, e.g. 60s or 5m (default 60s)",
    )
    g.add_argument(
        "--record-max-age", type=_duration, metavar="T", help="delete segments older, e.g. 7d"
    )
    g.add_argument(
        "--record-max-bytes",
        type=_bytes,
        metavar="SIZE",
        help="per camera, oldest deleted first, e.g. 20G",
    )
    g.add_argument(
        "--record-on-demand",
        action="store_true",
        help="record only when asked (camstream record start HOST/NAME, or the HTTP API)",
    )
    g.add_argument(
        "--prerecord",
        type=_duration,
        default=0.0,
        metavar="T",
        help="with --record-on-demand: keep the last T in memory to start each recording",
    )


def recorder_config_from_args(args: argparse.Namespace) -> RecorderConfig | None:
    if args.record is None:
        for flag, value in (
            ("--record-max-age", args.record_max_age),
            ("--record-max-bytes", args.record_max_bytes),
            ("--record-on-demand", args.record_on_demand or None),
            ("--prerecord", args.prerecord or None),
        ):
            if value is not None:
                raise ConfigError(f"{flag} needs --record DIR (where to record)")
        return None
    if args.prerecord and not args.record_on_demand:
        raise ConfigError("--prerecord only makes sense with --record-on-demand")
    return RecorderConfig(
        root_dir=args.record,
        segment_s=args.record_segment,
        continuous=not args.record_on_demand,
        prerecord_s=args.prerecord,
        retention=RetentionPolicy(
            max_age_s=args.record_max_age, max_total_bytes=args.record_max_bytes
        ),
    )


def add_record_command(sub: Any) -> None:
    # ``sub`` is argparse's sub-command action (a private type, generic in the parser class).
    record = sub.add_parser(
        "record",
        help="start or stop recording a camera on a server started with --record-on-demand",
        description="Switch a camera's on-demand recording on or off over HTTP.",
    )
    record.add_argument("action", choices=("start", "stop"))
    record.add_argument(
        "address", help="HOST[:PORT][/CAMERA], e.g. 127.0.0.1:8080/main (default camera: main)"
    )
    record.add_argument("--token", help=f"the server's token (or set ${TOKEN_ENV})")


def record_command(action: str, address: str, token: str | None) -> dict[str, object]:
    """POST the action to the server's API; the recorder's stats it answers with."""
    parsed = parse_address(address)
    token = token or parsed.token or os.environ.get(TOKEN_ENV) or None
    scheme = "https" if parsed.tls else "http"
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    camera = parsed.stream or "main"
    url = f"{scheme}://{host}:{parsed.port}/api/cams/{camera}/record"
    request = urllib.request.Request(  # noqa: S310 - the scheme is http(s), built above
        url,
        data=json.dumps({"action": action}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            answer: dict[str, object] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip()
        if exc.code == 401:
            detail = f"the server requires a token: pass --token TOKEN or set {TOKEN_ENV}"
        raise CamstreamError(f"{action} recording on {camera}: {detail}") from None
    except OSError as exc:
        raise ConnectError(f"cannot reach {scheme}://{host}:{parsed.port}: {exc}") from None
