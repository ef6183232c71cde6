"""The issue's targets, checked against the medians of a run (1280x720 q80 unless noted)."""

from __future__ import annotations

from typing import Any

from _report import Summary, med

FRAME_INTERVAL_MS = 1000.0 / 30


def _check(name: str, value: float | None, limit: float | None, *, at_most: bool) -> dict[str, Any]:
    met: bool | None = None
    if value is not None and limit is not None:
        met = value <= limit if at_most else value >= limit
    return {
        "target": name,
        "value": value,
        "limit": limit,
        "op": "<=" if at_most else ">=",
        "met": met,
    }


def _times(factor: float, value: float | None) -> float | None:
    return None if value is None else factor * value


def check_targets(s: Summary) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    main = "1280x720"
    phys_age = med(s, f"physical/{main}/limit", "age_ms")
    paced = f"paced/{main}/camstream"
    if paced in s:
        out.append(
            _check("paced: age p50 <= 1.15x physical", med(s, paced, "age_ms.p50"),
                   _times(1.15, phys_age), at_most=True)
        )  # fmt: skip
        out.append(
            _check("paced: age p99 <= 2x physical", med(s, paced, "age_ms.p99"),
                   _times(2.0, phys_age), at_most=True)
        )  # fmt: skip
    top = f"max/{main}/camstream"
    if top in s:
        seed_fps = med(s, f"max/{main}/seed", "fps_min")
        out.append(
            _check("max: fps >= 1.5x seed", med(s, top, "fps_min"), _times(1.5, seed_fps),
                   at_most=False)
        )  # fmt: skip
        out.append(_check("max: age p99 <= 15 ms", med(s, top, "age_ms.p99"), 15.0, at_most=True))
    slow = f"slow/{main}/camstream"
    if slow in s:
        marks = sorted(
            (m for m in s[slow] if m.startswith("age_at_s.")), key=lambda m: float(m[9:])
        )
        if marks:
            first, last = med(s, slow, marks[0]), med(s, slow, marks[-1])
            out.append(
                _check(f"slow: age at {marks[-1][9:]} s <= age at {marks[0][9:]} s + 1 frame",
                       last, None if first is None else first + FRAME_INTERVAL_MS, at_most=True)
            )  # fmt: skip
        out.append(
            _check("slow: age p99 <= 100 ms", med(s, slow, "age_ms.p99"), 100.0, at_most=True)
        )
    fan16, fan1 = "fanout/16/camstream", "fanout/1/camstream"
    if fan16 in s:
        out.append(_check("fanout 16: every viewer >= 29 fps", med(s, fan16, "fps_min"), 29.0,
                          at_most=False))  # fmt: skip
        out.append(_check("fanout 16: age p50 <= 10 ms", med(s, fan16, "age_ms.p50"), 10.0,
                          at_most=True))  # fmt: skip
        out.append(_check("fanout 16: age p99 <= 25 ms", med(s, fan16, "age_ms.p99"), 25.0,
                          at_most=True))  # fmt: skip
        out.append(
            _check("fanout 16: server CPU <= 1.3x one viewer", med(s, fan16, "server_cpu_pct"),
                   _times(1.3, med(s, fan1, "server_cpu_pct")), at_most=True)
        )  # fmt: skip
        rss16, rss1 = med(s, fan16, "server_rss_bytes"), med(s, fan1, "server_rss_bytes")
        frame = med(s, fan1, "bytes_per_frame")
        growth = None if rss16 is None or rss1 is None else (rss16 - rss1) / 15
        out.append(
            _check("memory: server RSS per extra viewer <= ~2 frames (bytes)", growth,
                   _times(2.0, frame), at_most=True)
        )  # fmt: skip
    big = "max/1920x1080/camstream"
    if big in s:
        out.append(_check("1080p max: fps >= 150", med(s, big, "fps_min"), 150.0, at_most=False))
        out.append(_check("1080p max: age p99 <= 30 ms", med(s, big, "age_ms.p99"), 30.0,
                          at_most=True))  # fmt: skip
    for label in ("warm", "cold"):
        key = f"ttff/{label}/camstream"
        if key in s:
            out.append(_check(f"time to first frame ({label} server, worst trial) <= 150 ms",
                              med(s, key, "ttff_ms.max"), 150.0, at_most=True))  # fmt: skip
    return out


def render_targets(targets: list[dict[str, Any]]) -> str:
    lines = ["\n## targets (medians over repeats)"]
    for t in targets:
        mark = {True: "MET ", False: "MISS", None: "n/a "}[t["met"]]
        value = "-" if t["value"] is None else f"{t['value']:.2f}"
        limit = "-" if t["limit"] is None else f"{t['limit']:.2f}"
        lines.append(f"[{mark}] {t['target']}: {value} {t['op']} {limit}")
    return "\n".join(lines)
