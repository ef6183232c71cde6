"""camstream: live camera video from one machine to many, with latency that never grows."""

from __future__ import annotations

from .errors import (
    AddressInUseError,
    AuthenticationError,
    CamstreamError,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    ServerFullError,
    SourceError,
)
from .frame import Codec, Frame

__version__ = "0.1.0"
