"""What aiohttp may log about a request: never its query, never a traceback for a 4xx.

aiohttp logs "Error handling request" with the exception's traceback, and for a
malformed request (a bad request line, a line over 8190 bytes) the exception's
message is the offending line, ``?token=…`` included. Passed to aiohttp as its
server logger, :class:`RequestLog` turns a client's mistake (any 4xx) into one
DEBUG line that names only the error's class and status, and strips query
strings and ``token=`` values from whatever else is logged (a real bug in a
handler still logs its traceback, at ERROR). It only forwards records to the
``aiohttp.server`` logger: it configures no logging.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from types import TracebackType
from typing import Any, Final, cast

from aiohttp import http_exceptions, web

from ...config import redact
from .peer_log import BAD_PEERS

__all__ = ["RequestLog", "client_error_status", "scrub", "server_logger"]

# A query string: from "?" up to whitespace or a quote.
_QUERY: Final = re.compile(r"\?[^\s'\"]*")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def scrub(text: str) -> str:
    """``text`` without query strings or token values."""
    return redact(_QUERY.sub("?\N{HORIZONTAL ELLIPSIS}", text))


def client_error_status(exc: BaseException | None) -> int | None:
    """The 4xx status when ``exc`` is the client's fault (a malformed request), else ``None``."""
    status: object = None
    if isinstance(exc, http_exceptions.HttpProcessingError):
        status = exc.code
    elif isinstance(exc, web.HTTPException):
        status = exc.status
    if isinstance(status, int) and 400 <= status < 500:
        return status
    return None


def _exception(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return cast("ExcInfo", exc_info)[1]
    if exc_info:
        return sys.exc_info()[1]
    return None


class RequestLog:
    """A stand-in for aiohttp's server logger that keeps secrets and client noise out."""

    def __init__(self, target: logging.Logger) -> None:
        self._target = target

    def isEnabledFor(self, level: int) -> bool:
        return self._target.isEnabledFor(level)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(logging.DEBUG, msg, args, kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(logging.INFO, msg, args, kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(logging.WARNING, msg, args, kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(logging.ERROR, msg, args, kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self._log(logging.ERROR, msg, args, kwargs)

    def critical(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(logging.CRITICAL, msg, args, kwargs)

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        self._log(level, msg, args, kwargs)

    def _log(self, level: int, msg: object, args: tuple[object, ...], kwargs: Any) -> None:
        exc = _exception(kwargs.pop("exc_info", None))
        kwargs.pop("stack_info", None)
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = " ".join(str(part) for part in (msg, *args))
        status = client_error_status(exc)
        if status is not None:
            # The client's mistake: worth a debug line, not a traceback, and
            # the exception's message would quote the request line.
            level = logging.DEBUG
            text = f"{text}: {type(exc).__name__} ({status})"
            BAD_PEERS.note(f"bad HTTP request ({status})")
        elif exc is not None:
            text += "\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if self._target.isEnabledFor(level):
            self._target.log(level, "%s", scrub(text).rstrip("\n"), stacklevel=3)


def server_logger() -> logging.Logger:
    """aiohttp's server logger behind :class:`RequestLog`, typed as aiohttp wants it."""
    return cast(logging.Logger, RequestLog(logging.getLogger("aiohttp.server")))
