"""Scale out on NATS: publish every encoded frame once, relay it anywhere.

Importing this package never needs nats-py; creating a :class:`NatsPublisher`
or :class:`NatsFrameSource` without it raises
:class:`~camstream.errors.ConfigError` naming ``pip install 'camstream[nats]'``.
"""

from __future__ import annotations

from .feed import CameraFeed, FeedItem, NoSignal
from .mode import Mode, ModeDecider, ModePolicy
from .nats_publisher import NatsPublisher, PublisherStats
from .nats_source import CameraStats, NatsFrameSource
from .options import NatsOptions, parse_servers
from .relay_pump import RelayPump

__all__ = [
    "CameraFeed",
    "CameraStats",
    "FeedItem",
    "Mode",
    "ModeDecider",
    "ModePolicy",
    "NatsFrameSource",
    "NatsOptions",
    "NatsPublisher",
    "NoSignal",
    "PublisherStats",
    "RelayPump",
    "parse_servers",
]
