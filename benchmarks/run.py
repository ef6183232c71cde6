"""camstream benchmark: camstream vs the seed's naive design vs the physical limit.

Run from the repository root::

    python benchmarks/run.py                 # full run, 3 repeats (about 10 minutes)
    python benchmarks/run.py --quick         # short durations (about 2 minutes)
    python benchmarks/run.py --scenario paced --repeat 5

Server and viewers run on 127.0.0.1 in separate processes (the server's CPU
time and RSS are read from /proc). Every scenario runs camstream and the seed
baseline (``seed_baseline.py``) in the same run; the physical limit (encode +
loopback + decode of one frame) is measured in the same run too. Each figure
is the median over ``--repeat`` runs with the min-max beside it. The table is
printed and the raw runs plus the summary are written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import aggregate, render
from _scenarios import RESOLUTIONS, SCENARIOS, Durations, plan
from _targets import check_targets, render_targets

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short durations (smoke runs)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="run only this scenario (repeatable); default: all",
    )
    parser.add_argument(
        "--resolution",
        action="append",
        choices=[*RESOLUTIONS, "320x240"],
        help="resolutions for physical/max/paced (repeatable); default: all three",
    )
    parser.add_argument("--measure-s", type=float, help="override the measurement window")
    parser.add_argument("--slow-s", type=float, help="override the slow-viewer duration")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    durations = Durations.for_mode(args.quick)
    if args.measure_s is not None:
        durations = Durations(**{**vars(durations), "measure_s": args.measure_s})
    if args.slow_s is not None:
        durations = Durations(**{**vars(durations), "slow_s": args.slow_s})
    RESOLUTIONS.setdefault("320x240", (320, 240))
    resolutions = tuple(args.resolution or ("640x480", "1280x720", "1920x1080"))
    scenarios = tuple(args.scenario or SCENARIOS)
    if (
        any(s in scenarios for s in ("max", "paced", "slow", "fanout"))
        and "physical" not in scenarios
    ):
        scenarios = ("physical", *scenarios)  # every figure is shown beside the physical limit
    jobs = plan(scenarios, durations, resolutions)
    started = time.monotonic()
    runs: list[dict[str, dict[str, Any]]] = []
    host = machine()
    print(f"camstream benchmark: {len(jobs)} jobs x {args.repeat} repeats, {durations}")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in host.items()), flush=True)
    for repeat in range(args.repeat):
        run: dict[str, dict[str, Any]] = {}
        for index, job in enumerate(jobs, 1):
            t0 = time.monotonic()
            try:
                result = job.run()
            except Exception as exc:  # one broken job must not lose the whole run
                result = {"errors": [f"{type(exc).__name__}: {exc}"]}
            run[job.key] = result
            print(
                f"[{repeat + 1}/{args.repeat}] {index:2}/{len(jobs)} {job.key:40} "
                f"{time.monotonic() - t0:5.1f}s  {_brief(result)}",
                flush=True,
            )
        runs.append(run)
        _write(args.json, {"meta": {"partial": True}, "runs": runs})  # survive a crash
    summary = aggregate(runs)
    targets = check_targets(summary)
    print(render(summary))
    print(render_targets(targets))
    elapsed = time.monotonic() - started
    print(f"\n{len(jobs) * args.repeat} jobs in {elapsed:.0f} s; JSON: {args.json}")
    document = {
        "meta": {
            "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "repeats": args.repeat,
            "quick": args.quick,
            "durations": vars(durations),
            "scenarios": scenarios,
            "resolutions": resolutions,
            **host,
            "elapsed_s": round(elapsed, 1),
        },
        "summary": summary,
        "targets": targets,
        "runs": runs,
    }
    _write(args.json, document)
    return document


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import cv2
    import simplejpeg

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "simplejpeg": simplejpeg.__version__,
    }


def _write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, default=str))


def _brief(result: dict[str, Any]) -> str:
    if result.get("errors"):
        return f"ERRORS: {result['errors']}"
    if "fps_min" in result:
        age = result["age_ms"]
        p50 = age["p50"] if age["p50"] is not None else float("nan")
        p99 = age["p99"] if age["p99"] is not None else float("nan")
        text = f"fps(min) {result['fps_min']:.1f}  age p50 {p50:.1f} p99 {p99:.1f} ms"
        if result.get("other_cpu_pct", 0) > 15:
            text += f"  (disturbed: other processes used {result['other_cpu_pct']:.0f}% CPU)"
        return text
    if "ttff_ms" in result:
        return f"ttff p50 {result['ttff_ms']['p50']:.1f} max {result['ttff_ms']['max']:.1f} ms"
    if "age_ms" in result:
        return f"age {result['age_ms']:.2f} ms  fps {result['fps']:.0f}"
    return ""


if __name__ == "__main__":
    main()
