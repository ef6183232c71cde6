"""Which ``Host`` headers the HTTP side answers: the defence against DNS rebinding.

A web page on ``evil.example`` can make its own name resolve to 127.0.0.1 (DNS
rebinding); the browser then lets that page read whatever the local server
answers, because to the browser it is the page's own origin. The one thing such
a request cannot hide is the name it was sent to: ``Host: evil.example``. So,
as Jupyter and development servers do, the server answers only requests whose
``Host`` is

* a loopback name or address (``localhost``, ``*.localhost``, ``127.0.0.0/8``, ``::1``),
* the address the server was bound to (``--host``),
* an IP address of this machine that the connection actually arrived on (so a
  server bound to ``0.0.0.0`` answers ``http://192.168.1.50:8080/``), or
* a name the user listed with ``--allowed-host`` (``*`` allows any).

Anything else gets 421 Misdirected Request. A request without ``Host`` (HTTP/1.0
tools; no browser sends one) is answered: rebinding needs a browser.

Pure: no sockets, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ...config import check_allowed_host, ip_or_none, normalise_host

__all__ = ["WILDCARD_HOSTS", "HostPolicy", "host_name", "misdirected_text"]

#: Bind addresses that mean "every interface".
WILDCARD_HOSTS: Final = frozenset({"0.0.0.0", "::", ""})
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def host_name(header: str) -> str:
    """The host part of a ``Host`` header: ``a:80`` → ``a``, ``[::1]:80`` → ``::1``."""
    header = header.strip()
    if header.startswith("["):
        return normalise_host(header.partition("]")[0] + "]")
    if header.count(":") == 1:  # name:port; more colons is a bare IPv6 address
        header = header.partition(":")[0]
    return normalise_host(header)


class HostPolicy:
    """Decides whether a request's ``Host`` names this server."""

    def __init__(self, bound_host: str, allowed: Iterable[str] = ()) -> None:
        entries = {check_allowed_host(entry) for entry in allowed}
        self.any_host = "*" in entries
        self._names = {entry for entry in entries if ip_or_none(entry) is None}
        self._addresses = {ip_or_none(entry) for entry in entries} - {None}
        bound = normalise_host(bound_host)
        self.wildcard = bound in WILDCARD_HOSTS
        if not self.wildcard:
            if ip_or_none(bound) is None:
                self._names.add(bound)
            else:
                self._addresses.add(ip_or_none(bound))

    def allows(self, host_header: str | None, local_address: str | None = None) -> bool:
        """Is ``host_header`` ours? ``local_address``: the IP the connection arrived on."""
        if host_header is None or self.any_host:
            return True
        name = host_name(host_header)
        address = ip_or_none(name)
        if address is None:
            return name in _LOOPBACK_NAMES or name.endswith(".localhost") or name in self._names
        if address.is_loopback or address in self._addresses:
            return True
        # Only an address literal can name "this machine" without a listed name:
        # a rebinding page always sends its own domain name.
        local = ip_or_none(local_address) if local_address else None
        return local is not None and address == local


def misdirected_text(host_header: str) -> str:
    """The 421 body: what was refused, and how to allow it."""
    name = host_name(host_header)[:100]
    return (
        f"421 Misdirected Request: this camstream server does not answer to the host "
        f"name {name!r} (a protection against DNS rebinding). If that name is "
        f"really this server, start it with --allowed-host {name} "
        f"(ServerConfig(allowed_hosts=[...])), or use its IP address or localhost.\n"
    )
