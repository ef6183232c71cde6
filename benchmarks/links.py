"""Thin and long links: camstream over a shaped, delayed path (issue 8). Not a test.

    sudo python benchmarks/links.py          # 2/5/20 Mbit/s, unshaped x 0/100/200 ms; 60 s x 3
    sudo python benchmarks/links.py --quick  # 8 s, 1 run
    sudo python benchmarks/links.py --rates 5 --rtts 0 --duration 10 --viewers native
    sudo python benchmarks/links.py --variant 'adaptive={"adaptive": true}' \\
                                    --variant 'no-adaptive={"adaptive": false}'

The path. Two network namespaces made for the run, joined by a veth pair; the
server side's veth is shaped with ``tc qdisc ... tbf`` (this kernel has no
netem), so the server's own TCP socket faces the bottleneck, as on a real
link, and what its kernel reports (``TCP_INFO``) is about that link. (Shaping a
loopback instead would pass every relayed byte through the shaper twice.) A
userspace relay in the viewer's namespace, after the bottleneck, adds a fixed
one-way delay in each direction (half the round trip).

The source is camera-like (textured, panning, noisy: 720p q80 is ~150 KB) at
30 fps, passed to ``camstream.Server`` as an iterable. Viewers: the native one
through ``camstream.VideoCapture``, an MJPEG one reading ``/stream.mjpg``
part by part, and the seed's client against the seed server. Frame age is the
viewer's wall clock after decoding minus the capture time (the namespaces
share the host's clock).

``--variant LABEL=JSON`` runs the camstream server with extra ``Server``
options (repeatable); until the adaptive server is integrated the default is
today's server alone (``today={}``). Reported per setting, medians over the
runs: delivered fps and age p50/p99 after the first second, median age around
1, 15 and 60 s, bytes/s, and the histogram of received widths (the tiers).
Needs root, ``ip`` and ``tc`` (iproute2); without them it says so and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = Path(__file__).with_name("_links_roles.py")
SERVER_ADDR, VIEWER_ADDR = "10.231.0.1", "10.231.0.2"
TIMELINE_S = (1, 15, 60)
#: Viewers that come with their own server: the seed's, and the delivery prototype.
OWN_SERVER = ("seed", "proto", "proto-http")


@dataclass(frozen=True)
class Setting:
    rate_mbit: float  # 0: unshaped
    rtt_ms: int
    label: str  # today / adaptive / seed ...
    viewer: str  # native / mjpeg / seed
    server_options: dict[str, Any]


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


class Namespaces:
    """Two namespaces and a veth pair, made for this run and removed after it."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.server, self.viewer = f"csl{tag}s", f"csl{tag}v"
        self._dev_s, self._dev_v = f"csl{tag}a", f"csl{tag}b"

    def __enter__(self) -> Namespaces:
        _run("ip", "netns", "add", self.server)
        _run("ip", "netns", "add", self.viewer)
        _run("ip", "link", "add", self._dev_s, "type", "veth", "peer", "name", self._dev_v)
        _run("ip", "link", "set", self._dev_s, "netns", self.server)
        _run("ip", "link", "set", self._dev_v, "netns", self.viewer)
        for ns, dev, addr in (
            (self.server, self._dev_s, SERVER_ADDR),
            (self.viewer, self._dev_v, VIEWER_ADDR),
        ):
            _run("ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        return self

    def shape(self, rate_mbit: float) -> None:
        """Rate-limit frames towards the viewer (acks and credits go the other way, unshaped)."""
        subprocess.run(
            ["ip", "netns", "exec", self.server, "tc", "qdisc", "del", "dev", self._dev_s, "root"],
            capture_output=True,
            check=False,
        )
        if rate_mbit > 0:
            _run(
                "ip",
                "netns",
                "exec",
                self.server,
                "tc",
                "qdisc",
                "add",
                "dev",
                self._dev_s,
                "root",
                "tbf",
                "rate",
                f"{rate_mbit}mbit",
                "burst",
                "32kb",
                "latency",
                "400ms",
            )

    def __exit__(self, *_: object) -> None:
        for ns in (self.server, self.viewer):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


class Role:
    """One child process in a namespace, stopped by its PID."""

    def __init__(self, ns: str, role: str, opts: dict[str, Any]) -> None:
        cmd = ["ip", "netns", "exec", ns, sys.executable, str(ROLES), role, json.dumps(opts)]
        # ip netns exec execs the command: this PID is the Python process itself.
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)

    def line(self, timeout_s: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.proc.stdout.readline()
            if text:
                result: dict[str, Any] = json.loads(text)
                return result
            if self.proc.poll() is not None:
                break
        raise RuntimeError(f"{self.proc.args[5]} gave no answer (exit {self.proc.poll()})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def run_once(ns: Namespaces, setting: Setting, duration_s: float) -> dict[str, Any]:
    impl = setting.viewer if setting.viewer in OWN_SERVER else "camstream"
    server_opts = {
        "impl": impl,
        "host": SERVER_ADDR,
        "port": 0,
        "width": 1280,
        "height": 720,
        "fps": 30,
        "server_options": setting.server_options,
    }
    roles: list[Role] = []
    try:
        server = Role(ns.server, "server", server_opts)
        roles.append(server)
        host, port = SERVER_ADDR, server.line(60)["port"]
        if setting.rtt_ms > 0:
            relay = Role(
                ns.viewer,
                "relay",
                {"rtt_ms": setting.rtt_ms, "upstream_host": host, "upstream_port": port},
            )
            roles.append(relay)
            host, port = "127.0.0.1", relay.line(30)["port"]
        viewer = Role(
            ns.viewer,
            "viewer",
            {"viewer": setting.viewer, "host": host, "port": port, "duration_s": duration_s},
        )
        roles.append(viewer)
        samples = viewer.line(duration_s + 60)["samples"]
    finally:
        for role in reversed(roles):
            role.stop()
    return summarize(samples, duration_s)


def summarize(samples: list[list[float]], duration_s: float) -> dict[str, Any]:
    steady = [s for s in samples if s[0] >= 1.0]
    ages = sorted(s[1] for s in steady)

    def pct(p: float) -> float:
        return ages[min(len(ages) - 1, int(p / 100 * len(ages)))] if ages else float("nan")

    timeline = {}
    for t in TIMELINE_S:
        around = [s[1] for s in samples if t - 0.5 <= s[0] < t + 0.5]
        if t < duration_s and around:
            timeline[t] = statistics.median(around)
    span = (steady[-1][0] - steady[0][0]) if len(steady) > 1 else 0.0
    widths = Counter(int(s[2]) for s in steady)
    return {
        "fps": (len(steady) - 1) / span if span > 0 else 0.0,
        "age_p50_ms": pct(50),
        "age_p99_ms": pct(99),
        "age_at_ms": timeline,
        "bytes_per_s": sum(s[3] for s in steady) / span if span > 0 else 0.0,
        "widths": {w: round(n / max(1, len(steady)), 3) for w, n in sorted(widths.items())},
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("fps", "age_p50_ms", "age_p99_ms", "bytes_per_s"):
        out[key] = statistics.median(r[key] for r in runs)
    out["age_at_ms"] = {
        t: statistics.median(r["age_at_ms"][t] for r in runs if t in r["age_at_ms"])
        for t in TIMELINE_S
        if any(t in r["age_at_ms"] for r in runs)
    }
    out["widths"] = runs[len(runs) // 2]["widths"]
    out["runs"] = runs
    return out


def can_run() -> str | None:
    """Why this machine cannot run the benchmark, or None."""
    if sys.platform != "linux":
        return "needs Linux network namespaces"
    if os.geteuid() != 0:
        return "needs root (ip netns, tc); run it with sudo"
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        return f"needs {' and '.join(missing)} (apt-get install iproute2)"
    probe = subprocess.run(
        ["ip", "netns", "add", f"cslprobe{os.getpid()}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip()}"
    probe_del = ["ip", "netns", "del", f"cslprobe{os.getpid()}"]
    subprocess.run(probe_del, capture_output=True, check=False)
    return None


def print_table(results: list[tuple[Setting, dict[str, Any]]]) -> None:
    print(
        f"{'link':>14} {'variant':>18} {'fps':>5} {'p50':>6} {'p99':>6}"
        f"  age@1/15/60 s        {'kB/s':>6}  widths"
    )
    for setting, r in results:
        link = (
            f"{setting.rate_mbit:g} Mb/{setting.rtt_ms} ms"
            if setting.rate_mbit
            else f"open/{setting.rtt_ms} ms"
        )
        timeline = " ".join(f"{r['age_at_ms'].get(t, float('nan')):5.0f}" for t in TIMELINE_S)
        widths = ", ".join(f"{w}:{share:.0%}" for w, share in r["widths"].items())
        variant = f"{setting.label}/{setting.viewer}"
        print(
            f"{link:>14} {variant:>18} {r['fps']:5.1f} {r['age_p50_ms']:6.0f} "
            f"{r['age_p99_ms']:6.0f}  {timeline}  {r['bytes_per_s'] / 1000:6.0f}  {widths}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="8 s per setting, 1 run")
    parser.add_argument("--rates", default="2,5,20,0", help="Mbit/s, comma-separated; 0 = unshaped")
    parser.add_argument("--rtts", default="0,100,200", help="round trips in ms, comma-separated")
    parser.add_argument("--duration", type=float, help="seconds per run (default 60; quick 8)")
    parser.add_argument("--repeat", type=int, help="runs per setting, medians reported (default 3)")
    parser.add_argument(
        "--viewers",
        default="native,mjpeg,seed,proto,proto-http",
        help="native, mjpeg (camstream server), seed (seed server), proto and proto-http "
        "(the delivery prototype, fed by acks or by TCP_INFO)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=JSON",
        help="camstream Server options to compare, e.g. 'no-adaptive={\"adaptive\": false}'",
    )
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).with_name("results") / "links.json"
    )
    args = parser.parse_args()
    why_not = can_run()
    if why_not is not None:
        print(f"links benchmark skipped: {why_not}")
        return
    duration = args.duration or (8.0 if args.quick else 60.0)
    repeat = args.repeat or (1 if args.quick else 3)
    variants: dict[str, dict[str, Any]] = {}
    for spec in args.variant or ["today={}"]:
        label, _, options = spec.partition("=")
        variants[label] = json.loads(options or "{}")
    viewers = [v.strip() for v in args.viewers.split(",") if v.strip()]
    settings = [
        Setting(float(rate), int(rtt), label, viewer, options)
        for rate in args.rates.split(",")
        for rtt in args.rtts.split(",")
        for viewer in viewers
        for label, options in (variants.items() if viewer not in OWN_SERVER else [(viewer, {})])
    ]
    results: list[tuple[Setting, dict[str, Any]]] = []
    with Namespaces() as ns:
        for setting in settings:
            ns.shape(setting.rate_mbit)
            runs = [run_once(ns, setting, duration) for _ in range(repeat)]
            results.append((setting, median_of(runs)))
            link = f"{setting.rate_mbit:g} Mbit/s, {setting.rtt_ms} ms"
            print(f"done: {link}, {setting.label}/{setting.viewer}", file=sys.stderr, flush=True)
    print(f"\n{duration:g} s per run, median of {repeat}; age in ms after the first second")
    print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps([{**s.__dict__, **r} for s, r in results], indent=1, default=str)
    )
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
