"""One viewer's adaptive delivery, as the transports use it.

Glue between a transport's frame loop and the pure decision modules in
:mod:`camstream.delivery`: a :class:`~camstream.delivery.DeliveryController`
decides *when* the next frame may go (bytes in flight ≈ bandwidth x delay plus
one frame time), a :class:`~camstream.delivery.TierChooser` decides *which*
quality tier, and the camera's shared
:class:`~camstream.delivery.Renditions` encodes each tier of a frame once for
every viewer on it. The clock is the event loop's (``loop.time()``).

The native session feeds it with the client's per-frame acks; the MJPEG
handler with Linux ``TCP_INFO`` samples of its socket.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ...delivery import (
    ControllerConfig,
    DeliveryController,
    Overrides,
    Renditions,
    Tier,
    TierChooser,
)
from ...delivery.tcpinfo import TCP_INFO_BYTES, parse_tcp_info
from ...errors import ConfigError
from ...frame import Frame

__all__ = ["ViewerDelivery", "overrides_from_query"]

#: How long a frame loop waits for an ack (or a TCP_INFO change) before it asks again:
#: pacing, overdue acks and timeouts are decided by time too, not only by acks.
POLL_S = 0.02


class ViewerDelivery:
    """When the next frame may go to one viewer, and at which tier."""

    def __init__(
        self,
        *,
        ladder: tuple[Tier, ...],
        renditions: Renditions,
        source_fps: float,
        overrides: Overrides,
    ) -> None:
        self.renditions = renditions
        self.chooser = TierChooser(ladder, source_fps=source_fps or 30.0, overrides=overrides)
        self.controller = DeliveryController(
            ControllerConfig(target_fps=self.chooser.target_fps, max_fps=overrides.fps)
        )
        self._loop = asyncio.get_running_loop()

    def now(self) -> float:
        return self._loop.time()

    def ready(self, fallback_size: int) -> bool:
        """May the next frame go now? Also settles the tier it will go at."""
        now = self.now()
        controller = self.controller
        self.chooser.update(
            now,
            rate_bps=controller.delivery_rate_bps,
            link_limited=controller.link_limited,
            rtt_s=controller.smoothed_rtt_s,
        )
        expected = self.chooser.expected_bytes(self.chooser.index) or fallback_size
        return controller.may_send(int(expected), now)

    async def render(self, frame: Frame) -> Frame:
        """``frame`` at this viewer's tier: shared, encoded once per tier, off the loop."""
        tier = self.chooser.tier
        served = self.renditions.cached(frame, tier)
        if served is None:
            served = await asyncio.to_thread(self.renditions.get, frame, tier)
        self.chooser.observe_size(tier, len(served.data), source_size=(frame.width, frame.height))
        return served

    def sent(self, frame: Frame, nbytes: int) -> None:
        self.controller.on_frame_sent(frame.seq, nbytes, self.now())

    def acked(self, seq: int) -> None:
        self.controller.on_frame_acked(seq, self.now())

    def sample_socket(self, transport: asyncio.BaseTransport) -> None:
        """Feed the controller what the kernel knows of this connection (Linux)."""
        sock = transport.get_extra_info("socket")
        if sock is None or not hasattr(socket, "TCP_INFO"):
            return
        try:
            raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_BYTES)
        except OSError:
            return
        info = parse_tcp_info(raw)
        if info is not None:
            buffered = getattr(transport, "get_write_buffer_size", lambda: 0)()
            self.controller.on_tcp_info(info, self.now(), buffered_bytes=buffered)

    def stats(self) -> dict[str, Any]:
        """For ``/status`` and overlays: tier, link rate, round trip, queue."""
        stats: dict[str, Any] = {**self.controller.stats(), **self.chooser.stats()}
        stats["link_rate_mbit_s"] = round(8 * self.controller.delivery_rate_bps / 1e6, 2)
        return stats


def overrides_from_query(query: Mapping[str, str]) -> Overrides:
    """``?width=&quality=&fps=&adaptive=0`` as a viewer's limits; a bad value is a 400."""
    try:
        width = query.get("width")
        quality = query.get("quality")
        fps = query.get("fps")
        return Overrides(
            width=None if width is None else int(width),
            quality=None if quality is None else int(quality),
            fps=None if fps is None else float(fps),
            adaptive=query.get("adaptive", "1").lower() not in ("0", "false", "no", "off"),
        )
    except (ValueError, ConfigError) as exc:
        raise web.HTTPBadRequest(
            text=f"bad stream option: {exc}; use e.g. ?width=640&quality=60&fps=10&adaptive=0\n"
        ) from None
