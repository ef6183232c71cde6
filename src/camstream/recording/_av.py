"""PyAV is an optional dependency: load it only when a recording is made or read."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import ConfigError

__all__ = ["INSTALL_HINT", "load_av"]

INSTALL_HINT = "pip install 'camstream[record]'"


def load_av() -> ModuleType:
    """The ``av`` module, or a ConfigError that says how to install it."""
    try:
        return importlib.import_module("av")
    except ImportError as exc:
        raise ConfigError(
            f"recording and replay need PyAV (the 'av' package), which is not installed: "
            f"{INSTALL_HINT}"
        ) from exc
