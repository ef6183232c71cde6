"""HTTP transport (aiohttp): MJPEG stream, snapshot, status. Minimal first cut."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..config import ServerConfig
from ..hub import Hub

__all__ = ["WebContext", "build_app"]

BOUNDARY = "camstreamframe"


@dataclass(frozen=True)
class WebContext:
    config: ServerConfig
    hub: Hub
    status: Callable[[], dict[str, Any]]


def build_app(ctx: WebContext) -> web.Application:
    app = web.Application()

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def status(request: web.Request) -> web.Response:
        return web.json_response(ctx.status())

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}"}
        )
        await response.prepare(request)
        peer = request.remote or "?"
        viewer = ctx.hub.attach("http", peer)
        try:
            while True:
                frame = await viewer.next_frame()
                if frame is None:
                    break
                head = (
                    f"--{BOUNDARY}\r\nContent-Type: {frame.codec.mime_type}\r\n"
                    f"Content-Length: {len(frame.data)}\r\n\r\n"
                ).encode()
                await response.write(head + frame.data + b"\r\n")
                viewer.record_sent(frame, len(head) + len(frame.data) + 2)
        finally:
            ctx.hub.detach(viewer)
        return response

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", status)
    app.router.add_get("/stream.mjpg", stream)
    return app
