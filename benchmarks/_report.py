"""Aggregate repeated runs (median, min-max), print tables, check the targets."""

from __future__ import annotations

from typing import Any

from _measure import ratio, spread

Summary = dict[str, dict[str, dict[str, Any]]]  # key -> metric -> spread

SESSION_ROWS = (
    ("fps per viewer (min)", "fps_min", "fps"),
    ("frame age p50 ms", "age_ms.p50", "age"),
    ("frame age p95 ms", "age_ms.p95", "age"),
    ("frame age p99 ms", "age_ms.p99", "age"),
    ("frame age max ms", "age_ms.max", "age"),
    ("frames dropped /s /viewer", "frames_dropped_per_s", None),
    ("server CPU ms/frame", "server_cpu_ms_per_frame", None),
    ("server CPU % of a core", "server_cpu_pct", None),
    ("server page faults/frame", "server_page_faults_per_frame", None),
    ("client CPU ms/frame", "client_cpu_ms_per_frame", None),
    ("client page faults/frame", "client_page_faults_per_frame", None),
    ("bytes/frame", "bytes_per_frame", "bytes"),
    ("server RSS MB", "server_rss_mb", None),
    ("other processes' CPU %", "other_cpu_pct", None),
)
PHYSICAL_METRIC = {"fps": "fps", "age": "age_ms", "bytes": "bytes_per_frame"}


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for name, value in metrics.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(flatten(value, key + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[key] = float(value)
    if "server_rss_bytes" in flat:
        flat["server_rss_mb"] = flat["server_rss_bytes"] / 1e6
    return flat


def aggregate(runs: list[dict[str, dict[str, Any]]]) -> Summary:
    keys = list(dict.fromkeys(k for run in runs for k in run))
    summary: Summary = {}
    for key in keys:
        flats = [flatten(run[key]) for run in runs if key in run and not run[key].get("errors")]
        names = list(dict.fromkeys(n for f in flats for n in f))
        summary[key] = {n: spread(f.get(n) for f in flats) for n in names}
    return summary


def med(summary: Summary, key: str, metric: str) -> float | None:
    value: float | None = summary.get(key, {}).get(metric, {}).get("median")
    return value


def cell(summary: Summary, key: str, metric: str) -> str:
    s = summary.get(key, {}).get(metric)
    if not s or s["median"] is None:
        return "-"
    if s["n"] > 1:
        return f"{_num(s['median'])} [{_num(s['min'])}-{_num(s['max'])}]"
    return _num(s["median"])


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(value: float | None, reference: float | None) -> str:
    r = ratio(value, reference)
    return "-" if r is None else f"{r:.2f}x"


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"\n## {title}", "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def session_table(summary: Summary, scenario: str, label: str, physical_res: str | None) -> str:
    cs, seed = f"{scenario}/{label}/camstream", f"{scenario}/{label}/seed"
    phys = f"physical/{physical_res}/limit" if physical_res else None
    header = ["metric", "camstream median [min-max]", "seed", "cs/seed", "physical", "cs/phys"]
    rows = []
    for name, metric, kind in SESSION_ROWS:
        value = med(summary, cs, metric)
        # a paced source's fps has nothing to do with the physical ceiling
        compare = kind if kind != "fps" or scenario == "max" else None
        phys_value = med(summary, phys, PHYSICAL_METRIC[compare]) if phys and compare else None
        rows.append(
            [
                name,
                cell(summary, cs, metric),
                cell(summary, seed, metric),
                _ratio(value, med(summary, seed, metric)),
                _num(phys_value) if phys_value is not None else "",
                _ratio(value, phys_value) if phys_value is not None else "",
            ]
        )
    if scenario == "slow":
        names = sorted(
            (m for m in summary.get(cs, {}) if m.startswith("age_at_s.")),
            key=lambda m: float(m.split(".", 1)[1]),
        )
        for metric in names:
            value = med(summary, cs, metric)
            rows.append(
                [
                    f"frame age at {metric.split('.', 1)[1]} s ms",
                    cell(summary, cs, metric),
                    cell(summary, seed, metric),
                    _ratio(value, med(summary, seed, metric)),
                    "",
                    "",
                ]
            )
    return _table(f"{scenario} {label}", header, rows)


def physical_table(summary: Summary) -> str:
    keys = [k for k in summary if k.startswith("physical/")]
    header = ["resolution", "bytes", "encode ms", "transfer ms", "decode ms", "age ms", "fps"]
    rows = [
        [k.split("/")[1]]
        + [
            cell(summary, k, m)
            for m in ("bytes_per_frame", "encode_ms", "transfer_ms", "decode_ms", "age_ms", "fps")
        ]
        for k in keys
    ]
    title = "physical limit (cv2 encode + loopback + camstream decode = simplejpeg, one frame)"
    return _table(title, header, rows)


def ttff_table(summary: Summary) -> str:
    keys = [k for k in summary if k.startswith("ttff/")]
    header = ["viewer", "p50 ms", "max ms"]
    rows = [
        [k.removeprefix("ttff/"), cell(summary, k, "ttff_ms.p50"), cell(summary, k, "ttff_ms.max")]
        for k in keys
    ]
    return _table("time to first frame (client start → first decoded frame)", header, rows)


def tuning_table(summary: Summary) -> str:
    keys = [k for k in summary if k.startswith("tuning/") and not k.startswith("tuning/micro")]
    metrics = ("fps_min", "age_ms.p50", "age_ms.p99", "server_cpu_ms_per_frame")
    metrics += ("client_cpu_ms_per_frame", "frames_dropped_per_s", "other_cpu_pct")
    header = ["variant (1280x720 unless named)", "fps", "age p50", "age p99", "srv CPU ms/f"]
    header += ["cli CPU ms/f", "dropped/s", "other CPU %"]
    rows = [[k.split("/")[1]] + [cell(summary, k, m) for m in metrics] for k in keys]
    out = _table("where the time goes: end-to-end variants (camstream)", header, rows)
    micro = summary.get("tuning/micro/bench", {})
    if micro:
        names = sorted({m.split(".", 1)[1] for m in micro})
        resolutions = sorted({m.split(".", 1)[0] for m in micro})
        rows = [
            [n] + [cell(summary, "tuning/micro/bench", f"{r}.{n}") for r in resolutions]
            for n in names
        ]
        out += _table(
            "where the time goes: micro-benchmarks (ms unless _us, bytes)",
            ["item", *resolutions],
            rows,
        )
    return out


def render(summary: Summary) -> str:
    parts = []
    if any(k.startswith("physical/") for k in summary):
        parts.append(physical_table(summary))
    labels = list(dict.fromkeys(k.rsplit("/", 1)[0] for k in summary))
    for label in labels:
        scenario, sub = label.split("/", 1)
        if scenario in ("max", "paced") or scenario == "slow":
            parts.append(session_table(summary, scenario, sub, sub))
        elif scenario == "fanout":
            parts.append(session_table(summary, scenario, sub, "1280x720"))
    if any(k.startswith("ttff/") for k in summary):
        parts.append(ttff_table(summary))
    if any(k.startswith("tuning/") for k in summary):
        parts.append(tuning_table(summary))
    return "\n".join(parts)
