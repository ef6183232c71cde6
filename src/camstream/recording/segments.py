"""Segment files: already-encoded JPEG frames muxed into Matroska by PyAV, no re-encode.

Each :class:`~camstream.frame.Frame`'s JPEG bytes become one packet of an
``mjpeg`` track, unchanged. A packet's time is its frame's capture time
(``captured_at_ns``) minus the segment's start, handed to PyAV in nanoseconds;
Matroska stores milliseconds (FFmpeg's muxer fixes its time base at 1/1000), so
a frame's stored time is its capture time rounded to the millisecond, and
variable frame rate is kept as captured. The segment's exact start is in its
file name and in the ``CAMSTREAM_START_NS`` tag, so every frame maps back to
wall-clock time.

Crash safety: FFmpeg's Matroska muxer builds each cluster in memory and writes
it out when the next cluster begins; by default a video cluster ends only once
it holds more than 4 KiB (or 5 MiB / 5 s), so small frames would sit in memory
several at a time. ``cluster_size_limit=0`` makes every frame its own cluster,
written as soon as the next frame arrives; FFmpeg then flushes its I/O buffer
after the packet (its default), and we flush our file object. A process killed
with SIGKILL therefore leaves a file that FFmpeg, VLC and PyAV read up to the
last frame but one it was given: the segment's size and the cues (index) are
missing, and readers handle that by reading to the end of the file. Only
:meth:`SegmentWriter.close` writes the cues and the duration. (A cluster costs
about 20 bytes per frame.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import TYPE_CHECKING, BinaryIO

from ..frame import Codec, Frame
from ._av import load_av
from .index import SegmentInfo
from .naming import parse_segment_name, segment_name

if TYPE_CHECKING:
    from av.container import OutputContainer
    from av.stream import Stream

__all__ = [
    "START_TAG",
    "SegmentWriter",
    "iter_segment",
    "open_segment_file",
    "probe_segment",
]

START_TAG = "CAMSTREAM_START_NS"
_NS = Fraction(1, 1_000_000_000)
_MS_NS = 1_000_000


def open_segment_file(path: str) -> BinaryIO:
    """How segment files are opened unless a test injects another opener."""
    return open(path, "wb")  # owned and closed by SegmentWriter


class SegmentWriter:
    """One Matroska file being written; it starts with ``first`` (not yet written).

    ``open_file`` opens the path for binary writing; tests inject one that sleeps
    or fails with ENOSPC. ``write`` and ``close`` raise OSError from the file
    (ENOSPC for a full disk), after which the writer is unusable; call
    :meth:`abandon` to release the file, which stays readable up to its last
    written frame.
    """

    def __init__(
        self,
        directory: str,
        first: Frame,
        *,
        camera: str = "",
        open_file: Callable[[str], BinaryIO] = open_segment_file,
    ) -> None:
        av = load_av()
        self.start_ns = first.captured_at_ns
        self.end_ns = first.captured_at_ns
        self.width, self.height = first.width, first.height
        self.frames = 0
        self.size_bytes = 0
        self.path = os.path.join(directory, segment_name(self.start_ns))
        self._file = open_file(self.path)
        try:
            container: OutputContainer = av.open(
                self._file, "w", format="matroska", options={"cluster_size_limit": "0"}
            )
            container.metadata[START_TAG] = str(self.start_ns)
            if camera:
                container.metadata["title"] = camera
            stream: Stream = container.add_mux_stream(
                "mjpeg", width=first.width, height=first.height
            )
            stream.time_base = Fraction(1, 1000)
        except BaseException:
            self._file.close()
            raise
        self._container = container
        self._stream = stream
        self._last_pts_ns = -1
        self._closed = False

    def accepts(self, frame: Frame) -> bool:
        """False when ``frame`` cannot join this segment (another size), so a new one starts."""
        return (frame.width, frame.height) == (self.width, self.height)

    def write(self, frame: Frame) -> int:
        """Mux ``frame``'s JPEG bytes and flush; returns the file's size afterwards.

        A frame captured before the previous one is refused with ValueError:
        Matroska needs non-decreasing times, and the caller counts it.
        """
        if frame.codec is not Codec.JPEG:
            raise ValueError(f"only JPEG frames can be recorded, got {frame.codec.name}")
        pts_ns = frame.captured_at_ns - self.start_ns
        if pts_ns < self._last_pts_ns:
            raise ValueError("frame captured before the previous one")
        av = load_av()
        packet = av.Packet(frame.data)
        packet.stream = self._stream
        packet.time_base = _NS  # PyAV rescales to the stream's 1/1000, rounding to nearest
        packet.pts = packet.dts = pts_ns
        packet.is_keyframe = True  # every JPEG stands alone
        self._container.mux_one(packet)
        self._file.flush()
        self._last_pts_ns = pts_ns
        self.frames += 1
        self.end_ns = frame.captured_at_ns
        self.size_bytes = self._file.tell()
        return self.size_bytes

    def info(self) -> SegmentInfo:
        return SegmentInfo(
            path=self.path,
            start_ns=self.start_ns,
            end_ns=self.end_ns,
            size_bytes=self.size_bytes,
            frames=self.frames,
        )

    def close(self) -> SegmentInfo:
        """Write the trailer (duration, cues) and close the file."""
        if not self._closed:
            self._closed = True
            try:
                self._container.close()
                self._file.flush()
                self.size_bytes = self._file.tell()
            finally:
                self._file.close()
        return self.info()

    def abandon(self) -> SegmentInfo:
        """Release the file after a write failed; what was written stays readable."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._container.close()  # fails again on a full disk; the file is what matters
            with contextlib.suppress(OSError):
                self._file.close()
        # The muxer still held the last frame given to it: say what is really on disk.
        on_disk = probe_segment(self.path)
        if on_disk is None:
            return dataclasses.replace(self.info(), frames=0)
        return on_disk


def _start_of(container: object, path: str) -> int | None:
    metadata = getattr(container, "metadata", {})
    tag = metadata.get(START_TAG)
    if tag is not None and str(tag).lstrip("-").isdigit():
        return int(tag)
    return parse_segment_name(os.path.basename(path))


def iter_segment(path: str, from_ns: int | None = None) -> Iterator[tuple[int, bytes]]:
    """``(captured_at_ns, jpeg_bytes)`` of every frame in a segment, in order.

    With ``from_ns``, frames captured before it are skipped (after a seek to the
    nearest earlier cue when the file has cues, so long segments start quickly).

    Reads files cut short by a crash up to their last complete frame. Raises
    OSError or ``av.error.FFmpegError`` for files that cannot be opened.
    """
    av = load_av()
    with av.open(path, "r") as container:
        start_ns = _start_of(container, path)
        if start_ns is None:
            start_ns = 0  # not one of ours: times relative to the file's start
        stream = container.streams.video[0]
        time_base = stream.time_base or Fraction(1, 1000)
        if from_ns is not None and from_ns > start_ns:
            with contextlib.suppress(av.error.FFmpegError):  # no cues: read from the start
                container.seek(int((from_ns - start_ns) * _NS / time_base), stream=stream)
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue  # the demuxer's end-of-stream marker
                captured_at_ns = start_ns + round(packet.pts * time_base / _NS)
                if from_ns is None or captured_at_ns >= from_ns:
                    yield captured_at_ns, bytes(packet)
        except av.error.InvalidDataError:
            return  # a torn last block after a crash: everything before it was read


def probe_segment(path: str) -> SegmentInfo | None:
    """Measure a segment by reading its frames (used after a crash); None if unreadable."""
    av = load_av()
    first_ns: int | None = None
    last_ns = 0
    frames = 0
    try:
        for captured_at_ns, _ in iter_segment(path):
            if first_ns is None:
                first_ns = captured_at_ns
            last_ns = captured_at_ns
            frames += 1
        size = os.path.getsize(path)
    except (OSError, av.error.FFmpegError):
        return None
    if first_ns is None:
        return None
    return SegmentInfo(path=path, start_ns=first_ns, end_ns=last_ns, size_bytes=size, frames=frames)
