"""Frozen, validated settings. The CLI and the library build the same objects.

A bad value raises :class:`~camstream.errors.ConfigError` naming the option and
the fix; nothing is silently clamped or skipped.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from .delivery.tiers import DEFAULT_LADDER_SPEC, Tier, parse_ladder
from .errors import ConfigError
from .frame import Codec
from .recording.config import RecorderConfig

__all__ = [
    "DEFAULT_PORT",
    "ClientConfig",
    "ServerConfig",
    "StreamAddress",
    "parse_address",
    "redact",
]

DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
#: What a camera name may look like: it appears in URLs, subjects and file names.
STREAM_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
TOKEN_ENV = "CAMSTREAM_TOKEN"  # noqa: S105 - the variable's name, not a secret


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")
# ``token=VALUE`` in a query string or URL, up to the next separator.
_TOKEN_IN_TEXT = re.compile(r"(token=)[^&#\s'\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every ``token=VALUE`` replaced by ``token=***``.

    Addresses reach error messages, window titles and logs as the user typed
    them, ``?token=`` included; everything that shows one goes through here.
    """
    return _TOKEN_IN_TEXT.sub(r"\1***", text)


def ip_or_none(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an IP address (IPv4-mapped IPv6 as IPv4), else ``None``."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normalise_host(name: str) -> str:
    """Lower case, no brackets, no trailing dot (``localhost.`` is ``localhost``)."""
    name = name.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name[:-1] if name.endswith(".") else name


def check_allowed_host(entry: str) -> str:
    """Validate one ``--allowed-host`` entry; return it normalised, or raise ConfigError."""
    if entry.strip() == "*":
        return "*"
    name = normalise_host(entry)
    address = ip_or_none(name)
    if address is not None:
        return str(address)
    if not name or not set(name) <= _HOST_CHARS or ".." in name or name.startswith("."):
        raise ConfigError(
            f"allowed host {entry!r} is not a host name or IP address; give a name such "
            "as camera.example.org or an address such as 192.168.1.50 (no scheme, port "
            "or path), or * for any"
        )
    return name


def _is_loopback_host(host: str) -> bool:
    name = normalise_host(host)
    address = ip_or_none(name)
    if address is None:
        return name == "localhost" or name.endswith(".localhost")
    return address.is_loopback


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value!r}")


def _check_positive(name: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Everything ``camstream serve`` / :class:`camstream.Server` can be told."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    codec: Codec = Codec.JPEG
    quality: int = 80
    png_compression: int = 1
    width: int | None = None
    height: int | None = None
    fps: float | None = None  # None: the source's own rate; 0: as fast as possible
    loop: bool = False
    always_capture: bool = False
    capture_linger_s: float = 1.0  # keep capturing this long after the last viewer leaves
    encode_workers: int = 1
    max_viewers: int = 64
    credit_window_max: int = 32  # a safety cap; the delivery controller decides below it
    token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    handshake_timeout_s: float = 5.0
    heartbeat_interval_s: float = 1.0
    heartbeat_timeout_s: float = 5.0
    max_payload_bytes: int = 32 * 1024 * 1024
    http_send_buffer_bytes: int = 128 * 1024  # bounds bytes in flight
    server_name: str = "camstream"
    # Recording (needs camstream[record]): a directory, or a full RecorderConfig.
    # Each camera records into DIR/NAME; see docs/recording.md.
    record: RecorderConfig | str | None = None
    # Adaptive delivery (docs/delivery.md): per viewer, send as many frames as the
    # link carries without a standing queue, stepping down the ladder (best first)
    # when it cannot carry the current tier at the source's rate.
    adaptive: bool = True
    ladder: str = DEFAULT_LADDER_SPEC
    # Host headers answered besides loopback and the bound address (DNS rebinding).
    allowed_hosts: tuple[str, ...] = ()
    # Serve beyond this machine without a token only when asked to explicitly.
    allow_anonymous: bool = False
    # Open connections one peer address may hold (loopback included).
    max_connections_per_address: int = 32
    # Longest an HTTP write (a response, one MJPEG part) may wait for the peer to read.
    write_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.codec, Codec):
            object.__setattr__(self, "codec", parse_codec(str(self.codec)))
        self._check_record()
        parse_ladder(self.ladder, quality=self.quality)  # ConfigError names the bad entry
        _check_range("port", self.port, 0, 65535)
        _check_range("quality", self.quality, 1, 100)
        _check_range("png_compression", self.png_compression, 0, 9)
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None:
                _check_range(name, value, 1, 16384)
        if self.fps is not None and self.fps < 0:
            raise ConfigError(f"fps must be positive (0: as fast as possible), got {self.fps!r}")
        if self.capture_linger_s < 0:
            raise ConfigError("capture_linger_s must not be negative")
        _check_range("encode_workers", self.encode_workers, 1, 16)
        _check_range("max_viewers", self.max_viewers, 1, 100_000)
        _check_range("credit_window_max", self.credit_window_max, 1, 64)
        for name in ("handshake_timeout_s", "heartbeat_interval_s", "heartbeat_timeout_s"):
            _check_positive(name, getattr(self, name))
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ConfigError("heartbeat_timeout_s must be longer than heartbeat_interval_s")
        _check_positive("max_payload_bytes", self.max_payload_bytes)
        _check_positive("http_send_buffer_bytes", self.http_send_buffer_bytes)
        if self.token == "":
            raise ConfigError("token must not be empty; leave it unset to disable authentication")
        self._check_exposure()
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("TLS needs both --tls-cert and --tls-key")
        for name in ("tls_cert", "tls_key"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"{name.replace('_', '-')} file not found: {path}")

    def _check_record(self) -> None:
        if isinstance(self.record, str):
            object.__setattr__(self, "record", RecorderConfig(root_dir=self.record))
        if self.record is not None and self.codec is Codec.PNG:
            raise ConfigError(
                "recording keeps the JPEG frames as they are streamed; it cannot record "
                "lossless PNG: drop --png or --record"
            )

    def _check_exposure(self) -> None:
        """The settings that decide who may reach the server (see docs/security.md)."""
        if isinstance(self.allowed_hosts, str):
            raise ConfigError("allowed_hosts must be a list of host names, not one string")
        object.__setattr__(
            self, "allowed_hosts", tuple(check_allowed_host(h) for h in self.allowed_hosts)
        )
        _check_range("max_connections_per_address", self.max_connections_per_address, 1, 100_000)
        _check_positive("write_timeout_s", self.write_timeout_s)
        if self.exposed and self.token is None and not self.allow_anonymous:
            # Secure by default, for the library as for the command: serving
            # everyone on a network is a decision, not a default.
            raise ConfigError(
                f"refusing to listen on {self.host} without a token: anyone who can reach "
                "this port could watch. Set --token (or the CAMSTREAM_TOKEN variable; "
                "ServerConfig(token=...)), or pass --allow-anonymous "
                "(ServerConfig(allow_anonymous=True)) to serve everyone on purpose"
            )

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def ladder_tiers(self) -> tuple[Tier, ...]:
        """The quality ladder, best first (the first tier is the full stream)."""
        return parse_ladder(self.ladder, quality=self.quality)

    @property
    def recorder_config(self) -> RecorderConfig | None:
        """``record`` as a RecorderConfig (a directory given as text was converted)."""
        assert not isinstance(self.record, str)  # __post_init__ converted it
        return self.record

    @property
    def exposed(self) -> bool:
        """True when the server listens beyond this machine."""
        return not _is_loopback_host(self.host)


@dataclass(frozen=True, kw_only=True)
class StreamAddress:
    """Where a client connects: parsed from ``camstream://host:port`` and friends."""

    host: str
    port: int = DEFAULT_PORT
    tls: bool = False
    token: str | None = field(default=None, repr=False)
    stream: str = ""  # the camera's name ("" = the server's first camera)

    @property
    def url(self) -> str:
        """The address, without the token (safe to print and log)."""
        scheme = "camstreams" if self.tls else "camstream"
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = f"/{self.stream}" if self.stream else ""
        return f"{scheme}://{host}:{self.port}{path}"


def parse_address(text: str) -> StreamAddress:
    """Parse ``HOST``, ``HOST:PORT``, ``camstream://HOST:PORT`` or ``camstreams://…`` (TLS).

    A ``?token=…`` query is accepted for convenience; prefer ``CAMSTREAM_TOKEN``.
    """
    raw = text.strip()
    if not raw:
        raise ConfigError("empty address; give HOST[:PORT], e.g. 127.0.0.1:8080")
    if "://" not in raw:
        raw = "camstream://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad address {redact(text)!r}: {exc}") from None
    if parts.scheme not in ("camstream", "camstreams", "tcp"):
        raise ConfigError(
            f"unsupported scheme {parts.scheme!r} in {redact(text)!r}; "
            "use camstream:// or camstreams:// (TLS)"
        )
    if not parts.hostname:
        raise ConfigError(f"no host in address {redact(text)!r}; give HOST[:PORT]")
    token = parse_qs(parts.query).get("token", [None])[0]
    stream = parts.path.strip("/")
    if stream and not STREAM_NAME_RE.fullmatch(stream):
        raise ConfigError(
            f"bad camera name {stream!r} in {text!r}; names use letters, digits, - and _ "
            "(e.g. camstream://host:8080/front)"
        )
    return StreamAddress(
        host=parts.hostname,
        port=DEFAULT_PORT if port is None else port,
        tls=parts.scheme == "camstreams",
        token=token,
        stream=stream,
    )


def parse_codec(name: str) -> Codec:
    try:
        return Codec[name.upper()]
    except KeyError:
        raise ConfigError(f"unknown codec {name!r}; choose jpeg or png") from None


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """How a client connects, receives and reconnects."""

    token: str | None = field(default=None, repr=False)
    tls_ca: str | None = None
    tls_verify: bool = True
    connect_timeout_s: float = 5.0
    heartbeat_interval_s: float = 1.0
    heartbeat_timeout_s: float = 5.0
    reconnect: bool = True
    reconnect_initial_s: float = 0.1
    reconnect_max_s: float = 2.0
    credit_window: int = 16  # frames the server may have in flight; it sends fewer on thin links
    max_payload_bytes: int = 32 * 1024 * 1024
    client_name: str = "camstream-client"
    # The viewer's limits (None: the server's full stream); adaptive=False asks for
    # exactly these, never adapted to the link.
    max_width: int | None = None
    quality: int | None = None
    max_fps: float | None = None
    adaptive: bool = True

    def __post_init__(self) -> None:
        for name in (
            "connect_timeout_s",
            "heartbeat_interval_s",
            "heartbeat_timeout_s",
            "reconnect_initial_s",
            "reconnect_max_s",
        ):
            _check_positive(name, getattr(self, name))
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ConfigError("heartbeat_timeout_s must be longer than heartbeat_interval_s")
        _check_range("credit_window", self.credit_window, 1, 1024)
        if self.max_width is not None:
            _check_range("max_width", self.max_width, 16, 16384)
        if self.quality is not None:
            _check_range("quality", self.quality, 1, 100)
        _check_positive("max_fps", self.max_fps)
        _check_positive("max_payload_bytes", self.max_payload_bytes)
        if self.tls_ca is not None and not os.path.isfile(self.tls_ca):
            raise ConfigError(f"tls-ca file not found: {self.tls_ca}")
