"""Smoke test of benchmarks/nats_relay.py: it runs end to end and writes sane JSON.

Behaviour only (frames flow through the bus to every relay), never speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(120)
def test_nats_relay_benchmark_quick_run_writes_sane_json(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "nats_relay.py"), "--quick"]
    done = subprocess.run(
        [*command, "--json", str(out)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert len(result["relays"]) == 2
    for relay in result["relays"]:
        assert relay["frames"] > 0
        assert 0 < relay["age_ms_p50"] <= relay["age_ms_p99"]
        assert set(relay["modes"]) == {"cam1", "cam2"}
    assert set(result["nats_cpu_pct"]) == {"n1", "n2", "n3"}
    assert result["publisher"]["frames_published"] > 0
