"""Recording settings: a frozen, validated value, like camstream's other configs."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..errors import ConfigError
from .retention import RetentionPolicy

__all__ = ["RecorderConfig", "camera_directory"]

_CAMERA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def camera_directory(root_dir: str, camera: str) -> str:
    """``root_dir/camera``; the name must be a safe single path component."""
    if not _CAMERA_NAME.match(camera) or camera in (".", ".."):
        raise ConfigError(
            f"camera name {camera!r} cannot name a recording directory: use letters, digits, "
            "'.', '_' or '-' (at most 64, not starting with a dot or dash)"
        )
    return os.path.join(root_dir, camera)


@dataclass(frozen=True, kw_only=True)
class RecorderConfig:
    """Everything a :class:`~camstream.recording.Recorder` can be told.

    ``root_dir`` holds one directory per camera. ``continuous``: record from
    :meth:`Recorder.open` on; otherwise only between ``start()`` and ``stop()``
    (on demand), with ``prerecord_s`` of frames kept in memory to begin with.
    The writer's queue holds at most ``queue_max_frames`` and ``queue_max_bytes``;
    beyond that, frames are dropped (and counted), never queued.
    """

    root_dir: str
    segment_s: float = 60.0
    continuous: bool = True
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    prerecord_s: float = 0.0
    prerecord_max_bytes: int = 64 * 1024 * 1024
    queue_max_frames: int = 90
    queue_max_bytes: int = 32 * 1024 * 1024
    retry_interval_s: float = 5.0  # after a full disk or a write error
    idle_close_s: float = 10.0  # close the open segment when no frame came for this long
    retention_interval_s: float = 60.0  # re-check retention this often even when idle

    def __post_init__(self) -> None:
        if not self.root_dir:
            raise ConfigError("the recording directory must not be empty")
        checks = {
            "record segment seconds": self.segment_s,
            "record retry interval": self.retry_interval_s,
            "record idle close seconds": self.idle_close_s,
            "record retention interval": self.retention_interval_s,
        }
        for name, value in checks.items():
            if not value > 0:
                raise ConfigError(f"{name} must be positive, got {value!r}")
        if self.prerecord_s < 0:
            raise ConfigError(f"pre-record seconds must not be negative, got {self.prerecord_s!r}")
        for name, count in (
            ("prerecord_max_bytes", self.prerecord_max_bytes),
            ("queue_max_frames", self.queue_max_frames),
            ("queue_max_bytes", self.queue_max_bytes),
        ):
            if count < 1:
                raise ConfigError(f"{name} must be at least 1, got {count!r}")
