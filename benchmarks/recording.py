"""Recording on against off: server CPU, viewer age and disk bytes per hour.

Run from the repository root::

    python benchmarks/recording.py            # 720p30, 3 repeats of 8 s per mode
    python benchmarks/recording.py --quick    # 1 repeat of 2 s (a smoke run)

A 1280x720 test pattern that claims to be live (read continuously, as a
camera) at 30 fps, one camstream viewer in a child process, and the server in
its own process (``_serve_recording.py``) so its CPU time comes from /proc.
"on" feeds a :class:`camstream.recording.Recorder` every encoded frame (MJPEG
into Matroska segments, no re-encode) in a temporary directory; "off" is the
same server without it. The modes alternate within each repeat, so a busy
machine disturbs both alike; every figure is the median over the repeats with
the min-max. Disk bytes per hour = bytes on disk / span of recorded capture
times x 3600.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _session
from _session import SessionSpec, run_session

SERVE_SCRIPT = Path(__file__).with_name("_serve_recording.py")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat of 2 s (smoke run)")
    parser.add_argument("--repeat", type=int, help="runs per mode (default 3; --quick: 1)")
    parser.add_argument("--measure-s", type=float, help="measurement window (default 8 s)")
    parser.add_argument("--resolution", default="1280x720", help="WIDTHxHEIGHT (default 1280x720)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--segment-s", type=float, default=60.0, help="recorder segment length")
    parser.add_argument("--json", type=Path, help="also write the runs and medians here")
    return parser.parse_args(argv)


def disk_usage(record_dir: str) -> dict[str, Any]:
    """Bytes on disk, the recorded span and the recorder's own counters."""
    from camstream.recording import probe_segment, rebuild_index

    directory = os.path.join(record_dir, "bench")
    index = rebuild_index(directory, probe_segment)
    segments = list(index)
    total = sum(s.size_bytes for s in segments)
    span_s = (segments[-1].end_ns - segments[0].start_ns) / 1e9 if segments else 0.0
    with open(os.path.join(record_dir, "recorder_stats.json"), encoding="utf-8") as f:
        stats = json.load(f)
    return {
        "disk_bytes": total,
        "recorded_span_s": span_s,
        "disk_bytes_per_hour": total / span_s * 3600 if span_s > 0 else None,
        "recorder_frames_written": stats["frames_written"],
        "recorder_frames_dropped": stats["frames_dropped"],
        "segments": len(segments),
    }


def run_once(args: argparse.Namespace, record: bool) -> dict[str, Any]:
    width, height = (int(v) for v in args.resolution.split("x"))
    with tempfile.TemporaryDirectory(prefix="camstream-bench-rec-") as record_dir:
        server = {
            "impl": "camstream",
            "width": width,
            "height": height,
            "fps": args.fps,
            "live_source": True,
            "segment_s": args.segment_s,
            "record_dir": record_dir if record else None,
        }
        spec = SessionSpec(server=server, viewers=1, warmup_s=1.0, measure_s=args.measure_s)
        result = run_session(spec)
        out = {
            "server_cpu_pct": result["server_cpu_pct"],
            "age_ms_p50": result["age_ms"]["p50"],
            "age_ms_p95": result["age_ms"]["p95"],
            "fps": result["fps_median"],
            "other_cpu_pct": result["other_cpu_pct"],
            "errors": result["errors"],
        }
        if record:
            out.update(disk_usage(record_dir))
    return out


def _median(runs: list[dict[str, Any]], key: str) -> tuple[float, float, float] | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def render(runs: dict[str, list[dict[str, Any]]]) -> str:
    rows = [
        ("server CPU %", "server_cpu_pct", 1.0, "{:.1f}"),
        ("viewer age p50 ms", "age_ms_p50", 1.0, "{:.1f}"),
        ("viewer age p95 ms", "age_ms_p95", 1.0, "{:.1f}"),
        ("viewer fps", "fps", 1.0, "{:.1f}"),
        ("disk MB/hour", "disk_bytes_per_hour", 1e-6, "{:.0f}"),
        ("recorder frames dropped", "recorder_frames_dropped", 1.0, "{:.0f}"),
        ("other CPU % (noise)", "other_cpu_pct", 1.0, "{:.1f}"),
    ]
    lines = [f"{'':26} {'off':>22} {'on':>22}"]
    for label, key, scale, fmt in rows:
        cells = []
        for mode in ("off", "on"):
            m = _median(runs[mode], key)
            if m is None:
                cells.append(f"{'-':>22}")
            else:
                med, lo, hi = (v * scale for v in m)
                text = f"{fmt.format(med)} ({fmt.format(lo)}-{fmt.format(hi)})"
                cells.append(f"{text:>22}")
        lines.append(f"{label:26} {cells[0]} {cells[1]}")
    off, on = _median(runs["off"], "server_cpu_pct"), _median(runs["on"], "server_cpu_pct")
    if off and on:
        lines.append(f"recording adds {on[0] - off[0]:+.1f} CPU percentage points (median)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    args.measure_s = args.measure_s or (2.0 if args.quick else 8.0)
    _session.SERVE_SCRIPT = SERVE_SCRIPT  # ServerProcess starts this server script
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for i in range(repeat):
        for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
            runs[mode].append(run_once(args, record=mode == "on"))
            print(f"run {i + 1}/{repeat} {mode}: {runs[mode][-1]}", file=sys.stderr)
    print(f"recording on vs off, {args.resolution} @ {args.fps:g} fps, 1 viewer, "
          f"{repeat} x {args.measure_s:g} s per mode")  # fmt: skip
    print(render(runs))
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
