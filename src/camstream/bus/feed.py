"""What a relay reads per camera: the newest item only (a slot and a wake-up)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from ..frame import Frame

__all__ = ["CameraFeed", "FeedItem", "NoSignal"]


@dataclass(frozen=True, slots=True)
class NoSignal:
    """The camera has no live picture: show NO SIGNAL until the next Frame."""

    camera: str
    reason: str


FeedItem = Frame | NoSignal


class CameraFeed:
    """``async for item in feed``: Frames and NoSignal, newest first, never a backlog.

    An item that was not taken before the next one arrived is dropped and
    counted, as a hub viewer's slot does.
    """

    def __init__(self, camera: str, on_close: Callable[[CameraFeed], None]) -> None:
        self.camera = camera
        self.dropped = 0
        self._slot: FeedItem | None = None
        self._wake = asyncio.Event()
        self._closed = False
        self._on_close = on_close

    def offer(self, item: FeedItem) -> None:
        if self._slot is not None and isinstance(self._slot, Frame):
            self.dropped += 1
        self._slot = item
        self._wake.set()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._wake.set()
            self._on_close(self)

    def __aiter__(self) -> CameraFeed:
        return self

    async def __anext__(self) -> FeedItem:
        while self._slot is None:
            if self._closed:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()
        item, self._slot = self._slot, None
        return item
