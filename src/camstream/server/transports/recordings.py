"""The recordings API: list, download, start/stop, and replay through the same server.

::

    GET  /api/cams/NAME/recordings            JSON: every segment (start, end, size, url)
    GET  /api/cams/NAME/recordings/SEGMENT    the Matroska file (range requests work)
    POST /api/cams/NAME/record                {"action": "start" | "stop"} (on demand)
    GET  /api/cams/NAME/replay?start=ISO      MJPEG at the recording's own timing

Every route needs the server's token when it has one. A server reachable
beyond this machine with no token refuses ``POST``: anyone could switch its
recording on or off. Replayed JPEGs are the recorded bytes: nothing is re-encoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from ...config import ServerConfig
from ...errors import ConfigError
from ...frame import Frame
from ...recording.recorder import Recorder
from ..hub import Hub
from .mjpeg import serve_stream

__all__ = ["RecordingCamera", "add_recording_routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RecordingCamera(Protocol):
    """A camera as these routes see it (a :class:`~camstream.server.producer.Producer`)."""

    name: str
    recorder: Recorder | None

    def set_recording(self, on: bool) -> None: ...


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).isoformat()


class _Routes:
    def __init__(
        self,
        config: ServerConfig,
        find_camera: Callable[[str], RecordingCamera | None],
        as_jpeg: Callable[[Frame], Awaitable[Frame]],
    ) -> None:
        self.config = config
        self.find_camera = find_camera
        self.as_jpeg = as_jpeg

    def recorder_of(self, request: web.Request) -> tuple[RecordingCamera, Recorder]:
        name = request.match_info["name"]
        camera = self.find_camera(name)
        if camera is None:
            raise web.HTTPNotFound(text=f"no camera named {name!r} on this server\n")
        if camera.recorder is None:
            raise web.HTTPConflict(
                text=f"camera {name} does not record: start the server with --record DIR\n"
            )
        return camera, camera.recorder

    async def listing(self, request: web.Request) -> web.StreamResponse:
        camera, recorder = self.recorder_of(request)
        segments = await asyncio.to_thread(recorder.segments)
        base = f"/api/cams/{camera.name}/recordings/"
        body = [
            {
                "name": info.name,
                "start": _iso(info.start_ns),
                "end": _iso(info.end_ns),
                "size_bytes": info.size_bytes,
                "frames": info.frames,
                "url": base + info.name,
            }
            for info in segments
        ]
        return web.json_response({"camera": camera.name, "segments": body})

    async def download(self, request: web.Request) -> web.StreamResponse:
        _, recorder = self.recorder_of(request)
        # Only a name the recorder lists maps to a path: never a path from the URL.
        path = recorder.segment_path(request.match_info["segment"])
        if path is None:
            raise web.HTTPNotFound(text="no such recording segment\n")
        return web.FileResponse(path, headers={"Content-Type": "video/x-matroska"})

    async def record(self, request: web.Request) -> web.StreamResponse:
        if self.config.token is None and self.config.exposed:
            raise web.HTTPForbidden(
                text="this server is reachable from other machines and has no token: "
                "start it with --token to control recording over HTTP\n"
            )
        camera, recorder = self.recorder_of(request)
        try:
            action = json.loads(await request.text() or "{}").get("action")
        except (ValueError, AttributeError):
            action = None
        if action not in ("start", "stop"):
            raise web.HTTPBadRequest(text='send {"action": "start"} or {"action": "stop"}\n')
        camera.set_recording(action == "start")
        return web.json_response(recorder.stats())

    async def replay(self, request: web.Request) -> web.StreamResponse:
        _, recorder = self.recorder_of(request)
        from ...recording.replay import ReplaySource  # noqa: PLC0415 - needs PyAV

        try:
            source = ReplaySource(recorder.directory, start=request.query.get("start"))
        except (ConfigError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n") from None
        # One reader thread per replay, feeding a private hub: the viewer gets
        # the newest recorded frame, paced as recorded, like a live camera.
        hub = Hub()
        loop = asyncio.get_running_loop()
        stop = threading.Event()

        def pump() -> None:
            try:
                with source:
                    while not stop.is_set() and (frame := source.read_frame()) is not None:
                        loop.call_soon_threadsafe(hub.publish, frame)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is gone
                    loop.call_soon_threadsafe(hub.end, "end of recording")

        reader = threading.Thread(target=pump, name="camstream-replay", daemon=True)
        reader.start()
        try:
            return await serve_stream(
                request,
                hub,
                as_jpeg=self.as_jpeg,
                send_buffer_bytes=self.config.http_send_buffer_bytes,
                max_viewers=self.config.max_viewers,
            )
        finally:
            stop.set()
            source.interrupt()
            await asyncio.to_thread(reader.join, 5.0)


def add_recording_routes(
    app: web.Application,
    *,
    config: ServerConfig,
    find_camera: Callable[[str], RecordingCamera | None],
    guard: Callable[[Handler], Handler],
    as_jpeg: Callable[[Frame], Awaitable[Frame]],
) -> None:
    """Register the routes above; ``guard`` wraps a handler behind the token."""
    routes = _Routes(config, find_camera, as_jpeg)
    for method, path, handler in (
        ("GET", "/api/cams/{name}/recordings", routes.listing),
        ("GET", "/api/cams/{name}/recordings/{segment}", routes.download),
        ("POST", "/api/cams/{name}/record", routes.record),
        ("GET", "/api/cams/{name}/replay", routes.replay),
    ):
        app.router.add_route(method, path, guard(handler))
