"""Tuning of the delivery controller, validated like every camstream setting."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["ControllerConfig"]


@dataclass(frozen=True, kw_only=True)
class ControllerConfig:
    """Tuning of :class:`DeliveryController`; the defaults are what the tests prove."""

    target_fps: float = 30.0
    bdp_gain: float = 1.0
    queue_frames: float = 1.0  # queueing allowed beyond the BDP, in frame intervals
    initial_window_frames: int = 2
    rate_window_s: float = 1.0  # the max filter spans max(this, rate_window_rtts * sRTT)
    rate_window_rtts: float = 8.0
    queue_threshold_frames: float = 0.5  # queueing beyond this marks a sample link-limited
    min_queue_threshold_s: float = 0.004
    ack_timeout_min_s: float = 2.0
    max_outstanding: int = 256
    max_fps: float | None = None  # the viewer asked for fewer frames than the source makes

    def __post_init__(self) -> None:
        for name in ("target_fps", "bdp_gain", "rate_window_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.queue_frames < 0 or self.queue_threshold_frames < 0:
            raise ConfigError("queue_frames and queue_threshold_frames must not be negative")
        if self.initial_window_frames < 1 or self.max_outstanding < 1:
            raise ConfigError("initial_window_frames and max_outstanding must be at least 1")
        if self.max_fps is not None and not self.max_fps > 0:
            raise ConfigError(f"max_fps must be positive, got {self.max_fps!r}")
