"""The adaptive-delivery options of ``camstream serve`` and ``camstream view``."""

from __future__ import annotations

import argparse
from typing import Any

from ..delivery import DEFAULT_LADDER_SPEC

__all__ = [
    "add_server_delivery_options",
    "add_viewer_delivery_options",
    "client_delivery_options",
    "server_delivery_options",
]


def add_server_delivery_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "adaptive delivery",
        "per viewer: as many frames as its link carries, never a standing queue (docs/delivery.md)",
    )
    g.add_argument(
        "--adaptive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="step each viewer down the quality ladder when its link cannot carry the "
        "stream, and back up when it can (default: on; --no-adaptive sends every "
        "viewer the full stream within its credit window)",
    )
    g.add_argument(
        "--ladder",
        default=DEFAULT_LADDER_SPEC,
        metavar="SPEC",
        help="tiers, best first: 'full', a scale like 1/2, or WIDTHxHEIGHT, each with "
        f"@QUALITY (default {DEFAULT_LADDER_SPEC})",
    )


def add_viewer_delivery_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("quality", "ask the server for less than the full stream")
    g.add_argument("--max-width", type=int, metavar="PX", help="at most this wide (a fixed tier)")
    g.add_argument("--quality", type=int, metavar="Q", help="JPEG quality 1-100 (a fixed tier)")
    g.add_argument("--max-fps", type=float, metavar="FPS", help="at most this many frames/s")
    g.add_argument(
        "--fixed",
        action="store_true",
        help="never adapt to the link: the full stream (or your --max-width/--quality)",
    )


def server_delivery_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"adaptive": args.adaptive, "ladder": args.ladder}


def client_delivery_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "max_width": getattr(args, "max_width", None),
        "quality": getattr(args, "quality", None),
        "max_fps": getattr(args, "max_fps", None),
        "adaptive": not getattr(args, "fixed", False),
    }
