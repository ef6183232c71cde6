"""How a :class:`~camstream.frame.Frame` travels on NATS (pure: no sockets).

The payload is the encoded picture, untouched; the metadata rides in headers,
so a relay forwards the publisher's bytes without decoding or re-encoding.
``Camstream-Epoch`` names one publisher run: a restarted publisher starts its
``seq`` again, and the epoch tells a relay that a lower seq is new, not late.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import RemoteProtocolError
from ..frame import Codec, Frame

__all__ = ["BusFrame", "frame_from_message", "frame_headers", "new_epoch"]

HDR_SEQ = "Camstream-Seq"
HDR_CAPTURED_AT_NS = "Camstream-Captured-At-Ns"
HDR_WIDTH = "Camstream-Width"
HDR_HEIGHT = "Camstream-Height"
HDR_CODEC = "Camstream-Codec"
HDR_PLACEHOLDER = "Camstream-Placeholder"
HDR_EPOCH = "Camstream-Epoch"
HDR_STREAM_SEQ = "Nats-Sequence"  # set by JetStream on a direct get
_MAX_DIMENSION = 65535


def new_epoch() -> str:
    return secrets.token_hex(8)


def frame_headers(frame: Frame, epoch: str) -> dict[str, str]:
    headers = {
        HDR_SEQ: str(frame.seq),
        HDR_CAPTURED_AT_NS: str(frame.captured_at_ns),
        HDR_WIDTH: str(frame.width),
        HDR_HEIGHT: str(frame.height),
        HDR_CODEC: frame.codec.name.lower(),
        HDR_EPOCH: epoch,
    }
    if frame.placeholder:
        headers[HDR_PLACEHOLDER] = "1"
    return headers


@dataclass(frozen=True, slots=True)
class BusFrame:
    """A frame read from the bus, with where it came from."""

    frame: Frame
    epoch: str
    stream_seq: int | None  # JetStream's sequence (direct get only)


def _int(headers: Mapping[str, str], name: str, low: int, high: int) -> int:
    text = headers.get(name)
    if text is None:
        raise RemoteProtocolError(f"bus message without {name} header")
    try:
        value = int(text)
    except ValueError:
        raise RemoteProtocolError(f"bus header {name}={text!r} is not an integer") from None
    if not low <= value <= high:
        raise RemoteProtocolError(f"bus header {name}={value} out of range")
    return value


def frame_from_message(headers: Mapping[str, str] | None, data: bytes) -> BusFrame:
    """Rebuild the frame; anything malformed raises RemoteProtocolError (skip it)."""
    if not headers:
        raise RemoteProtocolError("bus message without camstream headers")
    codec_name = headers.get(HDR_CODEC, "")
    try:
        codec = Codec[codec_name.upper()]
    except KeyError:
        raise RemoteProtocolError(f"bus frame with unknown codec {codec_name!r}") from None
    if not data:
        raise RemoteProtocolError("bus frame without picture bytes")
    frame = Frame(
        seq=_int(headers, HDR_SEQ, 0, 2**63 - 1),
        captured_at_ns=_int(headers, HDR_CAPTURED_AT_NS, 0, 2**63 - 1),
        width=_int(headers, HDR_WIDTH, 1, _MAX_DIMENSION),
        height=_int(headers, HDR_HEIGHT, 1, _MAX_DIMENSION),
        codec=codec,
        data=bytes(data),
        placeholder=headers.get(HDR_PLACEHOLDER) == "1",
    )
    stream_seq = headers.get(HDR_STREAM_SEQ)
    return BusFrame(
        frame=frame,
        epoch=headers.get(HDR_EPOCH, ""),
        stream_seq=int(stream_seq) if stream_seq and stream_seq.isdigit() else None,
    )
