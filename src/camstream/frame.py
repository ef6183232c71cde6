"""The one value that travels between stages: an encoded picture plus its metadata."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

__all__ = ["Codec", "Frame", "SeqOrder"]


class Codec(enum.IntEnum):
    """How a frame's ``data`` is encoded. The numbers are part of the wire protocol."""

    JPEG = 1
    PNG = 2

    @property
    def mime_type(self) -> str:
        return "image/jpeg" if self is Codec.JPEG else "image/png"


@dataclass(frozen=True, slots=True)
class Frame:
    """One encoded picture.

    ``seq`` increases by one per captured image on the server (gaps mean the
    receiver skipped frames, which is intended). ``captured_at_ns`` is the
    server's wall clock (``time.time_ns()``) when the image was captured, so the
    age of a frame is only exact when both ends share a clock (same host, or NTP).
    ``placeholder`` marks synthetic frames such as "NO SIGNAL".
    """

    seq: int
    captured_at_ns: int
    width: int
    height: int
    codec: Codec
    data: bytes
    placeholder: bool = False

    def age_s(self, now_ns: int | None = None) -> float:
        """Seconds since capture, by this machine's wall clock."""
        now = time.time_ns() if now_ns is None else now_ns
        return (now - self.captured_at_ns) / 1e9


class SeqOrder:
    """Remembers the newest sequence number seen and rejects anything not newer.

    Frames can arrive late (parallel encoders, a viewer that already got a newer
    one); every stage that must only move forward asks this one question.
    """

    __slots__ = ("last_seq",)

    def __init__(self) -> None:
        self.last_seq = -1

    def is_newer(self, seq: int) -> bool:
        return seq > self.last_seq

    def advance(self, seq: int) -> bool:
        """Record ``seq`` if it is newer; False (and nothing recorded) otherwise."""
        if seq <= self.last_seq:
            return False
        self.last_seq = seq
        return True
