"""HTTP always speaks JPEG: in lossless (PNG) mode, each frame is converted once for it.

Browsers, VLC, ffmpeg and ``cv2.VideoCapture`` read ``multipart/x-mixed-replace``
streams of JPEG parts (FFmpeg's mpjpeg reader refuses ``image/png`` parts), and a
URL called ``snapshot.jpg`` must return a JPEG. So in ``--png`` mode the native
protocol carries the lossless PNG frames, while HTTP viewers get a JPEG of each
frame at the server's ``quality``, converted at most once per frame however many
of them watch, off the event loop. ``/snapshot.png`` serves the lossless frame.
"""

from __future__ import annotations

import asyncio
import dataclasses

from ...codec import JpegEncoder, decode
from ...frame import Codec, Frame

__all__ = ["JpegView"]


class JpegView:
    """``await view(frame)`` is ``frame`` itself if JPEG, else its JPEG conversion (cached)."""

    def __init__(self, quality: int) -> None:
        self._encoder = JpegEncoder(quality)
        self._seq = -1
        self._pending: asyncio.Future[Frame] | None = None
        self.conversions = 0  # for tests and /status: once per frame, not per viewer

    async def __call__(self, frame: Frame) -> Frame:
        if frame.codec is Codec.JPEG:
            return frame
        if self._pending is None or self._seq != frame.seq:
            self._seq = frame.seq
            self.conversions += 1
            self._pending = asyncio.ensure_future(asyncio.to_thread(self._convert, frame))
        # Shielded: a viewer leaving mid-conversion must not cancel it for the others.
        return await asyncio.shield(self._pending)

    def _convert(self, frame: Frame) -> Frame:
        data = self._encoder.encode(decode(frame.data, frame.codec))
        return dataclasses.replace(frame, codec=Codec.JPEG, data=data)
