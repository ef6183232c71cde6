"""HTTP fan-out: does adding MJPEG viewers cost the server more encodes?

Starts ``camstream serve`` (1280x720 test pattern at 30 fps, JPEG q80) as a
child process, then attaches 1 and then N HTTP viewers that read
``/stream.mjpg`` as fast as the server sends it (they parse parts but do not
decode: a browser's decode is not the server's cost). For each viewer count it
reports every viewer's fps and the server's CPU (from ``/proc/PID/stat``), as
the median of ``--repeat`` runs with min-max, and the CPU ratio N:1.

    python benchmarks/http_fanout.py                 # 1 vs 8 viewers, 10 s, 3 repeats
    python benchmarks/http_fanout.py --viewers 16 --seconds 5 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def start_server(width: int, height: int, fps: float) -> tuple[subprocess.Popen[str], int]:
    command = [
        sys.executable, "-m", "camstream", "serve", "--source", "test", "--port", "0",
        "--max-connections-per-address", "1000",
        "--width", str(width), "--height", str(height), "--fps", str(fps), "--always-capture",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if match:
            return proc, int(match.group(1))
    proc.kill()
    raise RuntimeError("the server did not print its address")


@dataclass
class Reader:
    port: int
    frames: int = 0
    error: str | None = None

    def run(self, stop: threading.Event) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: bench\r\n\r\n")
                buffer = b""
                while not stop.is_set():
                    chunk = sock.recv(1 << 18)
                    if not chunk:
                        return
                    buffer += chunk
                    # Count complete parts by their Content-Length header, keep the tail.
                    while True:
                        length = re.search(rb"Content-Length: (\d+)\r\n", buffer)
                        body = buffer.find(b"\r\n\r\n", length.end() - 2) if length else -1
                        if not length or body < 0:
                            break
                        end = body + 4 + int(length.group(1))
                        if len(buffer) < end:
                            break
                        buffer = buffer[end:]
                        self.frames += 1
        except OSError as exc:
            self.error = str(exc)


def measure(port: int, pid: int, viewers: int, seconds: float) -> dict[str, float]:
    stop = threading.Event()
    readers = [Reader(port) for _ in range(viewers)]
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in readers]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # warm-up: every viewer attached and streaming
    counts = [r.frames for r in readers]
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    fps = [(r.frames - c) / (t1 - t0) for r, c in zip(readers, counts, strict=True)]
    stop.set()
    for thread in threads:
        thread.join(5)
    errors = [r.error for r in readers if r.error]
    if errors:
        raise RuntimeError(f"viewer failed: {errors[0]}")
    cpu = (cpu1 - cpu0) / (t1 - t0)
    return {"min_fps": min(fps), "mean_fps": statistics.fmean(fps), "cpu": cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args()
    results: dict[int, list[dict[str, float]]] = {1: [], args.viewers: []}
    for run in range(args.repeat):
        proc, port = start_server(args.width, args.height, args.fps)
        try:
            for count, runs in results.items():
                result = measure(port, proc.pid, count, args.seconds)
                runs.append(result)
                print(
                    f"run {run + 1}: {count:>2} HTTP viewers  min fps {result['min_fps']:5.1f}  "
                    f"server CPU {result['cpu'] * 100:5.1f} % of a core",
                    flush=True,
                )
        finally:
            proc.terminate()
            proc.wait(10)

    def summary(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"

    size = f"{args.width}x{args.height} @ {args.fps:g} fps, q80"
    print(f"\n{size}, median [min-max] of {args.repeat} runs")
    for count, runs in results.items():
        print(
            f"{count:>2} viewers: min fps {summary([r['min_fps'] for r in runs])}, "
            f"server CPU % {summary([r['cpu'] * 100 for r in runs])}"
        )
    pairs = zip(results[1], results[args.viewers], strict=True)
    ratios = [many["cpu"] / one["cpu"] for one, many in pairs]
    print(f"server CPU ratio {args.viewers}:1 = {summary(ratios)} (target <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
