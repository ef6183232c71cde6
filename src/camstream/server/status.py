"""The JSON document behind ``GET /status`` and :meth:`camstream.Server.status`."""

from __future__ import annotations

from typing import Any

from .._version import __version__
from ..config import ServerConfig
from ..sources import Source
from .capture import CapturePipeline
from .hub import Hub

__all__ = ["camera_status", "server_status", "vars_of"]


def vars_of(stats: object) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in stats.__slots__}  # type: ignore[attr-defined]


def server_status(
    *, config: ServerConfig, uptime_s: float, connections: int, camera: dict[str, Any]
) -> dict[str, Any]:
    """The server's own fields followed by its camera's (see :func:`camera_status`)."""
    return {
        "server": config.server_name,
        "version": __version__,
        "uptime_s": round(uptime_s, 3),
        **camera,
        "connections": connections,
    }


def camera_status(
    *,
    config: ServerConfig,
    source: Source,
    pipeline: CapturePipeline,
    hub: Hub,
    capturing: bool,
) -> dict[str, Any]:
    """A JSON-ready snapshot of one camera: its source, pipeline and every viewer."""
    stats = pipeline.stats
    latest = hub.latest
    viewers = [vars_of(v.stats()) for v in hub.viewers]
    return {
        "source": source.description,
        "codec": config.codec.name.lower(),
        "quality": config.quality,
        "width": latest.width if latest else None,
        "height": latest.height if latest else None,
        "capturing": capturing,
        "signal_lost": pipeline.signal_lost,
        "ended": hub.ended_reason,
        "capture_fps": round(stats.capture_fps, 2),
        "encode_fps": round(stats.encode_fps, 2),
        "publish_fps": round(hub.published.rate(), 2),
        "images_captured": stats.images_captured,
        "frames_encoded": stats.frames_encoded,
        "images_dropped_before_encode": stats.images_dropped,
        "frames_published": hub.frames_published,
        "source_failures": stats.source_failures,
        "last_encode_ms": round(stats.last_encode_ms, 3),
        "latest_seq": latest.seq if latest else None,
        "latest_age_s": round(latest.age_s(), 4) if latest else None,
        "viewer_count": len(viewers),
        "viewers": viewers,
    }
