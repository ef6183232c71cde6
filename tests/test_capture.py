"""capture: the capture and encoder threads, signal loss, ordering and shutdown."""

from __future__ import annotations

import itertools
import random
import re
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from camstream.codec import JpegEncoder, PngEncoder, decode
from camstream.errors import ConfigError, SourceError
from camstream.frame import Codec, Frame
from camstream.server.capture import CapturePipeline
from camstream.sources import IterableSource, Source, TestPatternSource

WIDTH, HEIGHT = 64, 48


class FakeCamera(Source):
    """A paced source whose image i is flat grey level i % 256; can be 'unplugged'."""

    live = True  # like a real camera: read continuously, newest image wins

    def __init__(self, fps: float = 200.0, end_after: int | None = None) -> None:
        super().__init__()
        self.description = "fake camera"
        self.unplugged = False
        self.end_after = end_after
        self.count = 0
        self.opens = 0
        self.is_open = False
        self._period_s = 1.0 / fps

    def open(self) -> None:
        if self.unplugged:
            raise SourceError("fake camera could not be opened: unplugged")
        self._wake.clear()
        self.is_open = True
        self.opens += 1

    def read(self) -> np.ndarray | None:
        assert self.is_open, "read() on a closed source"
        self._wake.wait(self._period_s)
        if self.unplugged:
            raise SourceError("fake camera stopped delivering frames")
        if self.end_after is not None and self.count >= self.end_after:
            return None
        self.count += 1
        return np.full((HEIGHT, WIDTH, 3), self.count % 256, np.uint8)

    def close(self) -> None:
        self.is_open = False


def _pipeline_threads() -> list[str]:
    """Names of the capture pipeline threads still alive in this process."""
    names = ("camstream-capture", "camstream-encode-")
    return [t.name for t in threading.enumerate() if t.name.startswith(names)]


class Collector:
    """on_frame / on_end callbacks that tests can wait on."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.ends: list[str] = []
        self.events: list[str] = []
        self._cond = threading.Condition()

    def on_frame(self, frame: Frame) -> None:
        with self._cond:
            self.frames.append(frame)
            self.events.append("frame")
            self._cond.notify_all()

    def on_end(self, reason: str) -> None:
        with self._cond:
            self.ends.append(reason)
            self.events.append("end")
            self._cond.notify_all()

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        with self._cond:
            assert self._cond.wait_for(predicate, timeout_s), f"timed out waiting for {what}"

    def real(self) -> list[Frame]:
        return [f for f in self.frames if not f.placeholder]

    def placeholders(self) -> list[Frame]:
        return [f for f in self.frames if f.placeholder]


class SlowEncoder:
    """Wraps an encoder with a delay, to make the encoder the bottleneck."""

    codec = Codec.PNG

    def __init__(self, delay_s: float | Callable[[], float]) -> None:
        self._delay = delay_s if callable(delay_s) else (lambda: delay_s)
        self._inner = PngEncoder(0)

    def encode(self, image: np.ndarray) -> bytes:
        time.sleep(self._delay())
        return self._inner.encode(image)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() == before, [t.name for t in threading.enumerate()]


def _pipeline(source: Source, sink: Collector, **options: object) -> CapturePipeline:
    return CapturePipeline(
        source,
        PngEncoder(0),
        sink.on_frame,
        on_end=sink.on_end,
        **options,  # type: ignore[arg-type]
    )


def _assert_strictly_increasing(frames: list[Frame]) -> None:
    seqs = [f.seq for f in frames]
    assert all(a < b for a, b in itertools.pairwise(seqs)), seqs


def test_frames_carry_the_image_and_metadata() -> None:
    sink = Collector()
    pipeline = _pipeline(FakeCamera(), sink)
    before_ns = time.time_ns()
    with pipeline:
        sink.wait_for("3 frames", lambda: len(sink.frames) >= 3)
        stats = pipeline.stats
    frame = sink.frames[0]
    assert (frame.width, frame.height, frame.codec) == (WIDTH, HEIGHT, Codec.PNG)
    assert not frame.placeholder
    assert before_ns <= frame.captured_at_ns <= time.time_ns()
    level = int(decode(frame.data, Codec.PNG)[0, 0, 0])
    assert level == frame.seq + 1  # seq counts images; the fake's levels count from 1
    assert stats.images_captured >= 3 and stats.frames_encoded >= 3
    assert stats.capture_fps > 0 and stats.encode_fps > 0 and stats.last_encode_ms > 0
    assert not pipeline.running
    _assert_strictly_increasing(sink.frames)


def test_camera_loss_sends_placeholders_then_recovers() -> None:
    camera = FakeCamera()
    sink = Collector()
    pipeline = _pipeline(camera, sink, retry_interval_s=0.05, placeholder_interval_s=0.02)
    with pipeline:
        sink.wait_for("real frames", lambda: len(sink.real()) >= 3)
        assert not pipeline.signal_lost
        camera.unplugged = True
        sink.wait_for("placeholders", lambda: len(sink.placeholders()) >= 3)
        assert pipeline.signal_lost
        assert pipeline.stats.source_failures == 1
        assert not camera.is_open  # released while lost, so a replugged device can reopen
        real_before = len(sink.real())
        camera.unplugged = False
        sink.wait_for("recovery", lambda: len(sink.real()) >= real_before + 3)
        assert not pipeline.signal_lost
    assert camera.opens == 2
    placeholder = sink.placeholders()[0]
    assert (placeholder.width, placeholder.height) == (WIDTH, HEIGHT)  # the last real size
    image = decode(placeholder.data, Codec.PNG)
    assert image.mean() < 80 and image.max() > 200  # dark, with text
    # Placeholders sit between the real frames, and seq never goes backwards.
    kinds = "".join("P" if f.placeholder else "R" for f in sink.frames)
    assert re.fullmatch("R+P+R+", kinds), kinds
    _assert_strictly_increasing(sink.frames)


def test_source_that_never_opens_gets_placeholders_of_the_default_size() -> None:
    camera = FakeCamera()
    camera.unplugged = True
    sink = Collector()
    pipeline = _pipeline(
        camera, sink, retry_interval_s=0.05, placeholder_interval_s=0.02, placeholder_size=(80, 60)
    )
    with pipeline:
        sink.wait_for("placeholders", lambda: len(sink.placeholders()) >= 2)
        assert pipeline.signal_lost
        camera.unplugged = False
        sink.wait_for("real frames", lambda: len(sink.real()) >= 1)
    assert {(f.width, f.height) for f in sink.placeholders()} == {(80, 60)}
    assert pipeline.stats.source_failures == 1


def test_seq_keeps_increasing_across_stop_and_start() -> None:
    sink = Collector()
    pipeline = _pipeline(FakeCamera(), sink)
    try:
        for run in range(3):
            pipeline.start()
            pipeline.start()  # a second start while running is a no-op
            target = 3 * (run + 1)
            sink.wait_for(f"frames of run {run}", lambda: len(sink.frames) >= target)  # noqa: B023
            pipeline.stop()
            pipeline.stop()  # idempotent
            # No frame can arrive after stop() returned: every thread that could
            # deliver one has ended (a state, not a pause that a late frame outlasts).
            assert not _pipeline_threads(), "a pipeline thread outlived stop()"
    finally:
        pipeline.stop()
    _assert_strictly_increasing(sink.frames)
    # One encoder cannot reorder, so nothing may have been discarded to keep order.
    assert pipeline.stats.frames_out_of_order == 0


def test_end_of_stream_calls_on_end_once_after_the_last_frame() -> None:
    images = [np.full((16, 16, 3), i, np.uint8) for i in range(5)]
    sink = Collector()
    pipeline = _pipeline(IterableSource(images), sink)
    try:
        pipeline.start()
        sink.wait_for("the end", lambda: bool(sink.ends))
        deadline = time.monotonic() + 5
        while pipeline.running and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not pipeline.running  # the capture thread exited by itself
    finally:
        pipeline.stop()
    assert sink.ends == ["end of stream"]
    assert sink.events[-1] == "end"
    # The newest image always gets out, even if older ones were dropped.
    assert int(decode(sink.frames[-1].data, Codec.PNG)[0, 0, 0]) == 4
    _assert_strictly_increasing(sink.frames)


def test_slow_encoder_drops_images_but_capture_keeps_going() -> None:
    source = FakeCamera(fps=400)
    sink = Collector()
    pipeline = CapturePipeline(source, SlowEncoder(0.05), sink.on_frame)
    with pipeline:
        sink.wait_for("4 frames", lambda: len(sink.frames) >= 4)
    stats = pipeline.stats
    assert stats.images_dropped > 0
    assert stats.images_captured > 2 * stats.frames_encoded
    # Every captured image was either encoded, dropped, or left in the slot at stop().
    assert 0 <= stats.images_captured - stats.images_dropped - stats.frames_encoded <= 1
    _assert_strictly_increasing(sink.frames)


def test_slow_on_frame_does_not_slow_capture() -> None:
    sink = Collector()

    def slow(frame: Frame) -> None:
        time.sleep(0.05)
        sink.on_frame(frame)

    pipeline = CapturePipeline(FakeCamera(fps=400), JpegEncoder(), slow)
    with pipeline:
        sink.wait_for("3 frames", lambda: len(sink.frames) >= 3)
    stats = pipeline.stats
    assert stats.images_dropped > 0 and stats.images_captured > 2 * len(sink.frames)


def test_a_source_that_is_not_live_is_read_only_when_an_encoder_is_free() -> None:
    source = TestPatternSource(WIDTH, HEIGHT, fps=0)  # unpaced: as fast as asked
    sink = Collector()
    pipeline = CapturePipeline(source, SlowEncoder(0.02), sink.on_frame)
    with pipeline:
        sink.wait_for("5 frames", lambda: len(sink.frames) >= 5)
    stats = pipeline.stats
    assert stats.images_dropped == 0  # nothing rendered only to be thrown away
    assert stats.images_captured - stats.frames_encoded <= 1
    _assert_strictly_increasing(sink.frames)


def test_several_workers_never_deliver_out_of_order() -> None:
    rng = random.Random(7)
    sink = Collector()
    encoder = SlowEncoder(lambda: rng.choice([0.0, 0.0, 0.01, 0.03]))
    pipeline = CapturePipeline(FakeCamera(fps=300), encoder, sink.on_frame, workers=3)
    with pipeline:
        sink.wait_for("30 frames", lambda: len(sink.frames) >= 30)
    stats = pipeline.stats
    _assert_strictly_increasing(sink.frames)
    assert stats.frames_encoded == len(sink.frames) + stats.frames_out_of_order


@pytest.mark.expect_error_log(r"capture callback .* failed \(further errors are only counted")
def test_failing_callback_is_counted_and_does_not_kill_the_encoder() -> None:
    calls: list[int] = []

    def broken(frame: Frame) -> None:
        calls.append(frame.seq)
        raise RuntimeError("viewer bug")

    pipeline = CapturePipeline(FakeCamera(), PngEncoder(0), broken)
    with pipeline:
        deadline = time.monotonic() + 5
        while len(calls) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(calls) >= 5
    assert pipeline.stats.callback_errors == len(calls)


def test_stop_is_prompt_with_a_slowly_paced_source() -> None:
    sink = Collector()
    pipeline = _pipeline(TestPatternSource(WIDTH, HEIGHT, fps=0.5), sink)
    try:
        pipeline.start()
        sink.wait_for("first frame", lambda: len(sink.frames) >= 1)
        started = time.monotonic()
        pipeline.stop()
        assert time.monotonic() - started < 1.0  # not the 2 s pacing period
    finally:
        pipeline.stop()


def test_stop_is_prompt_while_the_signal_is_lost() -> None:
    camera = FakeCamera()
    camera.unplugged = True
    sink = Collector()
    pipeline = _pipeline(camera, sink, retry_interval_s=10.0, placeholder_interval_s=10.0)
    try:
        pipeline.start()
        sink.wait_for("a placeholder", lambda: len(sink.frames) >= 1)
        started = time.monotonic()
        pipeline.stop()
        assert time.monotonic() - started < 1.0
    finally:
        pipeline.stop()


def test_stop_before_start_is_harmless() -> None:
    pipeline = _pipeline(FakeCamera(), Collector())
    pipeline.stop()
    assert not pipeline.running


def test_stop_from_inside_on_frame_does_not_deadlock() -> None:
    seen: list[int] = []
    pipeline: CapturePipeline | None = None

    def stop_from_inside(frame: Frame) -> None:
        seen.append(frame.seq)
        assert pipeline is not None
        pipeline.stop()  # only signals: the encoder thread cannot join itself

    pipeline = CapturePipeline(FakeCamera(), PngEncoder(0), stop_from_inside)
    try:
        pipeline.start()
        deadline = time.monotonic() + 5
        while pipeline.running and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not pipeline.running  # the capture thread obeyed the stop
        started = time.monotonic()
        pipeline.stop()  # the owner's stop joins everything
        assert time.monotonic() - started < 1.0
    finally:
        pipeline.stop()
    assert len(seen) == 1
    assert pipeline.stats.callback_errors == 0


@pytest.mark.parametrize(
    "options",
    [{"workers": 0}, {"workers": 17}, {"retry_interval_s": 0}, {"placeholder_interval_s": -1}],
)
def test_bad_options(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        _pipeline(FakeCamera(), Collector(), **options)
