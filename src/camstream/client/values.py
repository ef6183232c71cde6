"""The values a client hands to its user: received frames, images and stats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from ..codec import decode
from ..frame import Frame

__all__ = ["ClientState", "ClientStats", "Image", "ReceivedFrame", "decode_frame", "scaled_to"]

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
    # The size of the last frame received: smaller than the stream's while the
    # server sends a lower tier of its quality ladder (adaptive delivery).
    frame_size: tuple[int, int] | None = None
    receive_mbit_s: float = 0.0  # frame bytes received over the last second


def scaled_to(image: Image, size: tuple[int, int]) -> Image:
    """``image`` resized to ``size`` (width, height): a smaller tier shown at the stream's size."""
    if (image.shape[1], image.shape[0]) == size:
        return image
    resized: Image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), np.uint8)
    return resized
