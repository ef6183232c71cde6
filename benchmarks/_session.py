"""One measured session: a server process, N viewers in child processes, a window.

Timeline (wall clock, shared by all processes)::

    go ── warm-up ── [window start ─── measurement ─── window end] ── stop

The server's CPU time, counters and RSS are read at the window's edges; the
viewers' samples are filtered to the window. The slow-viewer scenario uses no
warm-up and keeps the whole time series.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _measure import percentiles, proc_cpu_s, proc_minor_faults, proc_rss_bytes, system_busy_s
from _viewer import decoder_name, viewer_process

SERVE_SCRIPT = Path(__file__).with_name("_serve.py")
_SPAWN = multiprocessing.get_context("spawn")


@dataclass
class SessionSpec:
    server: dict[str, Any]  # options for _serve.py (impl, width, height, fps, ...)
    viewer: dict[str, Any] = field(default_factory=dict)  # options for _viewer.py
    viewers: int = 1
    processes: int = 1  # viewers are spread over this many child processes
    warmup_s: float = 1.0
    measure_s: float = 4.0
    checkpoints_s: tuple[float, ...] = ()  # report the age around these times after go


class ServerProcess:
    """``_serve.py`` in a subprocess; talks JSON lines over its stdin/stdout."""

    def __init__(self, opts: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVE_SCRIPT), json.dumps(opts)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark server failed to start: {opts}")
        ready = json.loads(line)
        self.port: int = ready["port"]
        self.pid: int = ready["pid"]

    def status(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("status\n")
        self.proc.stdin.flush()
        status: dict[str, Any] = json.loads(self.proc.stdout.readline())
        status["cpu_s"] = proc_cpu_s(self.pid)
        status["rss_bytes"] = proc_rss_bytes(self.pid)
        status["minor_faults"] = proc_minor_faults(self.pid)
        status["system_busy_s"] = system_busy_s()
        status["t"] = time.monotonic()
        return status

    def close(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def _sleep_until(t_ns: int) -> None:
    delay = (t_ns - time.time_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


def _start_viewers(counts: list[int], viewer: dict[str, Any]) -> list[tuple[Any, Any]]:
    children = []
    for count in counts:
        parent_end, child_end = _SPAWN.Pipe()
        proc = _SPAWN.Process(target=viewer_process, args=({**viewer, "viewers": count}, child_end))
        proc.start()
        children.append((proc, parent_end))
    return children


def _wait_ready(children: list[tuple[Any, Any]]) -> None:
    for _proc, pipe in children:
        if not pipe.poll(60):
            raise RuntimeError("a viewer process did not become ready")
        pipe.recv()


def _stop_children(children: list[tuple[Any, Any]]) -> None:
    for proc, pipe in children:
        if proc.is_alive():
            proc.kill()
            proc.join()
        pipe.close()


def run_session(spec: SessionSpec) -> dict[str, Any]:
    """Run one session and return its metrics (see :func:`summarize`)."""
    counts = [spec.viewers // spec.processes] * spec.processes
    for i in range(spec.viewers % spec.processes):
        counts[i] += 1
    # Viewer processes import while the server starts; they learn the port at "go".
    children = _start_viewers(counts, {"impl": spec.server["impl"], **spec.viewer})
    server: ServerProcess | None = None
    try:
        server = ServerProcess(spec.server)
        _wait_ready(children)
        go_ns = time.time_ns() + 50_000_000
        start_ns = go_ns + int(spec.warmup_s * 1e9)
        end_ns = start_ns + int(spec.measure_s * 1e9)
        stop_ns = end_ns + 100_000_000
        for _proc, pipe in children:
            pipe.send(("go", server.port, go_ns, start_ns, end_ns, stop_ns))
        _sleep_until(start_ns)
        before = server.status()
        _sleep_until(end_ns)
        after = server.status()
        results = []
        for proc, pipe in children:
            if not pipe.poll(60 + spec.measure_s):
                raise RuntimeError("a viewer process did not report")
            results.append(pipe.recv()[1])
            proc.join(10)
    finally:
        _stop_children(children)
        if server is not None:
            server.close()
    return summarize(
        spec,
        results=results,
        before=before,
        after=after,
        go_ns=go_ns,
        start_ns=start_ns,
        end_ns=end_ns,
    )


def summarize(
    spec: SessionSpec,
    *,
    results: list[dict[str, Any]],
    before: dict[str, Any],
    after: dict[str, Any],
    go_ns: int,
    start_ns: int,
    end_ns: int,
) -> dict[str, Any]:
    viewers = [v for r in results for v in r["viewers"]]
    errors = [v["error"] for v in viewers if v["error"]]
    ages_ms: list[float] = []
    fps: list[float] = []
    dropped = 0
    nbytes: list[int] = []
    for viewer in viewers:
        window = [s for s in viewer["samples"] if start_ns <= s[0] < end_ns]
        fps.append(len(window) / spec.measure_s)
        ages_ms += [s[1] / 1e6 for s in window]
        nbytes += [s[3] for s in window]
        if window:
            dropped += window[-1][2] - window[0][2] + 1 - len(window)
    frames_decoded = len(ages_ms)
    server_cpu_s = after["cpu_s"] - before["cpu_s"]
    encoded = after["frames_encoded"] - before["frames_encoded"]
    client_cpu = [r["cpu_s"] for r in results if r["cpu_s"] is not None]
    # CPU used by anything else on the machine meanwhile (other jobs, this parent):
    # a large figure means the run was disturbed and its numbers are not comparable.
    busy_s = after["system_busy_s"] - before["system_busy_s"]
    other_cpu_s = busy_s - server_cpu_s - sum(client_cpu)
    out: dict[str, Any] = {
        "decoder": decoder_name({"impl": spec.server["impl"], **spec.viewer}),
        "viewers": len(viewers),
        "fps_per_viewer": fps,
        "fps_min": min(fps) if fps else 0.0,
        "fps_median": statistics.median(fps) if fps else 0.0,
        "age_ms": percentiles(ages_ms),
        "frames_dropped_per_viewer": dropped / max(1, len(viewers)),
        "frames_dropped_per_s": dropped / max(1, len(viewers)) / spec.measure_s,
        "bytes_per_frame": statistics.fmean(nbytes) if nbytes else None,
        "server_frames_encoded_per_s": encoded / spec.measure_s,
        "server_cpu_pct": 100.0 * server_cpu_s / spec.measure_s,
        "server_cpu_ms_per_frame": 1000.0 * server_cpu_s / encoded if encoded else None,
        "server_page_faults_per_frame": (
            (after["minor_faults"] - before["minor_faults"]) / encoded if encoded else None
        ),
        "client_cpu_pct": 100.0 * sum(client_cpu) / spec.measure_s if client_cpu else None,
        "client_cpu_ms_per_frame": (
            1000.0 * sum(client_cpu) / frames_decoded if client_cpu and frames_decoded else None
        ),
        "client_page_faults_per_frame": (
            sum(r["minor_faults"] for r in results) / frames_decoded if frames_decoded else None
        ),
        "server_rss_bytes": after["rss_bytes"],
        "other_cpu_pct": 100.0 * other_cpu_s / spec.measure_s,
        "ttff_ms": [v["ttff_ms"] for v in viewers if v["ttff_ms"] is not None],
        "errors": errors,
    }
    if "images_dropped" in after:
        out["server_images_dropped_per_s"] = (
            after["images_dropped"] - before["images_dropped"]
        ) / spec.measure_s
    if spec.checkpoints_s:
        out["age_at_s"] = _age_at(viewers, go_ns, spec.checkpoints_s)
    return out


def _age_at(
    viewers: list[dict[str, Any]], go_ns: int, checkpoints_s: tuple[float, ...]
) -> dict[str, float | None]:
    """Median age of the frames shown in the second before each checkpoint."""
    out: dict[str, float | None] = {}
    for t in checkpoints_s:
        lo, hi = go_ns + int((t - 1.0) * 1e9), go_ns + int(t * 1e9)
        ages = [s[1] / 1e6 for v in viewers for s in v["samples"] if lo <= s[0] < hi]
        out[f"{t:g}"] = statistics.median(ages) if ages else None
    return out


def run_ttff(server_opts: dict[str, Any], viewer_opts: dict[str, Any]) -> dict[str, Any]:
    """Time to first frame: fresh clients, one after another, against one server."""
    viewer = {"impl": server_opts["impl"], **viewer_opts, "mode": "ttff"}
    children = _start_viewers([1], viewer)
    server: ServerProcess | None = None
    try:
        server = ServerProcess(server_opts)
        _wait_ready(children)
        now = time.time_ns()
        _proc, pipe = children[0]
        pipe.send(("go", server.port, now, now, now, now))
        budget = 30 + viewer["trials"] * (viewer.get("gap_s", 0.2) + 5)
        if not pipe.poll(budget):
            raise RuntimeError("the ttff viewer did not report")
        result = pipe.recv()[1]["viewers"][0]
        _proc.join(10)
    finally:
        _stop_children(children)
        if server is not None:
            server.close()
    trials = result["ttff_trials_ms"]
    return {
        "ttff_ms": percentiles(trials),
        "trials_ms": trials,
        "errors": [result["error"]] if result["error"] else [],
    }
