"""Turn one camera's feed into the frames a relay's hub publishes.

A relay's hub wants what a capture pipeline gives a ``serve`` hub: encoded
frames with one increasing seq, and a "NO SIGNAL" placeholder frame every
``placeholder_interval_s`` while the camera has no live picture, so viewers
stay connected and see why. The picture of the placeholder is the relay's
business (``make_placeholder(width, height) -> encoded bytes``, e.g. the
server's own NO SIGNAL renderer + encoder), so this module stays free of
OpenCV.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

from ..errors import ConfigError
from ..frame import Codec, Frame
from .feed import CameraFeed, FeedItem, NoSignal

__all__ = ["RelayPump"]


class RelayPump:
    """``await RelayPump(feed, hub.publish, make_placeholder=...).run()`` until cancelled."""

    def __init__(
        self,
        feed: CameraFeed,
        publish: Callable[[Frame], None],
        *,
        make_placeholder: Callable[[int, int], bytes],
        placeholder_codec: Codec = Codec.JPEG,
        placeholder_interval_s: float = 0.5,
        default_size: tuple[int, int] = (640, 480),
    ) -> None:
        if placeholder_interval_s <= 0:
            raise ConfigError("placeholder_interval_s must be positive")
        self.feed = feed
        self.publish = publish
        self.make_placeholder = make_placeholder
        self.placeholder_codec = placeholder_codec
        self.placeholder_interval_s = placeholder_interval_s
        self.size = default_size  # the last live frame's size, once seen
        self.last_seq = -1
        self.no_signal: NoSignal | None = None

    def _next_seq(self, wanted: int) -> int:
        # Keep the source's numbering (gaps = skipped frames) unless placeholders
        # already used those numbers: the hub ignores a seq that does not increase.
        self.last_seq = max(wanted, self.last_seq + 1)
        return self.last_seq

    def handle(self, item: FeedItem) -> None:
        """Publish a live frame, or remember that the camera has no signal."""
        if isinstance(item, NoSignal):
            self.no_signal = item
            self.publish_placeholder()
            return
        self.no_signal = None
        self.size = (item.width, item.height)
        self.publish(dataclasses.replace(item, seq=self._next_seq(item.seq)))

    def publish_placeholder(self) -> None:
        width, height = self.size
        data = self.make_placeholder(width, height)
        frame = Frame(
            self._next_seq(self.last_seq + 1),
            time.time_ns(),
            width,
            height,
            self.placeholder_codec,
            data,
            placeholder=True,
        )
        self.publish(frame)

    async def run(self) -> None:
        """Until the feed closes (the source stopped) or the task is cancelled."""
        iterator = aiter(self.feed)
        while True:
            try:
                if self.no_signal is None:
                    item = await anext(iterator)
                else:
                    # CameraFeed.__anext__ only waits for an event, so a timeout
                    # here never loses an item.
                    item = await asyncio.wait_for(anext(iterator), self.placeholder_interval_s)
            except asyncio.TimeoutError:
                self.publish_placeholder()
                continue
            except StopAsyncIteration:
                return
            self.handle(item)
