"""The one error tree of camstream.

Every exception the library raises on purpose derives from :class:`CamstreamError`.
The library raises; only the command line (``camstream.app.cli``) prints and exits.

::

    CamstreamError
    ├── ConfigError            an option has a bad value (also a ValueError)
    ├── SourceError            a camera, file or URL cannot be opened or read
    ├── DecodeError            received image bytes are not a valid picture
    ├── ProtocolError          bytes on the wire broke the protocol
    │   ├── LocalProtocolError     we were about to send something invalid (a bug)
    │   └── RemoteProtocolError    the peer sent malformed or unexpected bytes (carries
    │                              the goodbye code to answer with)
    ├── ConnectError           the server cannot be reached (refused, timeout, DNS)
    ├── ConnectionClosed       the peer ended the session (carries its reason)
    │   ├── AuthenticationError    the token was missing or wrong
    │   └── ServerFullError        the server is at its viewer limit
    ├── AddressInUseError      another process holds the listening port
    ├── CamstreamTimeoutError  nothing arrived in time (also a built-in TimeoutError)
    └── UsageError             the API was used in the wrong order (also a RuntimeError),
                               e.g. reading from a client that was never opened

Catching ``CamstreamError`` catches all of them, timeouts included.
"""

from __future__ import annotations

__all__ = [
    "AddressInUseError",
    "AuthenticationError",
    "CamstreamError",
    "CamstreamTimeoutError",
    "ConfigError",
    "ConnectError",
    "ConnectionClosed",
    "DecodeError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "ServerFullError",
    "SourceError",
    "UsageError",
]


class CamstreamError(Exception):
    """Base class of every error camstream raises on purpose."""


class ConfigError(CamstreamError, ValueError):
    """An option has a value camstream cannot use; the message says which and why."""


class SourceError(CamstreamError):
    """A video source cannot be opened or read."""


class DecodeError(CamstreamError):
    """Encoded image bytes could not be decoded (corrupt or truncated)."""


class ProtocolError(CamstreamError):
    """The byte stream does not follow docs/protocol.md."""


class LocalProtocolError(ProtocolError):
    """This side tried to send something the protocol forbids (a programming error)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent malformed or out-of-order bytes. Only that connection is affected.

    ``code`` is the goodbye code to answer with (docs/protocol.md, "Goodbye codes");
    2 (``PROTOCOL_ERROR``) unless a more specific code says what is wrong.
    """

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class ConnectError(CamstreamError):
    """The server could not be reached."""


class ConnectionClosed(CamstreamError):
    """The peer ended the session; ``code`` and ``reason`` come from its goodbye."""

    def __init__(self, reason: str, code: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class AuthenticationError(ConnectionClosed):
    """The server rejected our token (or we sent none and it requires one).

    ``token_sent`` tells the two apart, so a front end can say what to do.
    """

    def __init__(self, reason: str, code: int = 0, *, token_sent: bool = True) -> None:
        super().__init__(reason, code)
        self.token_sent = token_sent


class ServerFullError(ConnectionClosed):
    """The server already serves its maximum number of viewers."""


class AddressInUseError(CamstreamError):
    """Another process really holds the port we were asked to listen on."""


class CamstreamTimeoutError(CamstreamError, TimeoutError):
    """Nothing arrived within the time asked for (a frame, a connection)."""


class UsageError(CamstreamError, RuntimeError):
    """The API was used in the wrong order, e.g. reading before ``open()``."""
