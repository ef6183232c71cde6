"""The edge of the HTTP side: which requests are answered, which connections stay open.

* ``Host``: a name that is not this server's gets 421 (DNS rebinding, see hosts.py).
* Keep-alive only for requests that showed the token (or, without a token, asked
  for the stream, a snapshot or the status): a 401, ``/healthz``, a page file or
  an error is answered with ``Connection: close``, so that nobody holds a
  connection slot by polling.
* ``Server: camstream``, without Python or aiohttp versions, on every answer,
  aiohttp's own answers to malformed requests included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web, web_protocol
from aiohttp.web_request import BaseRequest

from ...config import ServerConfig
from .guards import HttpGuard
from .hosts import HostPolicy, misdirected_text

__all__ = [
    "SERVER_HEADER",
    "guard_of",
    "new_request_handler",
    "request_guard",
    "server_header",
]

#: The ``Server`` header: no Python or aiohttp version for scanners to match.
SERVER_HEADER: Final = "camstream"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guard_of(request: web.Request) -> HttpGuard | None:
    """The connection's :class:`HttpGuard` (absent when the app runs without the listener)."""
    transport = request.transport
    protocol = transport.get_protocol() if transport is not None else None
    return protocol if isinstance(protocol, HttpGuard) else None


def _local_address(request: web.Request) -> str | None:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return str(sockname[0]) if isinstance(sockname, tuple) and sockname else None


def request_guard(config: ServerConfig, trusted: set[int]) -> Any:  # aiohttp's middleware type
    """Middleware: the ``Host`` check, and ``Connection: close`` for untrusted requests.

    ``trusted`` holds the ids of the running requests that showed the token
    (the routes that check it add them): only their connections stay open.
    Every answered request is reported to the connection's :class:`HttpGuard`,
    which bounds how many may wait.
    """
    policy = HostPolicy(config.host, config.allowed_hosts)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            host = request.headers.get("Host")
            if not policy.allows(host, _local_address(request)):
                refused = web.Response(
                    status=421,
                    text=misdirected_text(host or ""),
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
                )
                refused.force_close()
                return refused
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                if id(request) not in trusted:
                    exc.force_close()
                raise
            if id(request) not in trusted:
                response.force_close()
            return response
        finally:
            trusted.discard(id(request))
            guard = guard_of(request)
            if guard is not None:
                guard.request_answered()

    return middleware


async def server_header(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer names the server, but no versions."""
    response.headers["Server"] = SERVER_HEADER


class _RequestHandler(web_protocol.RequestHandler):
    """aiohttp's protocol, but its own error answers say ``Server: camstream`` too.

    aiohttp answers a malformed request itself, before any route, so the app's
    ``on_response_prepare`` never sees it; ``handle_error`` is the one place.
    """

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        response = super().handle_error(request, status, exc, message)
        response.headers["Server"] = SERVER_HEADER
        return response


def new_request_handler(server: web.Server) -> asyncio.Protocol:
    """One connection's aiohttp protocol, as ``server()`` makes it, versions hidden."""
    options = getattr(server, "_kwargs", None)  # what AppRunner passed (logger, timeouts)
    loop = asyncio.get_running_loop()
    if not isinstance(options, dict):  # another aiohttp: its own handler, versions shown
        protocol: asyncio.Protocol = server()
        return protocol
    return _RequestHandler(server, loop=loop, **options)
