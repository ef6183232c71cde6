"""Measurement helpers shared by the benchmark: /proc counters, percentiles, medians.

Everything here is stdlib + numpy: CPU time and resident memory of a process come
from ``/proc/<pid>/stat`` and ``/proc/<pid>/status`` (Linux), so the benchmark
needs no psutil.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        text = f.read()
    # The command name (field 2) may contain spaces; the fields after it do not.
    return text[text.rindex(")") + 2 :].split()  # fields[0] is field 3 of proc_pid_stat(5)


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


def system_busy_s() -> float:
    """CPU seconds all CPUs spent busy (not idle or waiting for I/O) since boot."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / _CLOCK_TICKS  # user..steal, without guest (counted in user)


def proc_minor_faults(pid: int) -> int:
    """Minor page faults of process ``pid`` so far (fresh memory touched for the first time)."""
    return int(_stat_fields(pid)[7])  # minflt


def tune_malloc() -> None:
    """Keep freed memory in the heap instead of returning it to the kernel (glibc only).

    Without this, every decoded 1280x720 image (2.7 MB) is mmap'ed and
    munmap'ed again, and touching it costs ~1300 page faults per frame.
    """
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    libc.mallopt(m_trim_threshold, 256 * 1024 * 1024)


def nodelay_off() -> None:
    """Experiment only: every TCP_NODELAY this process sets is turned into "off".

    camstream (client and server) and asyncio turn Nagle's algorithm off on each
    connection; this patches the standard library's ``socket.socket.setsockopt``
    in the calling process (a benchmark server or viewer process, nothing else),
    so no camstream internals are touched.
    """
    import socket

    original = socket.socket.setsockopt

    def setsockopt(self: socket.socket, level: int, option: int, *value: Any) -> None:
        if level == socket.IPPROTO_TCP and option == socket.TCP_NODELAY:
            value = (0,)
        original(self, level, option, *value)

    socket.socket.setsockopt = setsockopt  # type: ignore[method-assign,assignment]


def proc_rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of process ``pid`` in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/max/mean of ``values`` (None when empty)."""
    if not values:
        return dict.fromkeys(("p50", "p95", "p99", "max", "mean"), None)
    ordered = sorted(values)

    def pick(q: float) -> float:
        # nearest-rank percentile: a value that was actually observed
        index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
        return ordered[index]

    return {
        "p50": pick(0.50),
        "p95": pick(0.95),
        "p99": pick(0.99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def spread(values: Iterable[float | None]) -> dict[str, Any]:
    """Median with min and max over repeated runs (Nones, i.e. missing runs, skipped)."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    if not present:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": statistics.median(present),
        "min": min(present),
        "max": max(present),
        "n": len(present),
    }


def median_time_ms(fn: Any, repeats: int, *, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    import time

    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(samples)


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return value / reference
