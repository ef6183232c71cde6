"""The README's two commands: scripts/demo and scripts/test set up .venv only when needed."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_installs_once_then_starts_without_pip() -> None:
    runs = [
        subprocess.run(
            ["bash", "scripts/demo", "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "usage: camstream demo" in run.stdout
    # Whatever the first run had to do, the second finds nothing changed.
    assert "== installing" not in runs[1].stdout, runs[1].stdout
