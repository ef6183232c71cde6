"""Record what a camera streams: JPEG frames into Matroska segments, with retention.

Needs PyAV: ``pip install 'camstream[record]'``. The pure parts (index,
retention, pre-record) import without it; :class:`Recorder` and
:class:`~camstream.recording.replay.ReplaySource` raise
:class:`~camstream.errors.ConfigError` with the install hint when it is missing.

``ReplaySource`` is loaded on first use (``camstream.recording.ReplaySource``)
so that the server can import this package without an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._av import INSTALL_HINT
from .config import RecorderConfig, camera_directory
from .index import SegmentIndex, SegmentInfo, rebuild_index
from .naming import parse_time_ns, segment_name
from .prerecord import PreRecordBuffer
from .recorder import Recorder, RecorderState
from .retention import RetentionPolicy, select_for_deletion
from .segments import SegmentWriter, iter_segment, probe_segment

if TYPE_CHECKING:
    from .replay import ReplaySource, is_recording, iter_recording

__all__ = [
    "INSTALL_HINT",
    "PreRecordBuffer",
    "Recorder",
    "RecorderConfig",
    "RecorderState",
    "ReplaySource",
    "RetentionPolicy",
    "SegmentIndex",
    "SegmentInfo",
    "SegmentWriter",
    "camera_directory",
    "is_recording",
    "iter_recording",
    "iter_segment",
    "parse_time_ns",
    "probe_segment",
    "rebuild_index",
    "segment_name",
    "select_for_deletion",
]


def __getattr__(name: str) -> Any:
    if name in ("ReplaySource", "is_recording", "iter_recording"):
        from . import replay  # noqa: PLC0415 - deferred on purpose, see the docstring

        return getattr(replay, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
