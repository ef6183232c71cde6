"""Every Python block in the README runs as printed, against a real server."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from camstream import Client
from camstream.server.server import Server
from processes import Command, child_env

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_the_library_examples() -> None:
    assert len(BLOCKS) >= 4
    assert any("serve_forever()" in block for block in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(block: str, running_server: Callable[..., Server]) -> None:
    server = running_server("test", fps=30)
    # The README talks to 127.0.0.1:8080; the test server has an ephemeral port.
    code = block.replace("127.0.0.1:8080", f"127.0.0.1:{server.port}")
    code = code.replace("port=8080", "port=0")
    with Command([], child_env(), python_args=("-c", code)) as run:
        if "serve_forever()" in code:
            # A server example runs until Ctrl-C: it must come up, then stop cleanly.
            _, line = run.wait_for_line("watch at", timeout_s=30)
            port = int(re.search(r":(\d+)/", line).group(1))  # type: ignore[union-attr]
            with Client(f"127.0.0.1:{port}", reconnect=False) as client:
                for _ in range(5):  # the example's frames really flow
                    client.read_frame(timeout_s=10)
            run.signal(signal.SIGINT)
        code_ = run.wait(timeout_s=60)
        assert code_ == 0, f"exit {code_}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
        assert "Traceback" not in run.stderr, run.stderr
