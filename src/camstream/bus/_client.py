"""The one place that imports nats-py, so that camstream works without it.

``import camstream.bus`` never needs nats-py; building a publisher or a source
does, and raises :class:`~camstream.errors.ConfigError` naming the extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .options import NatsOptions

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient

__all__ = ["INSTALL_HINT", "connect_forever", "connect_kwargs", "load_nats"]

INSTALL_HINT = "pip install 'camstream[nats]'"


def load_nats() -> ModuleType:
    """The ``nats`` package, or a ConfigError that says how to install it."""
    try:
        return importlib.import_module("nats")
    except ImportError as exc:
        raise ConfigError(
            f"publishing to or relaying from NATS needs the nats-py client: {INSTALL_HINT}"
        ) from exc


def connect_kwargs(
    options: NatsOptions,
    *,
    error_cb: Callable[[Exception], Awaitable[None]],
    disconnected_cb: Callable[[], Awaitable[None]],
    reconnected_cb: Callable[[], Awaitable[None]],
    pending_size: int,
) -> dict[str, Any]:
    """Keyword arguments for ``nats.aio.client.Client.connect``."""
    kwargs: dict[str, Any] = {
        "servers": list(options.servers),
        "name": options.client_name,
        "connect_timeout": options.connect_timeout_s,
        "reconnect_time_wait": options.reconnect_wait_s,
        "ping_interval": options.ping_interval_s,
        "max_outstanding_pings": 2,
        # Never give up: the local stream goes on, and NATS is picked up again
        # whenever any server of the list is back.
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "pending_size": pending_size,
        "dont_randomize": not options.randomize_servers,
        "error_cb": error_cb,
        "disconnected_cb": disconnected_cb,
        "reconnected_cb": reconnected_cb,
    }
    if options.token is not None:
        kwargs["token"] = options.token
    if options.user is not None:
        kwargs["user"] = options.user
        kwargs["password"] = options.password
    if options.nkey_seed_file is not None:
        kwargs["nkeys_seed"] = options.nkey_seed_file
    if options.creds_file is not None:
        kwargs["user_credentials"] = options.creds_file
    context = options.ssl_context()
    if context is not None:
        kwargs["tls"] = context
        if options.tls_hostname is not None:
            kwargs["tls_hostname"] = options.tls_hostname
    return kwargs


CONNECT_RETRY_S = 1.0


async def connect_forever(
    options: NatsOptions,
    *,
    on_error: Callable[[Exception], Awaitable[None]],
    on_disconnected: Callable[[], Awaitable[None]],
    on_reconnected: Callable[[], Awaitable[None]],
    pending_size: int,
) -> NatsClient:
    """A connected client; waits (and retries) for as long as NATS is unreachable.

    nats-py itself loops over the server list until one answers; a refusal
    (bad credentials, TLS) raises, and that too is retried, since the operator
    may fix the NATS side without restarting camstream. Cancel to give up.
    """
    nats = load_nats()
    kwargs = connect_kwargs(
        options,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
        pending_size=pending_size,
    )
    while True:
        nc: NatsClient = nats.NATS()
        try:
            await nc.connect(**kwargs)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await nc.close()
            raise
        except Exception as exc:
            await on_error(exc)
            await asyncio.sleep(CONNECT_RETRY_S)
            continue
        return nc
