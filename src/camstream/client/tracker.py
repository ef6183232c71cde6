"""What a client remembers across connections, and how it decides to reconnect (sans-IO).

:class:`Tracker` holds what the user sees (state, the newest-frame slot,
counters); :func:`classify` and :class:`Backoff` decide whether and when to try
again. The threaded and the asyncio client drive the same objects from their
own IO, so both behave the same by construction.
"""

from __future__ import annotations

import enum
import random
import ssl
import time
from collections.abc import Callable

from ..errors import (
    AuthenticationError,
    CamstreamError,
    ConfigError,
    ConnectionClosed,
    LocalProtocolError,
    ServerFullError,
)
from ..frame import Frame
from ..metrics import RateMeter, ThroughputMeter
from ..wire.protocol import GoodbyeCode, StreamInfo
from .values import ClientState, ClientStats, ReceivedFrame

__all__ = ["Backoff", "Outcome", "Tracker", "classify"]

_NOT_THERE = (GoodbyeCode.NO_SUCH_STREAM, GoodbyeCode.STREAM_REMOVED)


class Outcome(enum.Enum):
    RETRY = "retry"  # reconnect (if enabled)
    END = "end"  # the stream ended normally
    FATAL = "fatal"  # retrying cannot help: surface the error from the next read


def classify(exc: BaseException, *, reconnect: bool) -> Outcome:
    if isinstance(exc, (AuthenticationError, ServerFullError)):
        return Outcome.FATAL
    if isinstance(exc, ConnectionClosed) and exc.code == GoodbyeCode.END_OF_STREAM:
        return Outcome.END
    if isinstance(exc, ConnectionClosed) and exc.code in _NOT_THERE:
        return Outcome.FATAL  # a misspelt or removed camera stays so between retries
    if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
        return Outcome.FATAL  # a wrong certificate will not fix itself between retries
    if isinstance(exc, OSError) or (
        isinstance(exc, CamstreamError) and not isinstance(exc, (ConfigError, LocalProtocolError))
    ):
        return Outcome.RETRY if reconnect else Outcome.FATAL
    return Outcome.FATAL  # a bug (ours or in the config): do not hide it behind retries


class Backoff:
    """Exponential delays between reconnect attempts, with a little jitter."""

    def __init__(
        self, initial_s: float, max_s: float, rand: Callable[[], float] = random.random
    ) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self._rand = rand
        self._next_s = initial_s

    def reset(self) -> None:
        self._next_s = self._initial_s

    def next_delay(self) -> float:
        # Jitter keeps many viewers of a restarted server from reconnecting in lockstep.
        delay = min(self._next_s, self._max_s) * (0.9 + 0.2 * self._rand())
        self._next_s = min(self._next_s * 2, self._max_s)
        return delay


class Tracker:
    """What the user sees across connections: state, the newest-frame slot, counters.

    Not synchronised: the thread client guards it with a lock, the asyncio client
    touches it only on its loop.
    """

    def __init__(self) -> None:
        self.state: ClientState = "closed"
        self.stream_info: StreamInfo | None = None
        self.failure: BaseException | None = None
        self.clean_end = False  # True when failure means "the stream ended", not an error
        self.last_error: str | None = None
        self._slot: ReceivedFrame | None = None
        self._sessions = 0
        self._rate = RateMeter()
        self.frames_received = 0
        self.frames_read = 0
        self.frames_dropped = 0
        self.bytes_received = 0
        self._throughput = ThroughputMeter()
        self._frame_size: tuple[int, int] | None = None
        self.reconnects = 0
        self._last_age_s: float | None = None

    @property
    def finished(self) -> bool:
        return self.failure is not None

    def connected(self, info: StreamInfo) -> None:
        if self.state != "streaming":
            self._sessions += 1
            self.reconnects = max(0, self._sessions - 1)
        self.state = "streaming"
        self.stream_info = info

    def put(self, frame: Frame) -> None:
        self.frames_received += 1
        self._rate.tick()
        self._throughput.add(len(frame.data))
        self._frame_size = (frame.width, frame.height)
        if self._slot is not None:
            self.frames_dropped += 1  # newest wins: the unread older frame is discarded
        self._slot = ReceivedFrame(frame, time.time_ns())

    def take(self) -> ReceivedFrame | None:
        received, self._slot = self._slot, None
        if received is not None:
            self.frames_read += 1
            self._last_age_s = received.age_s
        return received

    def discard(self) -> None:
        self._slot = None

    def lost(self, exc: BaseException, outcome: Outcome) -> None:
        """Record why a connection ended; decide nothing about sleeping."""
        self.last_error = str(exc) or type(exc).__name__
        if outcome is Outcome.RETRY:
            self.state = "reconnecting"
            return
        self.finish(exc, clean=outcome is Outcome.END)

    def after_failure(
        self, exc: BaseException, backoff: Backoff, *, reconnect: bool
    ) -> float | None:
        """Record a lost connection; the delay before the next attempt, or None to stop."""
        outcome = classify(exc, reconnect=reconnect)
        self.lost(exc, outcome)
        return backoff.next_delay() if outcome is Outcome.RETRY else None

    def take_or_raise(self) -> ReceivedFrame | None:
        """The newest unread frame; else the error that ended the client; else None."""
        received = self.take()
        if received is None and self.failure is not None:
            raise self.failure
        return received

    def ends_iteration(self, exc: ConnectionClosed) -> bool:
        """True when ``exc`` is the stream's normal end, which stops ``for`` loops quietly."""
        return self.clean_end and exc is self.failure

    def finish(self, exc: BaseException, *, clean: bool) -> None:
        if self.failure is None:
            self.failure = exc
            self.clean_end = clean
        self.state = "closed"

    def stats(self) -> ClientStats:
        return ClientStats(
            frames_received=self.frames_received,
            frames_read=self.frames_read,
            frames_dropped=self.frames_dropped,
            bytes_received=self.bytes_received,
            reconnects=self.reconnects,
            fps=self._rate.rate(),
            last_age_s=self._last_age_s,
            state=self.state,
            last_error=self.last_error,
            frame_size=self._frame_size,
            receive_mbit_s=round(8 * self._throughput.rate() / 1e6, 2),
        )
