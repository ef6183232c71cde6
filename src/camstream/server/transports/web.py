"""HTTP transport (aiohttp): the viewer page, MJPEG stream, snapshot, status, health.

Routes::

    GET /              the viewer page (static/index.html + app.js + app.css)
    GET /stream.mjpg   MJPEG for browsers, VLC, ffmpeg, cv2.VideoCapture (see mjpeg.py)
    GET /snapshot.jpg  the newest frame; wakes on-demand capture when it is idle
    GET /status        JSON: source, pipeline counters, every viewer (Server.status())
    GET /healthz       JSON: 200 while the source delivers, 503 with a reason otherwise

Every route serves the frames the hub already holds: HTTP viewers never cause
an extra encode. The page loads only files from this server; its
Content-Security-Policy says so, so a browser refuses anything else.

With a token (``ServerConfig.token``) the three routes that reveal video or
viewers (stream, snapshot, status) need it, as ``Authorization: Bearer TOKEN``
or ``?token=TOKEN``; anything else gets 401 with ``WWW-Authenticate``. The page
and its assets hold no video and stay open (the page asks for the token), and
``/healthz`` stays open for probes but then says only how the source is doing.
Prefer the header: a query string ends up in access logs and browser history.
Nothing here logs request URLs (the server turns aiohttp's access log off).

Every request first passes :func:`~.edge.request_guard`: a ``Host`` that does not
name this server gets 421 (DNS rebinding, see hosts.py), and a connection is
kept alive only after a request that showed the token (or, without a token,
asked for the stream, a snapshot or the status): a 401, ``/healthz``, a static
file or an error is answered with ``Connection: close``, so nobody holds a
connection slot by polling.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib.resources
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from ...config import ServerConfig
from ...delivery import Renditions
from ...frame import Codec, Frame
from ..hub import Hub
from .adaptive import ViewerDelivery, overrides_from_query
from .edge import guard_of, request_guard, server_header
from .jpeg_view import JpegView
from .mjpeg import NO_CACHE_HEADERS, frame_headers, serve_stream
from .recordings import RecordingCamera, add_recording_routes

__all__ = ["AUTH_FAILED_TEXT", "WebContext", "build_app", "fresh_frame", "health", "token_ok"]

# A snapshot younger than this is served as is; an older one means capture is
# idle (nobody watches) or slow, so a temporary viewer waits for a new frame.
SNAPSHOT_FRESH_S: Final = 0.5
SNAPSHOT_TIMEOUT_S: Final = 5.0
# With capture running, no new frame for this long means the source stalled.
STALL_AFTER_S: Final = 5.0
# How long shutdown waits for streams to end before cutting their connections.
SHUTDOWN_GRACE_S: Final = 1.0

_PAGE_HEADERS: Final = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Only this server's own files: the page loads nothing from the internet.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "img-src 'self' blob: data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
    ),
}
_STATIC_FILES: Final = {
    "/": ("index.html", "text/html"),
    "/app.js": ("app.js", "text/javascript"),
    "/app.css": ("app.css", "text/css"),
}

AUTH_FAILED_TEXT: Final = (
    "authentication failed: this server requires a token "
    "(Authorization: Bearer \N{HORIZONTAL ELLIPSIS} or ?token=\N{HORIZONTAL ELLIPSIS})"
)
_AUTH_HEADERS: Final = {
    "WWW-Authenticate": 'Bearer realm="camstream"',
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class WebContext:
    """What the HTTP routes need from the server that owns them."""

    config: ServerConfig
    hub: Hub
    status: Callable[[], dict[str, Any]]
    #: The camera's shared tiers for adaptive HTTP viewers (None: never adapted).
    renditions: Renditions | None = None
    #: The source's frame rate, the target for adaptive viewers.
    source_fps: Callable[[], float] = lambda: 30.0
    #: The camera called NAME, for the per-camera API (None: no such routes).
    find_camera: Callable[[str], RecordingCamera | None] | None = None


def _load_static(name: str) -> bytes:
    return (importlib.resources.files("camstream.server") / "static" / name).read_bytes()


def _static_handler(body: bytes, content_type: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type=content_type, headers=_PAGE_HEADERS)

    return handler


def _presented_token(request: web.Request) -> str | None:
    """The token the client sent: the ``Authorization: Bearer`` header, else ``?token=``."""
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    # Another scheme (a proxy's Basic auth, say) is not ours: fall back to the query.
    return request.query.get("token")


def token_ok(request: web.Request, token: str) -> bool:
    """Does ``request`` carry ``token``? Compared in constant time.

    A wrong token takes as long as a right one of the same length, so response
    times do not reveal how much of a guess was right.
    """
    presented = _presented_token(request)
    if presented is None:
        return False
    # surrogatepass: any str encodes, even one from a garbled header.
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogatepass"), token.encode("utf-8", "surrogatepass")
    )


def _require_token(token: str | None, handler: Handler, trusted: set[int]) -> Handler:
    """``handler``, behind ``token`` when one is configured.

    A request that passes is trusted (its ``id`` goes into ``trusted`` while it
    runs): its connection may stay open.
    """

    async def guarded(request: web.Request) -> web.StreamResponse:
        if token is not None and not token_ok(request, token):
            # A plain-text body; the page tells "missing" from "wrong" itself
            # (it knows whether it sent a token), so this says nothing more.
            raise web.HTTPUnauthorized(text=AUTH_FAILED_TEXT + "\n", headers=_AUTH_HEADERS)
        trusted.add(id(request))
        guard = guard_of(request)
        if guard is not None:
            guard.trust()
        return await handler(request)

    return guarded


async def fresh_frame(
    hub: Hub, address: str, *, timeout_s: float = SNAPSHOT_TIMEOUT_S
) -> tuple[Frame | None, str]:
    """The newest frame, waking on-demand capture if needed; else ``None`` and why.

    A temporary ``snapshot`` viewer makes the hub start capture (on-demand),
    and it is detached again whatever happens.
    """
    latest = hub.latest
    if latest is not None and hub.ended_reason is None and latest.age_s() <= SNAPSHOT_FRESH_S:
        return latest, ""
    viewer = hub.attach("snapshot", address, fresh_within_s=SNAPSHOT_FRESH_S)
    try:
        frame = await asyncio.wait_for(viewer.next_frame(), timeout_s)
    except asyncio.TimeoutError:
        return None, f"no frame from the source within {timeout_s:g} s"
    finally:
        hub.detach(viewer)
    if frame is None:
        return None, f"stream ended: {hub.ended_reason or 'server stopped'}"
    return frame, ""


def health(status: dict[str, Any], hub: Hub, config: ServerConfig) -> tuple[bool, dict[str, Any]]:
    """Judge the source from a status snapshot: ``(healthy, JSON body)``.

    With a token configured, anyone may ask, so the body is only ``{"ok": true,
    "state": "up"}`` (or ``false`` and ``"down"``): whether anyone watches
    (``idle``/``streaming``) or how old the newest frame is is nobody else's
    business. The status code still says healthy (200) or not (503).
    """
    latest = hub.latest
    age_s = latest.age_s() if latest is not None else None
    stall_s = STALL_AFTER_S
    if config.fps:  # a slow source (e.g. 0.1 fps) is not a stalled one
        stall_s = max(stall_s, 3.0 / config.fps)
    reason: str | None = None
    if hub.ended_reason is not None:
        state, reason = "ended", f"stream ended: {hub.ended_reason}"
    elif status.get("signal_lost") or (latest is not None and latest.placeholder):
        state, reason = "signal_lost", "signal lost: the source delivers no images"
    elif not status.get("capturing"):
        # On-demand capture sleeps while nobody watches; that is healthy.
        state = "idle"
    elif age_s is None:
        state = "starting"
    elif age_s > stall_s:
        state, reason = "stalled", f"no new frame for {age_s:.1f} s"
    else:
        state = "streaming"
    body = {
        "ok": reason is None,
        "state": state,
        "reason": reason,
        "source": status.get("source"),
        "latest_age_s": None if age_s is None else round(age_s, 3),
        "viewer_count": hub.count(),
    }
    if config.token is not None:
        # /healthz is open even when the server needs a token.
        body = {"ok": reason is None, "state": "up" if reason is None else "down"}
    return reason is None, body


def build_app(ctx: WebContext) -> web.Application:
    """The aiohttp application the server hands every non-native connection to."""
    trusted: set[int] = set()  # ids of the requests now running that showed the token
    app = web.Application(middlewares=[request_guard(ctx.config, trusted)])
    app.on_response_prepare.append(server_header)
    hub, config = ctx.hub, ctx.config
    streaming: set[asyncio.Transport] = set()
    as_jpeg = JpegView(config.quality)

    async def stream(request: web.Request) -> web.StreamResponse:
        delivery = None
        if ctx.renditions is not None and config.codec is Codec.JPEG and config.adaptive:
            delivery = ViewerDelivery(
                ladder=config.ladder_tiers,
                renditions=ctx.renditions,
                source_fps=ctx.source_fps(),
                overrides=overrides_from_query(request.query),
            )
        return await serve_stream(
            request,
            hub,
            as_jpeg=as_jpeg,
            send_buffer_bytes=config.http_send_buffer_bytes,
            max_viewers=config.max_viewers,
            active=streaming,
            delivery=delivery,
        )

    async def end_streams(app: web.Application) -> None:
        # The server ends the hub before shutting the app down, so streams
        # finish by themselves; one blocked on a client that stopped reading
        # would hold shutdown for aiohttp's whole timeout, so it is cut.
        for _ in range(int(SHUTDOWN_GRACE_S / 0.05)):
            if not streaming:
                return
            await asyncio.sleep(0.05)
        for transport in list(streaming):
            transport.abort()

    async def snapshot(request: web.Request) -> web.StreamResponse:
        frame, reason = await fresh_frame(hub, request.remote or "?")
        if frame is None:
            raise web.HTTPServiceUnavailable(text=reason + "\n", headers={"Retry-After": "2"})
        return _frame_response(await as_jpeg(frame))

    async def snapshot_png(request: web.Request) -> web.StreamResponse:
        if config.codec is not Codec.PNG:
            raise web.HTTPNotFound(
                text="this server streams JPEG; lossless snapshots need `camstream serve --png`"
                " (use /snapshot.jpg)\n"
            )
        frame, reason = await fresh_frame(hub, request.remote or "?")
        if frame is None:
            raise web.HTTPServiceUnavailable(text=reason + "\n", headers={"Retry-After": "2"})
        return _frame_response(frame)

    def _frame_response(frame: Frame) -> web.Response:
        headers = {**frame_headers(frame), **NO_CACHE_HEADERS}
        del headers["Content-Length"]  # aiohttp sets it from the body
        return web.Response(body=frame.data, headers=headers)

    async def status(request: web.Request) -> web.StreamResponse:
        return web.json_response(ctx.status(), headers=NO_CACHE_HEADERS)

    async def healthz(request: web.Request) -> web.StreamResponse:
        healthy, body = health(ctx.status(), hub, config)
        return web.json_response(body, status=200 if healthy else 503, headers=NO_CACHE_HEADERS)

    for path, (name, content_type) in _STATIC_FILES.items():
        app.router.add_get(path, _static_handler(_load_static(name), content_type))
    app.router.add_get("/stream.mjpg", _require_token(config.token, stream, trusted))
    app.router.add_get("/snapshot.jpg", _require_token(config.token, snapshot, trusted))
    app.router.add_get("/snapshot.png", _require_token(config.token, snapshot_png, trusted))
    app.router.add_get("/status", _require_token(config.token, status, trusted))
    app.router.add_get("/healthz", healthz)
    if ctx.find_camera is not None:
        add_recording_routes(
            app,
            config=config,
            find_camera=ctx.find_camera,
            guard=lambda handler: _require_token(config.token, handler, trusted),
            as_jpeg=as_jpeg,
        )
    app.on_shutdown.append(end_streams)
    return app
