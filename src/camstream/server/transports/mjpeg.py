"""MJPEG over HTTP: one ``multipart/x-mixed-replace`` response per viewer.

The JPEG bytes are the hub's shared frame: nothing is re-encoded per viewer.
Every body is followed at once by the next delimiter ``\r\n--BOUNDARY\r\n``,
so a part ends as soon as it is sent, not a frame interval later.

Two part layouts, because players and browsers need different things:

* **Complete parts** (the default: ffmpeg, VLC, cv2, the viewer page's own
  fetch()): each part starts with ``Content-Type``, ``Content-Length`` (FFmpeg's
  mpjpeg reader needs it), ``X-Timestamp`` (capture time, wall-clock seconds,
  as µStreamer sends it) and ``X-Frame-Seq``.
* **Advance headers** (a browser rendering the stream itself: ``<img src>`` or
  the URL opened in a tab). Chromium shows a part only once the *next* part's
  header block is complete (crbug 527446): the delimiter alone is not enough,
  the tests show it. So, as µStreamer does, the next part's headers
  (``Content-Type`` and the blank line) follow each body at once. Nobody knows
  the next frame's length or capture time yet, so these parts carry neither;
  an ``<img>`` exposes no part headers anyway. Chosen by ``Sec-Fetch-Dest``
  (``image``/``document``), or ``?advance_headers=1|0`` to force it.

Latest-frame-wins needs to know when the previous frame has really left.
``drain()`` only bounds Python's buffer; the kernel's send buffer could hold
seconds of video behind a slow link. So the socket gets a small ``SO_SNDBUF``
and ``TCP_NOTSENT_LOWAT`` (the kernel takes new bytes only while little is
unsent), and the transport pauses as soon as anything is left in Python's
buffer. The next frame is taken from the hub slot only after the previous part
has been handed to the kernel, so a slow reader skips frames instead of
queueing them, and it never delays anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from ...frame import Codec, Frame
from ..hub import Hub, Viewer
from .adaptive import POLL_S, ViewerDelivery
from .common import peer_name, server_full_message

__all__ = [
    "BOUNDARY",
    "CONTENT_TYPE",
    "NO_CACHE_HEADERS",
    "bound_bytes_in_flight",
    "frame_headers",
    "part_head",
    "serve_stream",
    "wants_advance_headers",
]

BOUNDARY: Final = "camstreamframe"
CONTENT_TYPE: Final = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
DELIMITER: Final = f"\r\n--{BOUNDARY}\r\n".encode()
# The body starts with the delimiter's dash line (the CRLF before it belongs to
# a previous part, and there is none).
PREAMBLE: Final = DELIMITER[2:]

NO_CACHE_HEADERS: Final = {
    "Cache-Control": "no-store, no-cache, must-revalidate, proxy-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
    # nginx buffers responses by default, which hides seconds of lag behind a
    # proxy (tinypilot#574); this asks it not to.
    "X-Accel-Buffering": "no",
}

# Linux's TCP_NOTSENT_LOWAT; the constant is missing from some Python builds.
_TCP_NOTSENT_LOWAT: Final = getattr(socket, "TCP_NOTSENT_LOWAT", 25)
# Enough unsent bytes to keep a few segments ready for the wire, far less than a
# frame: the kernel then accepts the next bytes only as the network drains.
NOTSENT_LOWAT_BYTES: Final = 16 * 1024
# With adaptive delivery the controller bounds bytes in flight; the send buffer
# only has to hold a long link's bandwidth-delay product.
ADAPTIVE_SEND_BUFFER_BYTES: Final = 4 * 1024 * 1024
# Sec-Fetch-Dest values of a browser that renders the stream itself.
_RENDERING_DESTS: Final = frozenset({"image", "document", "iframe", "embed", "object"})
# How often a stream that waits for frames checks whether its client has gone;
# with handler cancellation off, aiohttp does not wake the handler for that.
_GONE_CHECK_S: Final = 1.0


def frame_headers(frame: Frame) -> dict[str, str]:
    """The per-frame headers shared by stream parts and snapshots."""
    headers = {
        "Content-Type": frame.codec.mime_type,
        "Content-Length": str(len(frame.data)),
        "X-Timestamp": f"{frame.captured_at_ns / 1e9:.6f}",
        "X-Frame-Seq": str(frame.seq),
    }
    if frame.placeholder:
        headers["X-Frame-Placeholder"] = "1"
    return headers


def part_head(frame: Frame) -> bytes:
    """A part's header block; the delimiter before it was sent after the previous body."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in frame_headers(frame).items())
    return (lines + "\r\n").encode("ascii")


def wants_advance_headers(request: web.Request) -> bool:
    """True for a browser that renders the stream itself (see the module docstring)."""
    override = request.query.get("advance_headers")
    if override is not None:
        return override.lower() not in ("0", "false", "no", "off")
    dest = request.headers.get("Sec-Fetch-Dest")
    if dest is not None:
        return dest in _RENDERING_DESTS
    # Browsers from before Sec-Fetch-*: an <img> asks for images first.
    return request.headers.get("Accept", "").startswith("image/")


def bound_bytes_in_flight(transport: asyncio.Transport, send_buffer_bytes: int) -> None:
    """Make ``drain()`` mean "the previous frame has (nearly) left this machine".

    Failing socket options only weaken the bound (e.g. on non-Linux systems), so
    they are not errors.
    """
    # Over TLS this is still the raw TCP socket (asyncio's SSL transport passes
    # the query down), so the options apply to the ciphertext the kernel holds.
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
        with contextlib.suppress(OSError):
            lowat = min(NOTSENT_LOWAT_BYTES, send_buffer_bytes)
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT, lowat)
    if transport.get_extra_info("ssl_object") is None:
        # Pause (and so make drain() wait) whenever any byte is still in
        # Python's buffer; resume only when all of it is in the kernel.
        transport.set_write_buffer_limits(high=0, low=0)
        return
    # asyncio's SSL transport pauses at ``size >= high`` (a socket transport at
    # ``size > high``): high=0 would pause it with nothing buffered, and no
    # write would ever resume it, so drain() would hang for good. high=1 is
    # "pause while anything is buffered" there.
    transport.set_write_buffer_limits(high=1, low=0)
    # The ciphertext goes on to the TCP transport below, which buffers up to
    # 64 KiB before it pushes back; make it push back at once too, so over TLS
    # drain() also means "handed to the kernel". That transport is not public:
    # without it the bound is only looser, by that buffer.
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    if isinstance(inner, asyncio.WriteTransport):
        with contextlib.suppress(Exception):
            inner.set_write_buffer_limits(high=0, low=0)


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _next_frame(viewer: Viewer, request: web.Request) -> Frame | None:
    """The viewer's next frame, or ``None`` when the stream ended or the client left."""
    while True:
        try:
            return await asyncio.wait_for(viewer.next_frame(), _GONE_CHECK_S)
        except asyncio.TimeoutError:
            if _gone(request):
                return None


async def _pump(
    request: web.Request,
    response: web.StreamResponse,
    viewer: Viewer,
    *,
    hub: Hub,
    as_jpeg: Callable[[Frame], Awaitable[Frame]],
    delivery: ViewerDelivery | None,
    advance: bytes,
) -> None:
    """Parts until the stream ends or the client leaves; each is the newest frame."""
    transport = request.transport
    assert transport is not None
    while True:
        if delivery is not None:
            await _wait_turn(delivery, viewer, hub, request, transport)
        frame = await _next_frame(viewer, request)
        if frame is None:
            return
        frame = await as_jpeg(frame)  # itself, unless the stream is lossless PNG
        if delivery is not None:
            frame = await delivery.render(frame)  # this viewer's tier, shared
        sent = await _write_part(response, frame, advance)
        if delivery is not None:
            delivery.sent(frame, sent)
        await request.writer.drain()
        viewer.record_sent(frame, sent)


async def _write_part(response: web.StreamResponse, frame: Frame, advance: bytes) -> int:
    """One part (its head unless sent in advance, the JPEG, the delimiter); bytes written."""
    head = b"" if advance else part_head(frame)
    # Separate writes, no join: the JPEG is the shared frame and is not copied per viewer.
    if head:
        await response.write(head)
    await response.write(frame.data)
    await response.write(DELIMITER + advance)
    return len(head) + len(frame.data) + len(DELIMITER) + len(advance)


async def _wait_turn(
    delivery: ViewerDelivery,
    viewer: Viewer,
    hub: Hub,
    request: web.Request,
    transport: asyncio.BaseTransport,
) -> None:
    """Until the controller lets the next part go (or the client left)."""
    latest = viewer.peek() or hub.latest
    fallback = len(latest.data) if latest is not None else 64 * 1024
    delivery.sample_socket(transport)
    while not delivery.ready(fallback) and not _gone(request):
        # Sample about four times a round trip: the kernel's counters move with acks.
        rtt_s = delivery.controller.smoothed_rtt_s or 0.008
        await asyncio.sleep(min(POLL_S, max(0.002, rtt_s / 4)))
        delivery.sample_socket(transport)


async def serve_stream(
    request: web.Request,
    hub: Hub,
    *,
    as_jpeg: Callable[[Frame], Awaitable[Frame]],
    send_buffer_bytes: int,
    max_viewers: int,
    active: set[asyncio.Transport] | None = None,
    delivery: ViewerDelivery | None = None,
) -> web.StreamResponse:
    """Stream frames to one HTTP client until it leaves or the stream ends.

    Its transport is in ``active`` while it streams, so shutdown can find it.
    With ``delivery`` (adaptive), each part waits until the link can take it
    without a standing queue, judged from the socket's ``TCP_INFO``, and goes
    at the viewer's tier.
    """
    response = web.StreamResponse(
        headers={"Content-Type": CONTENT_TYPE, "Vary": "Sec-Fetch-Dest, Accept", **NO_CACHE_HEADERS}
    )
    if request.method == "HEAD":
        return response
    if hub.count() >= max_viewers:
        raise web.HTTPServiceUnavailable(
            text=server_full_message(max_viewers) + "\n",
            headers={"Retry-After": "5"},
        )
    transport = request.transport
    if transport is None:  # the client left before the handler ran
        return response
    if delivery is not None:
        # The controller bounds bytes in flight itself; a small send buffer would
        # cap a long link below the stream's rate (128 KiB per round trip).
        send_buffer_bytes = max(send_buffer_bytes, ADAPTIVE_SEND_BUFFER_BYTES)
    bound_bytes_in_flight(transport, send_buffer_bytes)
    viewer = hub.attach("http", peer_name(request.transport, request.remote or "?"))
    if delivery is not None:
        viewer.details = delivery.stats
    if active is not None:
        active.add(transport)
    try:
        await response.prepare(request)
        # aiohttp holds the response headers until the first body write; send
        # them with the preamble now, so players see a stream before the first
        # frame (capture may take a moment to wake).
        advance = b""  # the next part's header block, sent right after each body
        if wants_advance_headers(request):
            advance = f"Content-Type: {Codec.JPEG.mime_type}\r\n\r\n".encode()
        await response.write(PREAMBLE + advance)
        await _pump(
            request, response, viewer, hub=hub, as_jpeg=as_jpeg, delivery=delivery, advance=advance
        )
        if not _gone(request):
            await response.write_eof()
    except ConnectionError:
        # The client went away mid-part (ClientConnectionResetError is a
        # ConnectionResetError): only this connection is affected.
        pass
    finally:
        # Also on CancelledError (shutdown), which propagates.
        hub.detach(viewer)
        if active is not None:
            active.discard(transport)
    return response
