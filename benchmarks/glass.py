"""Glass to glass: the age of the picture on the screen, in every viewer we advertise.

Run from the repository root, as root (``benchmarks/install-glass-deps`` first)::

    python benchmarks/glass.py                 # every viewer, 3 runs of 65 s each
    python benchmarks/glass.py --quick         # every viewer, 1 run of 8 s
    python benchmarks/glass.py --viewer ffplay-readme --viewer vlc-readme --runs 5

A server (``_glass_serve.py``) streams a camera-like 720p30 scene with each
frame's capture time and counter painted into its pixels. Each viewer runs
alone on its own ``Xvfb -ac`` display; ``mss`` grabs the region of the screen
where the stamp is shown every few milliseconds and reads it back. Reported
per viewer, as the median over the runs: age on screen p50/p99, distinct frames
per second on screen, the median age around 1, 15 and 60 s (a growing queue
shows up there), and the share of grabs with no readable stamp (torn or
covered). VLC refuses to run as root, so it runs as the user
``camstream-bench`` (created by ``install-glass-deps``).

``--keep-screens DIR`` saves one whole-screen PNG per viewer and run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _glass_measure import AGE_AT_S, grab_stamps, summarize, xvfb
from _glass_viewers import BENCH_USER, BY_NAME, VIEWERS, Viewer

HERE = Path(__file__).resolve().parent


# -- processes (each started here and stopped by its own PID / process group) ----------


@contextlib.contextmanager
def glass_server(impl: str, fps: float, width: int, height: int) -> Iterator[int]:
    command = [sys.executable, str(HERE / "_glass_serve.py"), "--impl", impl]
    command += ["--fps", str(fps), "--width", str(width), "--height", str(height)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {impl} server did not start (exit {process.wait(10)})")
        yield int(json.loads(line)["port"])
    finally:
        assert process.stdin is not None
        process.stdin.close()  # "quit"
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _user_env(user: str, display: str, home: str) -> dict[str, str]:
    entry = pwd.getpwnam(user)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "USER": user,
        "DISPLAY": display,
        "XDG_RUNTIME_DIR": home,
    }


@contextlib.contextmanager
def launched(
    viewer: Viewer, port: int, display: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """The viewer on ``display``, in its own process group (Chromium and VLC fork helpers)."""
    with tempfile.TemporaryDirectory(prefix="glass-") as home, open(log, "wb") as out:
        command = viewer.command(port, profile=os.path.join(home, "profile"))
        if viewer.user is not None:
            env = _user_env(viewer.user, display, home)
        else:
            env = {**os.environ, "DISPLAY": display, "PYTHONUNBUFFERED": "1"}
            env.pop("WAYLAND_DISPLAY", None)
        env.update(viewer.env)
        process = subprocess.Popen(
            command,
            env=env,
            # a pipe kept open: VLC without a GUI reads commands from stdin and quits at EOF
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            user=viewer.user,
            start_new_session=True,
            cwd=home,
        )
        try:
            yield process
        finally:
            _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, to the process group this one leads (its helpers too)."""
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    if process.stdin is not None:
        process.stdin.close()


def shown_command(viewer: Viewer) -> str:
    """The viewer's command line for the table, as a user would type it."""
    command = " ".join([*(f"{k}={v}" for k, v in viewer.env), *viewer.command(8080, "DIR")])
    command = command.replace(f"{sys.executable} -m camstream", "camstream")
    return command.replace(sys.executable, "python").replace(str(HERE) + "/", "benchmarks/")


# -- one run ----------------------------------------------------------------------


def run_viewer(viewer: Viewer, args: argparse.Namespace, run: int, logs: Path) -> dict[str, Any]:
    width, height = (int(v) for v in args.resolution.split("x"))
    log = logs / f"{viewer.name}-{run}.log"
    screen = str(args.keep_screens / f"{viewer.name}-{run}.png") if args.keep_screens else None
    with (
        xvfb() as display,
        glass_server(viewer.server, args.fps, width, height) as port,
        launched(viewer, port, display, log) as process,
    ):
        grab = grab_stamps(
            display,
            args.duration,
            interval_s=args.interval_ms / 1000,
            alive=lambda: process.poll() is None,
            keep_screen=screen,
        )
        exited = process.poll()
    result = summarize(grab, warmup_s=args.warmup)
    result["command"] = shown_command(viewer)
    if grab.box is None:
        tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
        result["error"] = f"no stamp seen (viewer exit {exited}); log tail: {tail!r}"
    return result


def _median(runs: list[dict[str, Any]], *path: str) -> float | None:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            values.append(float(value))
    return statistics.median(values) if values else None


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "runs": len(runs),
        "age_p50_ms": _median(runs, "age_ms", "p50"),
        "age_p99_ms": _median(runs, "age_ms", "p99"),
        "fps": _median(runs, "fps"),
        "unread_fraction": _median(runs, "unread_fraction"),
        "errors": [run["error"] for run in runs if "error" in run],
    }
    for t in AGE_AT_S:
        out[f"age_at_{t}s_ms"] = _median(runs, "age_at_ms", f"{t:g}")
    return out


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(summary: dict[str, dict[str, Any]], commands: dict[str, str]) -> str:
    head = (
        "| viewer | command | age p50 / p99 ms | fps on screen | age @1 / @15 / @60 s ms | unread |"
    )
    lines = [head, "|---|---|---|---|---|---|"]
    for name, s in summary.items():
        over_time = " / ".join(_fmt(s[f"age_at_{t}s_ms"]) for t in AGE_AT_S)
        unread = "-" if s["unread_fraction"] is None else f"{100 * s['unread_fraction']:.0f}%"
        lines.append(
            f"| {name} | `{commands[name]}` | {_fmt(s['age_p50_ms'])} / {_fmt(s['age_p99_ms'])} "
            f"| {_fmt(s['fps'], 1)} | {over_time} | {unread} |"
        )
        lines.extend(f"|  | error: {error[:200]} |||||" for error in s["errors"])
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        model = next((line.split(":", 1)[1].strip() for line in info if "model name" in line), "")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "loadavg_1_5_15": os.getloadavg(),
        "python": platform.python_version(),
        "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewer", action="append", choices=list(BY_NAME), help="repeatable")
    parser.add_argument("--runs", type=int, help="runs per viewer, median reported (default 3)")
    parser.add_argument("--duration", type=float, help="seconds grabbed per run (default 65)")
    parser.add_argument("--experiments", action="store_true", help="run the experiments too")
    parser.add_argument("--quick", action="store_true", help="default to 1 run of 8 s")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--resolution", default="1280x720")
    parser.add_argument(
        "--warmup", type=float, help="seconds left out of p50/p99/fps (default 2; --quick 1)"
    )
    parser.add_argument("--interval-ms", type=float, default=5.0, help="time between grabs")
    parser.add_argument("--json", type=Path, help="write runs and summary here")
    parser.add_argument("--keep-logs", type=Path, help="keep each viewer's output here")
    parser.add_argument("--keep-screens", type=Path, help="save a screen grab per run here")
    args = parser.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3)
    args.duration = args.duration or (8.0 if args.quick else 65.0)
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 2.0
    return args


def missing_tools(viewers: list[Viewer]) -> list[str]:
    needed = {"Xvfb"} | {viewer.argv[0] for viewer in viewers if "{" not in viewer.argv[0]}
    missing = sorted(tool for tool in needed if shutil.which(tool) is None)
    if any(viewer.user for viewer in viewers):
        try:
            pwd.getpwnam(BENCH_USER)
        except KeyError:
            missing.append(f"user {BENCH_USER}")
    with contextlib.suppress(ImportError):
        import mss  # noqa: F401

        return missing
    return [*missing, "mss (pip)"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.viewer:
        viewers = [BY_NAME[name] for name in args.viewer]
    else:
        viewers = [v for v in VIEWERS if args.experiments or not v.experiment]
    missing = missing_tools(viewers)
    if missing:
        print(f"missing: {', '.join(missing)}; run benchmarks/install-glass-deps", file=sys.stderr)
        return 2
    if args.keep_screens:
        args.keep_screens.mkdir(parents=True, exist_ok=True)
    meta = machine()
    print(f"machine: {meta}", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="glass-logs-") as temporary:
        logs = args.keep_logs or Path(temporary)
        logs.mkdir(parents=True, exist_ok=True)
        for run in range(args.runs):  # viewers interleaved, so drift hits all alike
            for viewer in viewers:
                result = run_viewer(viewer, args, run, logs)
                runs.setdefault(viewer.name, []).append(result)
                age = result.get("age_ms", {})
                print(
                    f"  run {run + 1} {viewer.name:<20} p50 {_fmt(age.get('p50'))} ms  "
                    f"p99 {_fmt(age.get('p99'))} ms  fps {_fmt(result.get('fps'), 1)}"
                    + (f"  ERROR {result['error'][:300]}" if "error" in result else ""),
                    flush=True,
                )
    summary = {name: aggregate(results) for name, results in runs.items()}
    commands = {name: results[0]["command"] for name, results in runs.items()}
    print(
        f"\n{args.resolution}@{args.fps:g}, {args.runs} run(s) x {args.duration:g} s, "
        f"medians; load average at start {meta['loadavg_1_5_15']}\n"
    )
    print(render(summary, commands))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
