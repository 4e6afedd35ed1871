"""The local cluster for a plan: the steps that start its parts in order, each started and waited
for, watched while it runs, all stopped by PID; and the banner that tells the person where
everything is."""

from __future__ import annotations

import json
import secrets
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from router.up import ClusterError
from router.up.binaries import Binaries
from router.up.plan import Plan, envoy_config, prometheus_config
from router.up.processes import ManagedProcess, Supervisor, wait_until
from router.up.readiness import answers, serves

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples" / "servers"
ETCD_COMPACTION = ("--auto-compaction-mode=periodic", "--auto-compaction-retention=5m")
"""etcd keeps every revision of every key until it is compacted, in memory and on disk; the
registry needs only enough history for a watch to resume (a watch that finds its revision
compacted reads afresh), so five minutes are kept, as Kubernetes does."""


@dataclass
class Step:
    """Start `child` (if any) and wait until `ready()`; `what` names the step in messages."""

    child: ManagedProcess | None
    ready: Callable[[], bool]
    what: str
    timeout: float = 30.0


class LocalCluster:
    """Builds the children for a plan, starts them in order, watches them, stops them all."""

    def __init__(
        self, plan: Plan, workdir: Path, *, examples: bool = True, out: IO[str] = sys.stdout
    ) -> None:
        self.plan = plan
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.examples = examples
        self.out = out
        self.supervisor = Supervisor(self.logs, cwd=REPO_ROOT)
        self.stopping = threading.Event()
        self.cluster_key = secrets.token_hex(32)
        self.binaries = Binaries.find()
        if examples and not EXAMPLES.is_dir():
            raise ClusterError(
                f"the example servers are not here ({EXAMPLES}): run toolmesh up from a checkout of the "
                "repository, or pass --no-examples"
            )
        self.steps = self._steps()

    # -- what to run ------------------------------------------------------------------------------

    def _toolmesh(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "router", *args]

    def _child(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> ManagedProcess:
        return ManagedProcess(argv, name=name, log_dir=self.logs, env=env, cwd=REPO_ROOT)

    def _steps(self) -> list[Step]:
        plan, bins, data = self.plan, self.binaries, self.workdir / "data"
        nats_argv = [
            bins.nats_server, "--addr", "127.0.0.1", "--port", str(plan.nats_port), "--jetstream",
            "--store_dir", str(data / "nats"), "--http_port", str(plan.nats_monitor_port),
            "--server_name", "toolmesh-up",
        ]  # fmt: skip
        peer = f"http://127.0.0.1:{plan.etcd_peer_port}"
        etcd_argv = [
            bins.etcd, "--name", "toolmesh-up", "--data-dir", str(data / "etcd"),
            "--listen-client-urls", plan.etcd_url, "--advertise-client-urls", plan.etcd_url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"toolmesh-up={peer}", *ETCD_COMPACTION,
        ]  # fmt: skip
        steps = [
            Step(
                self._child("nats", nats_argv),
                answers(f"http://127.0.0.1:{plan.nats_monitor_port}/healthz?js-enabled-only=true"),
                f"NATS at {plan.nats_url}",
            ),
            Step(
                self._child("etcd", etcd_argv), answers(f"{plan.etcd_url}/health"), f"etcd at {plan.etcd_url}"
            ),
        ]
        router_env = {"TOOLMESH_CLUSTER_KEY": self.cluster_key, "TOOLMESH_LOG_FORMAT": "text"}
        for index, port in enumerate(plan.router_ports):
            url = plan.router_url(index)
            argv = self._toolmesh(
                "router",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--etcd",
                plan.etcd_url,
                "--nats",
                plan.nats_url,
            )
            child = self._child(f"router-{index + 1}", argv, router_env)
            steps.append(Step(child, answers(f"{url}/readyz"), f"router {index + 1} at {url}"))

        config = self.workdir / "envoy.json"
        config.write_text(json.dumps(envoy_config(plan), indent=2))
        envoy_argv = [
            bins.envoy, "--config-path", str(config), "--disable-hot-restart", "--log-level", "warning",
            "--concurrency", "2",
        ]  # fmt: skip
        admin = f"http://127.0.0.1:{plan.envoy_admin_port}"
        steps.append(
            Step(self._child("envoy", envoy_argv), answers(f"{admin}/ready"), f"Envoy at {plan.mcp_url}")
        )
        if bins.prometheus is not None:
            # JSON is YAML, so Prometheus reads this without a YAML writer on our side.
            prometheus = self.workdir / "prometheus.yml"
            prometheus.write_text(json.dumps(prometheus_config(plan), indent=2))
            prometheus_argv = [
                bins.prometheus, f"--config.file={prometheus}", f"--storage.tsdb.path={data / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{plan.prometheus_port}",
            ]  # fmt: skip
            steps.append(
                Step(
                    self._child("prometheus", prometheus_argv),
                    answers(f"http://127.0.0.1:{plan.prometheus_port}/-/ready"),
                    f"Prometheus at http://127.0.0.1:{plan.prometheus_port}",
                )
            )
        if not self.examples:
            return steps

        notes_url = f"http://127.0.0.1:{plan.notes_port}/mcp"
        units_url = f"http://127.0.0.1:{plan.units_port}/mcp"
        notes_argv = [
            sys.executable, str(EXAMPLES / "notes.py"), "--transport", "streamable-http",
            "--host", "127.0.0.1", "--port", str(plan.notes_port),
        ]  # fmt: skip
        notes_registrar = self._toolmesh(
            "registrar", "--name", "notes", "--url", notes_url, "--etcd", plan.etcd_url
        )
        units_registrar = self._toolmesh(
            "registrar", "--name", "units", "--port", str(plan.units_port), "--etcd", plan.etcd_url,
            "--", sys.executable, str(EXAMPLES / "units.py"),
        )  # fmt: skip
        steps += [
            Step(
                self._child("notes", notes_argv),
                answers(notes_url, status=None),
                f"example server notes at {notes_url}",
            ),
            # Registration itself is checked below, through the routers.
            Step(self._child("notes-registrar", notes_registrar), lambda: True, "the registrar of notes"),
            Step(
                self._child("units-registrar", units_registrar),
                answers(units_url, status=None),
                f"the registrar of units, bridging its stdio server to {units_url}",
            ),
        ]
        for index in range(plan.routers):
            steps.append(
                Step(
                    None,
                    serves(plan.router_url(index), ["notes", "units"]),
                    f"router {index + 1} serving the registered example servers",
                )
            )
        return steps

    # -- running ----------------------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def start(self) -> None:
        """Start every step in order and wait for each; on any failure stop what started and raise."""
        try:
            for step in self.steps:
                self._start_step(step)
        except BaseException:
            self.stop()
            raise

    def _start_step(self, step: Step) -> None:
        process = step.child
        if process is not None:
            self.supervisor.add(process)
        wait_until(
            step.ready, step.timeout, step.what, process=process, interval=0.1, give_up=self.stopping.is_set
        )
        if process is not None:
            process.remember_descendants()

    def wait_until_stopped(self, poll: float = 0.5) -> None:
        """Block until `stopping` is set, reporting children that exit on their own meanwhile."""
        reported: set[str] = set()
        while not self.stopping.wait(poll):
            for child in self.supervisor.started:
                child.remember_descendants()
                if child.name not in reported and not child.is_running():
                    reported.add(child.name)
                    self.say(
                        f"toolmesh up: {child.name} (pid {child.pid}) exited with status {child.returncode}; "
                        f"see {child.log_path}"
                    )

    def stop(self) -> list[int]:
        """Stop every started child, newest first, each by PID; returns the PIDs still alive after."""
        return self.supervisor.stop_all()

    # -- what to tell the person ------------------------------------------------------------------

    def banner(self) -> str:
        plan = self.plan
        lines = [
            f"toolmesh up: {plan.routers} router replica(s) on loopback; logs in {self.logs}",
            "",
            f"  MCP endpoint (the single address)  {plan.mcp_url}",
            "                                     Envoy, ring hash on Mcp-Session-Id, health checks on /readyz",
        ]
        for index in range(plan.routers):
            url = plan.router_url(index)
            lines.append(
                f"  router {index + 1:<2}                          {url}/mcp   metrics {url}/metrics"
            )
        lines += [
            f"  Envoy admin and stats              http://127.0.0.1:{plan.envoy_admin_port}/  "
            f"(Prometheus format at /stats/prometheus)",
            (
                f"  Prometheus (replicas and Envoy)    http://127.0.0.1:{plan.prometheus_port}/"
                if self.binaries.prometheus
                else "  Prometheus                         not installed (Debian package `prometheus`), not started"
            ),
            f"  NATS (JetStream)                   {plan.nats_url}   monitoring http://127.0.0.1:{plan.nats_monitor_port}/",
            f"  etcd (the registry)                {plan.etcd_url}",
            "",
            "  etcd stands in for Consul here: Consul cannot be installed from PyPI or Debian. The routers",
            "  and registrars use etcd the same way; compose/ runs the real Consul.",
        ]
        if self.examples:
            lines += [
                "",
                f"  example servers: notes (Streamable HTTP, http://127.0.0.1:{plan.notes_port}/mcp) and units (stdio, "
                f"bridged by its registrar at http://127.0.0.1:{plan.units_port}/mcp)",
            ]
        lines += ["", "Ready. Press Ctrl-C to stop everything."]
        return "\n".join(lines)
