"""Small helpers every transport shares: closing, naming peers, sniffing, refusals."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final, Literal

from ...wire.protocol import MAGIC

__all__ = [
    "CLOSE_GRACE_S",
    "abort_quietly",
    "close_gently",
    "peer_name",
    "server_full_message",
    "sniff",
]

#: How long a connection we are closing may take to flush before it is cut.
CLOSE_GRACE_S: Final = 1.0


def close_gently(transport: asyncio.BaseTransport, grace_s: float = CLOSE_GRACE_S) -> None:
    """Close after flushing, but abort if the peer does not read within ``grace_s``.

    ``transport.close()`` alone waits for the write buffer to drain, forever if
    the peer never reads: that would leak the socket.
    """
    if transport.is_closing():
        return
    transport.close()
    asyncio.get_running_loop().call_later(grace_s, abort_quietly, transport)


def abort_quietly(transport: asyncio.BaseTransport) -> None:
    """Abort ``transport``; a no-op if it is already closed."""
    if isinstance(transport, asyncio.Transport):
        with contextlib.suppress(Exception):
            transport.abort()


def peer_name(transport: asyncio.BaseTransport | None, fallback: str = "?") -> str:
    """``host:port`` of the peer, for logs and ``/status``."""
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return fallback if peer is None else str(peer)


def server_full_message(max_viewers: int) -> str:
    """The one wording of "server full", for native goodbyes and HTTP 503 alike."""
    return f"server full: {max_viewers} viewers already connected; try again later"


def sniff(first_bytes: bytes) -> Literal["native", "http", "undecided"]:
    """Which protocol a connection speaks, from its first bytes (``CS`` is native)."""
    if first_bytes.startswith(MAGIC):
        return "native"
    if len(first_bytes) >= len(MAGIC) or not MAGIC.startswith(first_bytes):
        return "http"
    return "undecided"
