"""The values a client hands to its user: received frames, images and stats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..codec import decode
from ..frame import Frame

__all__ = ["ClientState", "ClientStats", "Image", "ReceivedFrame", "decode_frame"]

Image = npt.NDArray[np.uint8]
ClientState = Literal["connecting", "streaming", "reconnecting", "closed"]


def decode_frame(frame: Frame) -> Image:
    """Decode a frame's bytes into a BGR image; raises DecodeError."""
    return decode(frame.data, frame.codec)


@dataclass(eq=False)
class ReceivedFrame:
    """A frame as the client received it; ``image`` decodes on first use, once."""

    frame: Frame
    received_at_ns: int
    _image: Image | None = field(default=None, init=False, repr=False)

    @property
    def seq(self) -> int:
        return self.frame.seq

    @property
    def image(self) -> Image:
        if self._image is None:
            self._image = decode_frame(self.frame)
        return self._image

    @property
    def age_s(self) -> float:
        """Seconds from capture (server clock) to now (this clock)."""
        return self.frame.age_s()


@dataclass(frozen=True, slots=True)
class ClientStats:
    """A snapshot of a client's counters; taking one never blocks the receiver."""

    frames_received: int
    frames_read: int
    frames_dropped: int  # received but replaced by a newer one before anyone read it
    bytes_received: int
    reconnects: int  # sessions re-established after a drop
    fps: float  # frames received over the last second
    last_age_s: float | None  # capture → read, for the last frame read
    state: ClientState
    last_error: str | None
