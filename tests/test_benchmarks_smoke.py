"""Smoke test of the benchmark harness: it runs end to end and writes sane JSON.

Behaviour only (keys present, frames flowing), never speed: the numbers on a
busy test machine mean nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(120)
def test_benchmark_quick_run_writes_sane_json(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--repeat", "1"]
    command += ["--scenario", "paced", "--scenario", "ttff", "--resolution", "320x240"]
    command += ["--measure-s", "1", "--json", str(out)]
    done = subprocess.run(
        command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=110
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "paced 320x240" in done.stdout
    assert "time to first frame" in done.stdout

    result = json.loads(out.read_text())
    assert set(result) >= {"meta", "summary", "targets", "runs"}
    run = result["runs"][0]

    limit = run["physical/320x240/limit"]
    for name in ("encode_ms", "transfer_ms", "decode_ms", "age_ms", "fps", "bytes_per_frame"):
        assert limit[name] > 0, name

    for impl in ("camstream", "seed"):
        paced = run[f"paced/320x240/{impl}"]
        assert paced["errors"] == [], paced["errors"]
        assert paced["fps_min"] > 0
        assert paced["viewers"] == 1
        # camstream viewers decode as camstream ships; the seed keeps cv2.imdecode
        assert paced["decoder"] == {"camstream": "camstream", "seed": "cv2"}[impl]
        ages = paced["age_ms"]
        assert 0 < ages["p50"] <= ages["p95"] <= ages["p99"] <= ages["max"]
        assert paced["bytes_per_frame"] > 0
        assert paced["server_rss_bytes"] > 0
        assert paced["server_cpu_ms_per_frame"] is not None
        assert paced["client_cpu_ms_per_frame"] is not None
        assert paced["frames_dropped_per_s"] >= 0

    for key in ("ttff/warm/camstream", "ttff/cold/camstream", "ttff/cold/seed"):
        assert run[key]["errors"] == []
        assert run[key]["ttff_ms"]["p50"] > 0

    summary = result["summary"]["paced/320x240/camstream"]
    assert summary["age_ms.p50"]["n"] == 1
    assert summary["age_ms.p50"]["min"] <= summary["age_ms.p50"]["median"]
