"""Run the ``camstream`` command as a child process and read what it prints.

Every process is started by :class:`Command` and stopped by its own PID (never by
name). Output is read by a thread into a list, so a test can wait for a line
with a deadline and a full pipe can never block the child.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import pytest

PORT_RE = re.compile(r"camstream://127\.0\.0\.1:(\d+)")


def child_env(display: str | None = None, **extra: str) -> dict[str, str]:
    """The environment for a child: no DISPLAY unless given, unbuffered Python output."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)  # the real xcb backend, as users get it
    env["PYTHONUNBUFFERED"] = "1"
    if display is not None:
        env["DISPLAY"] = display
    env.update(extra)
    return env


class Command:
    """``python -m camstream ARGS`` with its stdout and stderr collected line by line."""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        python_args: Sequence[str] = ("-m", "camstream"),
    ) -> None:
        self.args = list(args)
        self.process = subprocess.Popen(
            [sys.executable, *python_args, *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else child_env(),
            text=True,
        )
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._changed = threading.Condition()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.stdout_lines)),
            threading.Thread(target=self._pump, args=(self.process.stderr, self.stderr_lines)),
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, stream: Iterator[str], lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stdout(self) -> str:
        with self._changed:
            return "\n".join(self.stdout_lines)

    @property
    def stderr(self) -> str:
        with self._changed:
            return "\n".join(self.stderr_lines)

    def wait_for_line(
        self,
        match: Callable[[str], bool] | str,
        timeout_s: float = 15.0,
        *,
        start: int = 0,
        stream: str = "stdout",
    ) -> tuple[int, str]:
        """(index, line) of the first line of ``stream`` from ``start`` on that matches."""
        test = match if callable(match) else (lambda line: match in line)  # type: ignore[operator]
        lines = self.stdout_lines if stream == "stdout" else self.stderr_lines
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for index in range(start, len(lines)):
                    if test(lines[index]):
                        return index, lines[index]
                start = max(start, len(lines))
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    break
                self._changed.wait(min(remaining, 0.1))
        raise AssertionError(
            f"camstream {' '.join(self.args)}: no line matching {match!r} within {timeout_s} s "
            f"(exit {self.process.poll()})\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        )

    def wait_port(self, timeout_s: float = 15.0) -> int:
        """The port from the banner's ``camstream://127.0.0.1:PORT``."""
        _, line = self.wait_for_line(lambda text: PORT_RE.search(text) is not None, timeout_s)
        found = PORT_RE.search(line)
        assert found is not None
        return int(found.group(1))

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout_s: float = 15.0) -> int:
        """The exit code, after the output has been read to the end."""
        code = self.process.wait(timeout_s)
        for reader in self._readers:
            reader.join(timeout_s)
        return code

    def close(self) -> None:
        """Kill the child if it is still running (by its PID) and close the pipes."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        for reader in self._readers:
            reader.join(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Command:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run_command(
    args: Sequence[str], env: Mapping[str, str] | None = None, timeout_s: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m camstream ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "camstream", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=dict(env) if env is not None else child_env(),
        check=False,
    )


def stop_cleanly(command: Command, signum: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
    """Send ``signum`` and return the exit code; fail (and kill) if it hangs."""
    command.signal(signum)
    try:
        return command.wait(timeout_s)
    except subprocess.TimeoutExpired:
        command.close()
        pytest.fail(f"camstream {' '.join(command.args)} ignored signal {signum} for {timeout_s} s")
