"""The client side: one session core, the threaded and asyncio clients, VideoCapture."""

from .aio import AsyncClient
from .threaded import Client
from .values import ClientStats, ReceivedFrame
from .videocapture import VideoCapture

__all__ = ["AsyncClient", "Client", "ClientStats", "ReceivedFrame", "VideoCapture"]
