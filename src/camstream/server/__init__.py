"""The server side: per-camera producer (capture, encode, hub) and the transports."""

from .server import Server

__all__ = ["Server"]
