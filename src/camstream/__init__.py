"""camstream: live camera video from one machine to many, with latency that never grows.

The public API is what ``__all__`` lists; everything else may change::

    import camstream

    with camstream.Server(source="test", port=8080):          # or a camera index, file, URL,
        cap = camstream.VideoCapture("camstream://127.0.0.1:8080")  # iterable or callable
        ok, image = cap.read()                                 # BGR uint8, like cv2
        cap.release()
"""

from __future__ import annotations

from ._version import __version__
from .client import AsyncClient, Client, ClientStats, ReceivedFrame, VideoCapture
from .codec import decode
from .config import ClientConfig, ServerConfig
from .errors import (
    AddressInUseError,
    AuthenticationError,
    CamstreamError,
    CamstreamTimeoutError,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    DecodeError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    ServerFullError,
    SourceError,
    UsageError,
)
from .frame import Codec, Frame
from .server import Server
from .sources import Source

__all__ = [
    "AddressInUseError",
    "AsyncClient",
    "AuthenticationError",
    "CamstreamError",
    "CamstreamTimeoutError",
    "Client",
    "ClientConfig",
    "ClientStats",
    "Codec",
    "ConfigError",
    "ConnectError",
    "ConnectionClosed",
    "DecodeError",
    "Frame",
    "LocalProtocolError",
    "ProtocolError",
    "ReceivedFrame",
    "RemoteProtocolError",
    "Server",
    "ServerConfig",
    "ServerFullError",
    "Source",
    "SourceError",
    "UsageError",
    "VideoCapture",
    "__version__",
    "decode",
]
