"""Decode Linux ``struct tcp_info`` (``getsockopt(IPPROTO_TCP, TCP_INFO)``) for HTTP viewers.

Pure: bytes in, a value out. The caller does the syscall::

    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_BYTES)
    info = parse_tcp_info(raw)
    if info is not None:
        controller.on_tcp_info(info, now_s)

Offsets follow ``include/uapi/linux/tcp.h``; fields newer than the running
kernel are absent from a shorter struct and come back as ``None``
(``tcpi_notsent_bytes``/``tcpi_min_rtt`` since 4.6, ``tcpi_delivery_rate`` 4.9).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

__all__ = ["TCP_INFO_BYTES", "TcpInfo", "parse_tcp_info"]

#: Ask for this many bytes; the kernel returns what it has.
TCP_INFO_BYTES: Final = 232

# state, ca_state, retransmits, probes, backoff, options, wscale, flags
_HEAD = struct.Struct("=8B")
_SND_MSS_AT: Final = 16
_UNACKED_AT: Final = 24
_RTT_AT: Final = 68  # tcpi_rtt, tcpi_rttvar (µs)
_SND_CWND_AT: Final = 80
_BYTES_ACKED_AT: Final = 120
_NOTSENT_AT: Final = 144  # tcpi_notsent_bytes, tcpi_min_rtt (µs)
_DELIVERY_RATE_AT: Final = 160
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")


@dataclass(frozen=True, slots=True)
class TcpInfo:
    """The ``tcp_info`` fields delivery control uses; times in seconds, rates in bytes/s."""

    state: int
    snd_mss: int
    unacked_segments: int
    rtt_s: float
    rttvar_s: float
    snd_cwnd: int
    bytes_acked: int | None
    notsent_bytes: int | None
    min_rtt_s: float | None
    delivery_rate_bps: float | None
    delivery_rate_app_limited: bool

    @property
    def unacked_bytes(self) -> int:
        """Bytes sent and not yet acknowledged (segments * MSS: an upper bound)."""
        return self.unacked_segments * self.snd_mss


def _u32(raw: bytes, offset: int) -> int | None:
    if len(raw) < offset + 4:
        return None
    value: int = _U32.unpack_from(raw, offset)[0]
    return value


def _u64(raw: bytes, offset: int) -> int | None:
    if len(raw) < offset + 8:
        return None
    value: int = _U64.unpack_from(raw, offset)[0]
    return value


def parse_tcp_info(raw: bytes) -> TcpInfo | None:
    """Decode ``raw``; ``None`` if it is too short to hold even the RTT (not Linux?)."""
    if len(raw) < _SND_CWND_AT + 4:
        return None
    flags = _HEAD.unpack_from(raw, 0)
    min_rtt_us = _u32(raw, _NOTSENT_AT + 4)
    delivery_rate = _u64(raw, _DELIVERY_RATE_AT)
    return TcpInfo(
        state=flags[0],
        snd_mss=_U32.unpack_from(raw, _SND_MSS_AT)[0],
        unacked_segments=_U32.unpack_from(raw, _UNACKED_AT)[0],
        rtt_s=_U32.unpack_from(raw, _RTT_AT)[0] / 1e6,
        rttvar_s=_U32.unpack_from(raw, _RTT_AT + 4)[0] / 1e6,
        snd_cwnd=_U32.unpack_from(raw, _SND_CWND_AT)[0],
        bytes_acked=_u64(raw, _BYTES_ACKED_AT),
        notsent_bytes=_u32(raw, _NOTSENT_AT),
        min_rtt_s=None if not min_rtt_us else min_rtt_us / 1e6,
        delivery_rate_bps=None if not delivery_rate else float(delivery_rate),
        # tcpi_delivery_rate_app_limited is bit 0 of the eighth byte.
        delivery_rate_app_limited=bool(flags[7] & 1),
    )
