"""The benchmark's scenarios, as a list of jobs; one repeat runs every job once.

Each job has a key ``scenario/label/impl`` (for example ``paced/1280x720/seed``)
under which its metrics are stored. ``impl`` is ``camstream`` or ``seed`` (the
yardstick); the physical limit is measured separately per resolution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _physical import codec_comparison, physical_limit, send_copy_comparison
from _session import SessionSpec, run_session, run_ttff

RESOLUTIONS = {"640x480": (640, 480), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}
MAIN = "1280x720"
IMPLS = ("camstream", "seed")
SCENARIOS = ("physical", "max", "paced", "slow", "fanout", "ttff", "tuning")


@dataclass(frozen=True)
class Durations:
    warmup_s: float
    measure_s: float
    slow_s: float
    ttff_trials: int
    micro_repeats: int

    @classmethod
    def for_mode(cls, quick: bool) -> Durations:
        if quick:
            return cls(warmup_s=0.5, measure_s=1.5, slow_s=5.0, ttff_trials=3, micro_repeats=10)
        return cls(warmup_s=1.0, measure_s=3.0, slow_s=15.0, ttff_trials=5, micro_repeats=30)


@dataclass(frozen=True)
class Job:
    key: str
    run: Callable[[], dict[str, Any]]


def _server(impl: str, res: str, fps: float, **extra: Any) -> dict[str, Any]:
    width, height = RESOLUTIONS[res]
    opts = {"impl": impl, "width": width, "height": height, "fps": fps, "quality": 80}
    # Viewers arrive at "go"; keep capture warm so the warm-up is the pipeline's, not start-up.
    opts["always_capture"] = True
    opts.update(extra)
    return opts


def _session(d: Durations, server: dict[str, Any], **kw: Any) -> Callable[[], dict[str, Any]]:
    spec = SessionSpec(server=server, warmup_s=d.warmup_s, measure_s=d.measure_s)
    for name, value in kw.items():
        setattr(spec, name, value)
    return lambda: run_session(spec)


def plan(scenarios: tuple[str, ...], d: Durations, resolutions: tuple[str, ...]) -> list[Job]:
    jobs: list[Job] = []
    if "physical" in scenarios:
        for res in resolutions:
            width, height = RESOLUTIONS[res]
            jobs.append(
                Job(
                    f"physical/{res}/limit",
                    lambda w=width, h=height: physical_limit(w, h, repeats=d.micro_repeats),
                )
            )
    for scenario, fps in (("max", 0), ("paced", 30)):
        if scenario in scenarios:
            for res in resolutions:
                for impl in IMPLS:
                    jobs.append(
                        Job(f"{scenario}/{res}/{impl}", _session(d, _server(impl, res, fps)))
                    )
    main = MAIN if MAIN in resolutions else resolutions[0]
    if "slow" in scenarios:
        checkpoints = tuple(t for t in (1.0, 5.0, 10.0, 15.0) if t <= d.slow_s) or (d.slow_s,)
        for impl in IMPLS:
            run = _session(
                d,
                _server(impl, main, 30),
                viewer={"work_ms": 50},
                warmup_s=0.0,
                measure_s=d.slow_s,
                checkpoints_s=checkpoints,
            )
            jobs.append(Job(f"slow/{main}/{impl}", run))
    if "fanout" in scenarios:
        for viewers in (1, 4, 16):
            for impl in IMPLS:
                run = _session(
                    d, _server(impl, main, 30), viewers=viewers, processes=min(viewers, 8)
                )
                jobs.append(Job(f"fanout/{viewers}/{impl}", run))
    if "ttff" in scenarios:
        # cold: capture stopped (linger 0.05 s) and the last frame too old (> 0.5 s) to be
        # handed to a new viewer, so the first frame is captured after the client starts.
        cold = {"always_capture": False, "capture_linger_s": 0.05}
        for label, impl, extra, gap_s in (
            ("warm", "camstream", {}, 0.3),
            ("cold", "camstream", cold, 0.8),
            ("cold", "seed", {}, 0.3),
        ):
            server = _server(impl, main, 30, **extra)
            trials = {"trials": d.ttff_trials, "gap_s": gap_s}
            jobs.append(Job(f"ttff/{label}/{impl}", lambda s=server, t=trials: run_ttff(s, t)))
    if "tuning" in scenarios:
        jobs += _tuning_jobs(d, main)
    return jobs


def _tuning_jobs(d: Durations, main: str) -> list[Job]:
    """Where the time goes: one knob at a time against camstream's defaults.

    Defaults: client credit window 2, one encode worker, TCP_NODELAY on, the test
    pattern read only when an encoder is free (it is not live), viewers decoding
    with ``camstream.codec.decode`` (simplejpeg), glibc's malloc as it comes.
    """
    jobs: list[Job] = []
    tuned = {"malloc_tuned": True}
    cv2 = {"decoder": "cv2"}
    big = "1920x1080"
    # (label, resolution, fps, server options, viewer options, viewers)
    variants: list[tuple[str, str, int, dict[str, Any], dict[str, Any], int]] = [
        ("max-credit1", main, 0, {}, {"credit_window": 1}, 1),
        ("max-credit4", main, 0, {}, {"credit_window": 4}, 1),
        ("max-credit8", main, 0, {}, {"credit_window": 8}, 1),
        ("max-workers2", main, 0, {"encode_workers": 2}, {}, 1),
        ("max-nodelay-off", main, 0, {"nodelay": False}, {"nodelay": False}, 1),
        ("max-live-source", main, 0, {"live_source": True}, {}, 1),
        ("max-cv2-decode", main, 0, {}, cv2, 1),
        ("max-cv2-decode+malloc-tuned", main, 0, tuned, {**cv2, **tuned}, 1),
        ("max-malloc-tuned", main, 0, tuned, tuned, 1),
        ("paced-credit1", main, 30, {}, {"credit_window": 1}, 1),
        ("paced-nodelay-off", main, 30, {"nodelay": False}, {"nodelay": False}, 1),
        ("paced-cv2-decode", main, 30, {}, cv2, 1),
        ("fanout16-cv2-decode", main, 30, {}, cv2, 16),
        (f"max-workers2-{big}", big, 0, {"encode_workers": 2}, {}, 1),
        (f"max-live-source-{big}", big, 0, {"live_source": True}, {}, 1),
    ]
    for label, res, fps, server_extra, viewer, viewers in variants:
        server = _server("camstream", res, fps, **server_extra)
        run = _session(d, server, viewer=viewer, viewers=viewers, processes=min(viewers, 8))
        jobs.append(Job(f"tuning/{label}/camstream", run))

    def micro() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for res in (main, big):
            width, height = RESOLUTIONS[res]
            codecs = codec_comparison(width, height, repeats=d.micro_repeats)
            copies = send_copy_comparison(codecs["bytes_cv2_420"], repeats=d.micro_repeats)
            out[res] = {**codecs, **copies}
        return out

    jobs.append(Job("tuning/micro/bench", micro))
    return jobs
