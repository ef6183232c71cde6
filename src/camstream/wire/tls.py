"""TLS contexts for the server (native protocol and HTTPS share one) and for clients."""

from __future__ import annotations

import ssl

from ..errors import ConfigError

__all__ = ["client_context", "server_context"]


def server_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load TLS certificate {cert_path} with key {key_path}: {exc}. "
            "Check that both are PEM files and that the key matches the certificate."
        ) from None
    return context


def client_context(ca_path: str | None = None, *, verify: bool = True) -> ssl.SSLContext:
    """Verify against ``ca_path`` if given, else the system store."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_path is not None:
        try:
            context.load_verify_locations(cafile=ca_path)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load CA file {ca_path}: {exc}") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
