"""Validated NATS connection settings (pure: no nats-py import, no sockets).

The command line and the library build the same :class:`NatsOptions`; a bad
value raises :class:`~camstream.errors.ConfigError` naming the option.
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..frame import Codec

__all__ = [
    "DEFAULT_STREAM",
    "DEFAULT_SUBJECT_PREFIX",
    "NatsOptions",
    "camera_subject",
    "check_camera_name",
    "parse_servers",
]

DEFAULT_STREAM = "CAMSTREAM"
DEFAULT_SUBJECT_PREFIX = "camstream"
_SCHEMES = ("nats", "tls", "ws", "wss")
# One NATS subject token: no dots, wildcards or spaces, so a camera name can never
# reach another camera's subject or a wildcard.
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_STREAM_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def check_camera_name(camera: str) -> str:
    if not _TOKEN_RE.match(camera):
        raise ConfigError(
            f"camera name {camera!r} cannot be a NATS subject token: "
            "use 1-64 letters, digits, '_' or '-'"
        )
    return camera


def camera_subject(prefix: str, camera: str, codec: Codec = Codec.JPEG) -> str:
    """``camstream.<camera>.jpeg``: one subject per camera and codec."""
    return f"{prefix}.{check_camera_name(camera)}.{codec.name.lower()}"


def parse_servers(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"nats://h1:4222,h2:4222"`` (or a list) -> a tuple of server URLs."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    servers: list[str] = []
    for raw in parts:
        item = raw.strip()
        if not item:
            continue
        if "://" not in item:
            item = f"nats://{item}"
        url = urlsplit(item)
        if url.scheme not in _SCHEMES or not url.hostname:
            raise ConfigError(
                f"NATS server {raw.strip()!r} must look like nats://host:4222 "
                f"(schemes: {', '.join(_SCHEMES)})"
            )
        servers.append(item)
    if not servers:
        raise ConfigError("at least one NATS server URL is needed, e.g. nats://127.0.0.1:4222")
    return tuple(servers)


def _check_file(name: str, path: str | None) -> None:
    if path is not None and not os.path.isfile(path):
        raise ConfigError(f"{name}: no such file {path!r}")


@dataclass(frozen=True, kw_only=True)
class NatsOptions:
    """How to reach the NATS cluster, and which stream and subjects camstream uses.

    Credentials are exclusive: a ``token``, or ``user`` + ``password``, or an
    NKey seed file, or a creds file (JWT + seed). Without ``tls_*`` the URL
    scheme decides (``tls://`` uses the system CAs).
    """

    servers: tuple[str, ...]
    token: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    nkey_seed_file: str | None = None
    creds_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_hostname: str | None = None
    client_name: str = "camstream"
    connect_timeout_s: float = 2.0
    # Short waits: a viewer should see a gap of at most a couple of seconds when a
    # node dies, and nats-py tries every other server before waiting at all.
    reconnect_wait_s: float = 0.5
    ping_interval_s: float = 2.0
    stream: str = DEFAULT_STREAM
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    stream_replicas: int | None = None  # None: min(3, servers known to the client)
    # False: try the servers in the order given (e.g. the nearest first).
    randomize_servers: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "servers", parse_servers(self.servers))
        if self.token is not None and (self.user is not None or self.password is not None):
            raise ConfigError("give a NATS token or a user and password, not both")
        if (self.user is None) != (self.password is None):
            raise ConfigError("a NATS user needs a password (and a password needs a user)")
        given = [
            name
            for name in ("token", "user", "nkey_seed_file", "creds_file")
            if getattr(self, name) is not None
        ]
        if len(given) > 1:
            raise ConfigError(f"give only one kind of NATS credential, got {', '.join(given)}")
        files = ("nkey_seed_file", "creds_file", "tls_ca_file", "tls_cert_file", "tls_key_file")
        for name in files:
            _check_file(name, getattr(self, name))
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigError("tls_cert_file and tls_key_file go together (client certificate)")
        for name in ("connect_timeout_s", "reconnect_wait_s", "ping_interval_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not _STREAM_RE.match(self.stream):
            raise ConfigError(f"stream name {self.stream!r}: use letters, digits, '_' or '-'")
        if not all(_TOKEN_RE.match(part) for part in self.subject_prefix.split(".")):
            raise ConfigError(f"subject_prefix {self.subject_prefix!r} is not a plain subject")
        if self.stream_replicas is not None and not 1 <= self.stream_replicas <= 5:
            raise ConfigError("stream_replicas must be between 1 and 5 (NATS allows at most 5)")

    @classmethod
    def from_url(cls, servers: str, **options: Any) -> NatsOptions:
        """Build from the command line's comma list (``--publish``/``--from``)."""
        return cls(servers=parse_servers(servers), **options)

    @property
    def uses_tls(self) -> bool:
        return any(
            getattr(self, name) is not None
            for name in ("tls_ca_file", "tls_cert_file", "tls_hostname")
        ) or any(urlsplit(url).scheme in ("tls", "wss") for url in self.servers)

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(cafile=self.tls_ca_file)
        if self.tls_cert_file is not None and self.tls_key_file is not None:
            context.load_cert_chain(self.tls_cert_file, self.tls_key_file)
        return context

    def subject(self, camera: str, codec: Codec = Codec.JPEG) -> str:
        return camera_subject(self.subject_prefix, camera, codec)

    @property
    def subjects_wildcard(self) -> str:
        return f"{self.subject_prefix}.>"
