"""A per-viewer delivery controller: how many bytes may be in flight to one viewer.

Pure: no sockets, no clock. Every method takes ``now_s`` (any monotonic clock in
seconds), so a simulated link drives it in tests exactly as a socket does in the
server.

The model (in the spirit of BBR, reasoned about whole frames instead of packets)
-------------------------------------------------------------------------------
A viewer's path has a bottleneck rate ``B`` (bytes/s) and a round-trip time
``R``. A frame of ``s`` bytes sent into an empty path is acknowledged after
``R + s/B``. To run at full rate the sender must keep about ``B * R`` bytes
(the bandwidth-delay product) in flight; everything beyond that waits in a
queue somewhere and only adds age. So:

* **Delivery rate** is sampled on every acknowledgement the way BBR's delivery
  rate estimator does it: bytes delivered over the interval since the frame was
  sent, measured from the previous delivery (``max(send_elapsed,
  ack_elapsed)``), so idle time before a send is not counted as slowness.
  :class:`~.rate.RateEstimator` keeps the windowed max and the full-pipe check.
* **Round trips** (min, smoothed, and whether a sample queued) are judged by
  :class:`~.path.PathModel`. A frame round trip includes the frame's own
  serialisation ``s/B``; kernel ``TCP_INFO`` samples are per packet.
* **A queue tells the truth.** A frame that queued behind our own earlier
  frames was sent into a busy path, so its rate sample *is* the bottleneck
  rate: confirmed over a frame interval, it replaces the max filter, which is
  how a bandwidth drop is seen within a frame or two instead of after the
  window expires. Better
  still, a frame whose ack is *overdue* (later than the measured link
  explains) holds the next frames back before its ack arrives.
* **A stalled rate tells the truth too**: held back by the window for two
  round trips without the rate growing, the pipe is full (BBR). While the rate
  still grows, a long link is merely opening its window. :attr:`link_limited`
  is true in either case; the tier chooser steps down only then, so a long
  link is not mistaken for a thin one while it starts.
* **Inflight limit** (:attr:`inflight_limit_bytes`) = ``rate * (bdp_gain *
  min_rtt + queue_frames / target_fps)``: about the bandwidth-delay product
  plus one frame time of queueing at the measured rate. :meth:`may_send`
  allows the next frame while the bytes in flight are within it (what ages a
  frame is the bytes queued *ahead* of it, not its own size; a size the link
  carries is the ladder's job), and always when nothing is in flight. So one
  frame more than the estimate's worth can be out, which lets the measured
  rate grow by a frame per round trip on a long link. A ``bdp_gain`` of 2
  (BBR's) opens a long link faster but doubles what a thin one queues after
  a bandwidth drop.
* **Before the first measurement** ``initial_window_frames`` frames may be in
  flight.

Acknowledgements are cumulative: acking a frame also acks every frame sent
before it (a TCP stream delivers in order). A frame not acknowledged within
``max(ack_timeout_min_s, 4 * smoothed RTT + inflight drain time)`` is declared
lost and leaves the books, so a stalled viewer cannot wedge the window, and at
most ``max_outstanding`` frames are tracked (bounded memory).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from ..errors import ConfigError
from .path import PathModel
from .rate import RateEstimator
from .tcpinfo import TcpInfo
from .tuning import ControllerConfig

__all__ = ["ControllerConfig", "DeliveryController"]


@dataclass(slots=True)
class _Sent:
    """One frame in flight and the delivery state when it left (for the rate sample)."""

    frame_id: int
    size: int
    sent_s: float
    delivered: int
    delivered_s: float
    first_sent_s: float
    app_limited: bool
    end_offset: int  # total bytes sent up to and including this frame
    ahead: int  # bytes in flight when it left


class DeliveryController:
    """Decides, for one viewer, whether the next frame may be sent now."""

    def __init__(self, config: ControllerConfig | None = None) -> None:
        self.config = config or ControllerConfig()
        self._target_fps = self.config.target_fps
        self._outstanding: deque[_Sent] = deque()
        self._inflight = 0
        self._sent_total = 0  # bytes handed to the transport
        self._delivered = 0  # bytes known delivered (acked, or left the kernel's books)
        self._delivered_s = 0.0
        self._first_sent_s = 0.0
        self._blocked = False  # may_send said no since the last send
        self._last_send_s: float | None = None
        self.rate = RateEstimator(self.config.rate_window_s, self.config.rate_window_rtts)
        self.path = PathModel()
        self.frames_sent = 0
        self.frames_acked = 0
        self.frames_lost = 0
        self.unknown_acks = 0

    # -- events in ---------------------------------------------------------------

    def on_frame_sent(self, frame_id: int, size_bytes: int, now_s: float) -> None:
        """A frame of ``size_bytes`` (everything written for it) was handed to the transport."""
        self._expire(now_s)
        if not self._outstanding:
            # Idle path: the next sample's interval starts now, not at the last ack.
            self._first_sent_s = self._delivered_s = now_s
        self._sent_total += size_bytes
        self._outstanding.append(
            _Sent(
                frame_id=frame_id,
                size=size_bytes,
                sent_s=now_s,
                delivered=self._delivered,
                delivered_s=self._delivered_s,
                first_sent_s=self._first_sent_s,
                app_limited=not self._blocked,
                end_offset=self._sent_total,
                ahead=self._inflight,
            )
        )
        self._inflight += size_bytes
        self._blocked = False
        self._last_send_s = now_s
        self.frames_sent += 1
        if len(self._outstanding) > self.config.max_outstanding:
            self._drop_oldest()

    def on_frame_acked(self, frame_id: int, now_s: float) -> None:
        """The viewer confirmed ``frame_id`` (and, cumulatively, every frame sent before it)."""
        if not any(sent.frame_id == frame_id for sent in self._outstanding):
            self.unknown_acks += 1  # late ack of a frame declared lost, or a confused peer
            return
        while True:
            acked = self._outstanding.popleft()
            self._settle(acked, now_s)
            if acked.frame_id == frame_id:
                break
        self._sample(acked, now_s, rtt_s=now_s - acked.sent_s)

    def on_transport_sample(
        self,
        now_s: float,
        *,
        rtt_s: float | None = None,
        min_rtt_s: float | None = None,
        delivery_rate_bps: float | None = None,
        rate_app_limited: bool = False,
        notsent_bytes: int | None = None,
        unacked_bytes: int | None = None,
        buffered_bytes: int = 0,
    ) -> None:
        """What the kernel says about an HTTP viewer's socket (Linux ``TCP_INFO``).

        ``notsent_bytes + unacked_bytes + buffered_bytes`` (``tcpi_notsent_bytes``,
        ``tcpi_unacked * tcpi_snd_mss``, and whatever still sits in the
        application's write buffer) is what has not reached the viewer yet; the
        rest of what :meth:`on_frame_sent` reported is delivered, which acks
        whole frames and gives whole-frame rate samples. ``delivery_rate_bps``
        is ``tcpi_delivery_rate`` (bytes/s) with its app-limited bit (only
        samples taken with a backlog are used); ``rtt_s``/``min_rtt_s`` are
        ``tcpi_rtt`` and ``tcpi_min_rtt``, per packet, used instead of frame
        round trips. Any of them may be ``None``. Call it about four times per
        round trip while waiting to send, and after each write has drained.
        """
        if min_rtt_s is not None and min_rtt_s > 0:
            self.path.set_kernel_min(min_rtt_s)
        queued = False
        if rtt_s is not None and rtt_s > 0:
            queued = self._rtt_sample(rtt_s, 0, None)
        if notsent_bytes is not None and unacked_bytes is not None:
            pending = max(0, notsent_bytes + unacked_bytes + buffered_bytes)
            delivered_offset = max(self._delivered, self._sent_total - pending)
            last: _Sent | None = None
            while self._outstanding and self._outstanding[0].end_offset <= delivered_offset:
                last = self._outstanding.popleft()
                self._settle(last, now_s)
            if last is not None:
                # Whole-frame rate samples, as for native acks; the round trip
                # is the kernel's (per packet), not this poll-quantised one.
                rtt = None if rtt_s else now_s - last.sent_s
                self._sample(last, now_s, rtt_s=rtt, queued=queued)
        if delivery_rate_bps and not rate_app_limited:
            # Only while the socket had a backlog: an app-limited kernel sample
            # spans a few packets of one frame and says what a burst got
            # through (a token bucket passes a small frame at line rate), not
            # what the link sustains.
            self._rate_sample(delivery_rate_bps, False, now_s, queued=queued)

    def on_tcp_info(self, info: TcpInfo, now_s: float, *, buffered_bytes: int = 0) -> None:
        """:meth:`on_transport_sample` from a decoded ``TCP_INFO`` (see :mod:`.tcpinfo`)."""
        self.on_transport_sample(
            now_s,
            rtt_s=info.rtt_s if info.rtt_s > 0 else None,
            min_rtt_s=info.min_rtt_s,
            delivery_rate_bps=info.delivery_rate_bps,
            rate_app_limited=info.delivery_rate_app_limited,
            notsent_bytes=info.notsent_bytes,
            unacked_bytes=info.unacked_bytes,
            buffered_bytes=buffered_bytes,
        )

    def set_target_fps(self, fps: float) -> None:
        """The frame rate the viewer is being served at (sets the queueing allowance)."""
        if not fps > 0:
            raise ConfigError(f"target fps must be positive, got {fps!r}")
        self._target_fps = fps

    # -- decisions out ----------------------------------------------------------

    def may_send(self, next_size_bytes: int, now_s: float) -> bool:
        """True if a frame of ``next_size_bytes`` may be sent now.

        Once the link is measured the answer depends on the bytes already in
        flight, not on ``next_size_bytes`` (see the module docstring); the size
        is part of the call so that callers pass what they are about to send
        and a size-aware policy (pacing) can use it without changing them.
        A ``False`` marks the sender as held back by the window, which makes
        the next rate sample count as a measurement of the link.
        """
        self._expire(now_s)
        max_fps = self.config.max_fps
        last = self._last_send_s
        # 5 % slack so a sender woken by a frame clock is not one frame late.
        if max_fps is not None and last is not None and now_s - last < 0.95 / max_fps:
            return False
        if self._inflight == 0:
            return True
        if self._overdue(now_s):
            self._blocked = True
            return False
        limit = self.inflight_limit_bytes
        if limit is None:
            ok = len(self._outstanding) < self.config.initial_window_frames
        else:
            # What delays the new frame is the bytes queued ahead of it, not its own size.
            ok = self._inflight <= limit
        if not ok:
            self._blocked = True
        return ok

    @property
    def inflight_limit_bytes(self) -> int | None:
        """Bytes allowed in flight, or ``None`` before the first measurement."""
        rate = self.delivery_rate_bps
        min_rtt = self.min_rtt_s
        if rate <= 0 or min_rtt is None:
            return None
        cfg = self.config
        bdp = cfg.bdp_gain * rate * min_rtt
        return math.ceil(bdp + rate * cfg.queue_frames / self._target_fps)

    @property
    def delivery_rate_bps(self) -> float:
        """Estimated bottleneck rate in bytes/s (0 before the first sample)."""
        return self.rate.value_bps

    @property
    def latest_rate_bps(self) -> float:
        """The newest delivery-rate sample in bytes/s (unfiltered)."""
        return self.rate.latest_bps

    @property
    def min_rtt_s(self) -> float | None:
        return self.path.min_rtt_s

    @property
    def smoothed_rtt_s(self) -> float | None:
        return self.path.srtt_s

    @property
    def queue_delay_s(self) -> float:
        """Queueing delay seen on the newest sample."""
        return self.path.queue_delay_s

    @property
    def link_limited(self) -> bool:
        """The link, not the sender, limits delivery: the rate estimate is the link's.

        True when samples queued at the bottleneck over at least a frame
        interval (a confirmed queue, see :mod:`.rate`), or when the sender has
        been held back by the window for two round trips in a row and the rate
        stopped growing (BBR's "full pipe": on a long link a growing rate means
        the window is still opening, not that the link is full).
        """
        return self.rate.congested or self.rate.stalled

    @property
    def bytes_in_flight(self) -> int:
        return self._inflight

    @property
    def frames_in_flight(self) -> int:
        return len(self._outstanding)

    def stats(self) -> dict[str, float | int | bool | None]:
        """What ``/status`` and the overlays show about this viewer's link."""
        return {
            "link_rate_bps": round(self.delivery_rate_bps),
            "min_rtt_ms": None if self.min_rtt_s is None else round(1000 * self.min_rtt_s, 1),
            "rtt_ms": None if self.smoothed_rtt_s is None else round(1000 * self.smoothed_rtt_s, 1),
            "queue_delay_ms": round(1000 * self.queue_delay_s, 1),
            "link_limited": self.link_limited,
            "bytes_in_flight": self.bytes_in_flight,
            "inflight_limit_bytes": self.inflight_limit_bytes,
            "frames_lost": self.frames_lost,
        }

    # -- internals ---------------------------------------------------------------

    def _settle(self, sent: _Sent, now_s: float) -> None:
        self._inflight -= sent.size
        self._delivered += sent.size
        self._delivered_s = now_s
        self.frames_acked += 1

    def _sample(
        self, sent: _Sent, now_s: float, *, rtt_s: float | None, queued: bool = False
    ) -> None:
        """BBR-style rate sample for the newest delivered frame, and its round trip."""
        send_elapsed = sent.sent_s - sent.first_sent_s
        ack_elapsed = now_s - sent.delivered_s
        self._first_sent_s = sent.sent_s
        interval = max(send_elapsed, ack_elapsed)
        if rtt_s is not None:
            queued = self._rtt_sample(rtt_s, sent.size, sent.ahead)
        if interval > 0:
            rate = (self._delivered - sent.delivered) / interval
            self._rate_sample(rate, sent.app_limited, now_s, queued=queued)
        self.rate.on_delivered(sent.delivered, self._delivered, sent.app_limited)

    def _rate_sample(self, rate: float, app_limited: bool, now_s: float, *, queued: bool) -> None:
        self.rate.sample(
            rate,
            now_s,
            app_limited=app_limited,
            queued=queued,
            srtt_s=self.path.srtt_s or 0.0,
            confirm_s=1 / self._target_fps,
        )

    def _queue_threshold_s(self) -> float:
        return max(
            self.config.min_queue_threshold_s,
            self.config.queue_threshold_frames / self._target_fps,
        )

    def _overdue(self, now_s: float) -> bool:
        """The oldest frame is later than the link as measured can explain.

        Its ack is not in yet, but its lateness already says the link got
        slower (or longer): sending more now would only queue behind it. This
        is what keeps a bandwidth drop from costing a window's worth of frames.
        """
        oldest = self._outstanding[0]
        return self.path.overdue(
            now_s - oldest.sent_s,
            oldest.size,
            oldest.ahead,
            rate_bps=self.delivery_rate_bps,
            threshold_s=self._queue_threshold_s(),
        )

    def _rtt_sample(self, rtt_s: float, size: int, ahead: int | None) -> bool:
        return self.path.sample(
            rtt_s,
            size,
            ahead=ahead,
            rate_bps=self.delivery_rate_bps,
            threshold_s=self._queue_threshold_s(),
        )

    def _expire(self, now_s: float) -> None:
        """Declare frames lost whose acknowledgement is overdue."""
        if not self._outstanding:
            return
        srtt = self.path.srtt_s or 0.0
        rate = self.delivery_rate_bps
        drain_s = self._inflight / rate if rate > 0 else 0.0
        timeout = max(self.config.ack_timeout_min_s, 4 * srtt + drain_s)
        while self._outstanding and now_s - self._outstanding[0].sent_s > timeout:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        lost = self._outstanding.popleft()
        self._inflight -= lost.size
        self.frames_lost += 1
