"""Adaptive delivery: per-viewer rate control and a quality ladder.

* :mod:`.controller`: how many bytes may be in flight to one viewer
  (:class:`DeliveryController`), fed by acks or ``TCP_INFO``.
* :mod:`.ladder`: the tiers a frame can be served at and the per-viewer
  :class:`TierChooser` that moves between them.
* :mod:`.renditions`: encode each tier of a frame at most once, shared by all
  viewers on it.
* :mod:`.tcpinfo`: decode Linux ``TCP_INFO`` for HTTP viewers.

All decision logic is pure (clock injected), so it is tested on a simulated
link; the transports own the sockets and the clock.
"""

from __future__ import annotations

from .controller import ControllerConfig, DeliveryController
from .ladder import (
    DEFAULT_LADDER_SPEC,
    Overrides,
    Tier,
    TierChooser,
    default_ladder,
    parse_ladder,
)
from .renditions import Renditions
from .tcpinfo import TcpInfo, parse_tcp_info

__all__ = [
    "DEFAULT_LADDER_SPEC",
    "ControllerConfig",
    "DeliveryController",
    "Overrides",
    "Renditions",
    "TcpInfo",
    "Tier",
    "TierChooser",
    "default_ladder",
    "parse_ladder",
    "parse_tcp_info",
]
