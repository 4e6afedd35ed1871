"""Soak with faults: steady calls through the whole cluster while a schedule breaks its parts.

    .venv/bin/python bench/soak.py                      # 30 minutes, 30 calls/s, 40 sessions
    .venv/bin/python bench/soak.py --minutes 4 --rate 20 --sessions 24

Everything is real and on loopback, started here with the one process supervisor
(`router.up.processes`) and stopped by PID: nats-server (JetStream, monitoring on), etcd, three
`toolmesh router --etcd --nats` replicas behind Envoy with the bootstrap `toolmesh up` runs
(`router/envoy.py`), and four backend instances, each announced by its own registrar sidecar:
`alpha` twice (the sample server over Streamable HTTP, both eras), `beta` (the sample server,
2025 era only) and `units` (the stdio example, run and bridged by its registrar).

Load: `--sessions` clients, half of them 2025-era sessions (`initialize`, then `Mcp-Session-Id`)
and half 2026-07-28 stateless clients (`_meta` envelope, no session), spread over 8 agents
(API keys), send `tools/call` at `--rate` calls/s in total (open loop: a call is started on
schedule whether or not the previous ones came back). One more agent is the flooder: it is
quiet until its turn in the schedule, then sends 3 x the per-agent limit for 10 s.

Faults, in this order, repeated while time allows (see `schedule`): SIGKILL NATS and restart it
on its port and store; SIGKILL a router replica and restart it; SIGKILL an `alpha` instance and
start it again on its port; SIGKILL `beta`'s registrar and restart it; SIGSTOP the other `alpha`
instance for 10 s, then SIGCONT; flood one agent past its rate limit. In the last six minutes
only the hang and the flood, so that every process can be judged for memory growth.

Every call is kept (start, end, era, agent, outcome). Every 5 s the RSS and open fds of every
process (with its descendants) and each replica's `toolmesh_sessions` are sampled. The report
(`bench/soak_report.py`) gives per minute the calls, errors by cause, p50/p99, RSS, fds and
sessions, classifies each failure as in flight at a fault or not, and evaluates the targets of
issue 21. It writes bench/results/soak.json and bench/results/soak.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling scripts, as top-level modules

import soak_report

from router.envoy import envoy_bootstrap
from router.guard.identity import KeyStore
from router.up.binaries import Binaries
from router.up.cluster import ETCD_COMPACTION
from router.up.processes import ManagedProcess, Supervisor, descendants, free_port, wait_until
from router.up.readiness import answers

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
HOST = "127.0.0.1"
LEGACY = "2025-11-25"
MODERN = "2026-07-28"
AGENTS = 8
LIMIT = 30  # calls/s per agent (toolmesh.limits, per agent); the steady agents stay far below
FLOOD_SECONDS = 10.0
HANG_SECONDS = 10.0
SAMPLE_EVERY = 5.0
TICKS = os.sysconf("SC_CLK_TCK")
TOOLS: dict[str, dict[str, Any]] = {
    "alpha__echo": {"text": "soak"},
    "beta__echo": {"text": "soak"},
    "units__celsius_to_fahrenheit": {"celsius": 21.5},
}


# -- the cluster ----------------------------------------------------------------------------------


@dataclass
class Part:
    """One process of the cluster: how to start it, how to tell it is up, the running one."""

    role: str
    argv: list[str]
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    process: ManagedProcess | None = None
    started_at: float = 0.0


class Cluster:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.supervisor = Supervisor(self.logs, cwd=REPO)
        self.bins = Binaries.find()
        self.parts: dict[str, Part] = {}
        self.key_secrets: dict[str, str] = {}
        self.nats_port, self.nats_monitor = free_port(), free_port()
        self.etcd_port, self.etcd_peer = free_port(), free_port()
        self.envoy_port, self.envoy_admin = free_port(), free_port()
        self.router_ports = [free_port() for _ in range(3)]
        self.backend_ports = {name: free_port() for name in ("alpha-1", "alpha-2", "beta", "units")}

    @property
    def mcp_url(self) -> str:
        return f"http://{HOST}:{self.envoy_port}/mcp"

    @property
    def nats_url(self) -> str:
        return f"nats://{HOST}:{self.nats_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://{HOST}:{self.etcd_port}"

    def router_url(self, index: int) -> str:
        return f"http://{HOST}:{self.router_ports[index]}"

    def _plan(self) -> list[Part]:
        data, py = self.workdir / "data", sys.executable
        parts = [
            Part("nats", [
                self.bins.nats_server, "-a", HOST, "-p", str(self.nats_port), "-js",
                "-sd", str(data / "nats"), "-m", str(self.nats_monitor),
            ], answers(f"http://{HOST}:{self.nats_monitor}/healthz?js-enabled-only=true")),
            Part("etcd", [
                self.bins.etcd, "--name", "soak", "--data-dir", str(data / "etcd"),
                "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
                "--listen-peer-urls", f"http://{HOST}:{self.etcd_peer}",
                "--initial-advertise-peer-urls", f"http://{HOST}:{self.etcd_peer}",
                "--initial-cluster", f"soak=http://{HOST}:{self.etcd_peer}", "--log-level", "warn",
                *ETCD_COMPACTION,
            ], answers(f"{self.etcd_url}/health")),
        ]  # fmt: skip
        for name, port in self.backend_ports.items():
            url = f"http://{HOST}:{port}/mcp"
            server = name.split("-")[0]
            registrar = [
                py, "-m", "router", "registrar", "--name", server, "--etcd", self.etcd_url,
                "--instance-id", name, "--log-format", "text",
            ]  # fmt: skip
            if server == "units":
                bridged = [*registrar, "--port", str(port), "--", py, str(REPO / "examples/servers/units.py")]
                parts.append(Part(f"registrar-{name}", bridged, answers(url, status=None)))
                continue
            era = "legacy" if server == "beta" else "both"
            sample = [
                py, "-m", "tests.servers.sample", "--name", server, "--transport", "http",
                "--host", HOST, "--port", str(port), "--era", era,
            ]  # fmt: skip
            parts.append(Part(f"backend-{name}", sample, answers(url, status=None)))
            parts.append(Part(f"registrar-{name}", [*registrar, "--url", url], lambda: True))
        limits = self.workdir / "limits.json"
        limits.write_bytes(
            orjson.dumps(
                {
                    "toolmesh": {"limits": [{"rate": LIMIT, "burst": LIMIT, "per": ["agent"]}]},
                    "mcpServers": {},
                }
            )
        )
        keys = self.workdir / "keys.json"
        store = KeyStore(keys)
        for agent in [*(f"soak-{n}" for n in range(AGENTS)), "flooder"]:
            self.key_secrets[agent] = store.create(agent, [])[1]
        env = {
            "TOOLMESH_CLUSTER_KEY": secrets.token_hex(32),
            "TOOLMESH_AUTH_KEYS_FILE": str(keys),
            "TOOLMESH_AUTH_ANONYMOUS": "never",
        }
        for index, port in enumerate(self.router_ports):
            argv = [
                py, "-m", "router", "router", "--port", str(port), "--config", str(limits),
                "--etcd", self.etcd_url, "--nats", self.nats_url, "--log-format", "text",
            ]  # fmt: skip
            parts.append(Part(f"router-{index + 1}", argv, answers(f"{self.router_url(index)}/readyz"), env))
        config = self.workdir / "envoy.json"
        config.write_text(json.dumps(envoy_bootstrap(self.envoy_port, self.envoy_admin, self.router_ports)))
        envoy = [
            self.bins.envoy, "--config-path", str(config), "--disable-hot-restart",
            "--log-level", "warning", "--concurrency", "2",
        ]  # fmt: skip
        parts.append(Part("envoy", envoy, answers(f"http://{HOST}:{self.envoy_admin}/ready")))
        return parts

    def start(self) -> None:
        for part in self._plan():
            self.parts[part.role] = part
            self.launch(part)
        for index in range(3):
            wait_until(self._serves_all(index), 60, f"router {index + 1} serving every backend", interval=0.2)

    def launch(self, part: Part) -> None:
        part.process = self.supervisor.start(part.argv, part.role, part.env)
        wait_until(part.ready, 60, part.role, process=part.process, interval=0.1)
        part.started_at = time.monotonic()
        part.process.remember_descendants()

    def _serves_all(self, index: int) -> Callable[[], bool]:
        def ready() -> bool:
            with urllib.request.urlopen(f"{self.router_url(index)}/readyz", timeout=2) as response:
                backends = json.loads(response.read()).get("backends", {})
            ready_names = [name for name, detail in backends.items() if detail.get("state") == "ready"]
            return len(ready_names) >= len(self.backend_ports)

        return ready

    def kill(self, role: str) -> None:
        process = self.parts[role].process
        assert process is not None
        process.remember_descendants()
        os.killpg(process.pid, signal.SIGKILL)  # the whole group: a registrar's bridged child too

    def reap(self, role: str) -> float:
        """Wait for a killed part's process to be gone; when it was."""
        process = self.parts[role].process
        assert process is not None
        process.wait_exit(timeout=10)
        return time.monotonic()

    def restart(self, role: str) -> None:
        part = self.parts[role]
        if part.process is not None:
            self.supervisor.stop(part.process, grace=1.0)
        self.launch(part)

    def signal(self, role: str, signum: signal.Signals) -> None:
        process = self.parts[role].process
        assert process is not None
        os.killpg(process.pid, signum)

    def stop(self) -> list[int]:
        for part in self.parts.values():  # a stopped process would not stop
            if part.process is not None and part.process.is_running():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(part.process.pid, signal.SIGCONT)
        return self.supervisor.stop_all(grace=3.0)

    # -- what is sampled -------------------------------------------------------------------------

    def usage(self) -> dict[str, dict[str, float]]:
        """RSS (MiB) and open fds of every part, its descendants included."""
        found: dict[str, dict[str, float]] = {}
        for role, part in self.parts.items():
            if part.process is None or not part.process.is_running():
                continue
            rss, fds, cpu = 0, 0, 0.0
            for pid in [part.process.pid, *descendants(part.process.pid)]:
                with contextlib.suppress(OSError, ValueError):
                    status = Path(f"/proc/{pid}/status").read_text()
                    match = re.search(r"^VmRSS:\s+(\d+) kB", status, flags=re.MULTILINE)
                    rss += int(match[1]) if match else 0
                    fds += len(os.listdir(f"/proc/{pid}/fd"))
                    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    cpu += (int(stat[11]) + int(stat[12])) / TICKS  # utime + stime
            found[role] = {
                "rss_mib": round(rss / 1024, 2),
                "fds": fds,
                "pid": part.process.pid,
                "cpu_s": round(cpu, 2),
            }
        return found

    def sessions(self) -> dict[str, float]:
        """Each replica's `toolmesh_sessions` gauge (sessions in its cache)."""
        found: dict[str, float] = {}
        for index in range(3):
            with contextlib.suppress(OSError, ValueError):
                with urllib.request.urlopen(f"{self.router_url(index)}/metrics", timeout=2) as response:
                    text = response.read().decode()
                match = re.search(r"^toolmesh_sessions (\S+)$", text, flags=re.MULTILINE)
                if match:
                    found[f"router-{index + 1}"] = float(match[1])
        return found

    def nats_counts(self) -> dict[str, int]:
        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(f"http://{HOST}:{self.nats_monitor}/varz", timeout=2) as response:
                varz = json.loads(response.read())
            return {key: int(varz[key]) for key in ("in_msgs", "out_msgs", "connections")}
        return {}


# -- the load -------------------------------------------------------------------------------------


@dataclass
class Call:
    started: float
    ended: float
    era: str
    agent: str
    tool: str
    cause: str | None  # None: a result; else what failed (HTTP status, JSON-RPC code, exception)
    flood: bool = False
    detail: str = ""  # a failure's message or the start of its body


class Client:
    """One agent's client: a 2025-era session or a 2026-07-28 stateless client."""

    def __init__(self, http: aiohttp.ClientSession, url: str, era: str, agent: str, token: str) -> None:
        self.http, self.url, self.era, self.agent = http, url, era, agent
        self.headers = {
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
            "authorization": f"Bearer {token}",
        }
        self.session_id: str | None = None
        self.ids = 0
        self.reinitialized = 0

    async def initialize(self) -> None:
        params = {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "soak", "version": "1"},
        }
        status, headers, _, _ = await self._post(
            {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}, {}
        )
        if status != 200 or "mcp-session-id" not in headers:
            raise RuntimeError(f"initialize through the balancer: HTTP {status}")
        self.session_id = headers["mcp-session-id"]
        session = {"mcp-session-id": self.session_id, "mcp-protocol-version": LEGACY}
        await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session)

    async def _post(
        self, message: dict[str, Any], extra: dict[str, str]
    ) -> tuple[int, dict[str, str], list[dict[str, Any]], bytes]:
        async with self.http.post(
            self.url, data=orjson.dumps(message), headers={**self.headers, **extra}
        ) as reply:
            body = await reply.read()
            headers = {k.lower(): v for k, v in reply.headers.items()}
            kind = headers.get("content-type", "")
            if kind.startswith("text/event-stream"):
                found = [
                    orjson.loads(line[5:])
                    for line in body.decode().splitlines()
                    if line.startswith("data:") and line[5:].strip()
                ]
            elif kind.startswith("application/json") and body:
                found = [orjson.loads(body)]
            else:
                found = []
            return reply.status, headers, found, body

    async def call(self, tool: str) -> tuple[str | None, str]:
        """One `tools/call`: (None, "") when it returned a result, else (the cause of the failure,
        its message or the start of the body)."""
        self.ids += 1
        params: dict[str, Any] = {"name": tool, "arguments": TOOLS[tool]}
        extra: dict[str, str] = {}
        if self.era == MODERN:
            params["_meta"] = {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "soak", "version": "1"},
            }
            extra = {"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": tool}
        else:
            if self.session_id is None:
                await self.initialize()
            extra = {"mcp-session-id": self.session_id or "", "mcp-protocol-version": LEGACY}
        message = {"jsonrpc": "2.0", "id": self.ids, "method": "tools/call", "params": params}
        status, _, found, body = await self._post(message, extra)
        answer = next((m for m in found if m.get("id") == message["id"]), None)
        if status == 404 and self.era == LEGACY:
            self.session_id = None  # a client re-initializes; the failure still counts
            self.reinitialized += 1
        if answer is not None and "error" in answer:
            return f"jsonrpc {answer['error'].get('code')}", str(answer["error"].get("message"))[:200]
        if status != 200:
            return f"http {status}", body[:200].decode(errors="replace")
        if answer is None:
            return "no response", body[:300].decode(errors="replace")
        if answer.get("result", {}).get("isError"):
            return "tool error", str(answer["result"].get("content"))[:200]
        return None, ""


class Load:
    def __init__(self, cluster: Cluster, args: argparse.Namespace, http: aiohttp.ClientSession) -> None:
        self.rate, self.timeout = args.rate, aiohttp.ClientTimeout(total=90)
        self.calls: list[Call] = []
        self.in_flight = 0
        self.skipped = 0
        self.clients = [
            Client(
                http,
                cluster.mcp_url,
                LEGACY if n % 2 == 0 else MODERN,
                f"soak-{n % AGENTS}",
                cluster.key_secrets[f"soak-{n % AGENTS}"],
            )
            for n in range(args.sessions)
        ]
        self.flooder = Client(http, cluster.mcp_url, MODERN, "flooder", cluster.key_secrets["flooder"])

    async def open(self) -> None:
        await asyncio.gather(*(c.initialize() for c in self.clients if c.era == LEGACY))

    async def one(self, client: Client, tool: str, flood: bool = False) -> None:
        self.in_flight += 1
        started = time.monotonic()
        try:
            cause, detail = await asyncio.wait_for(client.call(tool), 90)
        except (aiohttp.ClientError, OSError, TimeoutError, RuntimeError, ValueError) as error:
            cause, detail = f"exception {type(error).__name__}", str(error)[:200]
        finally:
            self.in_flight -= 1
        call = Call(started, time.monotonic(), client.era, client.agent, tool, cause, flood, detail)
        self.calls.append(call)

    async def steady(self, until: float) -> None:
        tools = list(TOOLS)
        tasks: set[asyncio.Task[None]] = set()
        start, n = time.monotonic(), 0
        while (due := start + n / self.rate) < until:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            client = self.clients[n % len(self.clients)]
            n += 1
            if self.in_flight > 400:  # the client's own bound: never an unbounded pile of calls
                self.skipped += 1
                continue
            task = asyncio.create_task(self.one(client, random.choice(tools)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)

    async def flood(self, seconds: float) -> None:
        rate, tasks = LIMIT * 3, []
        start = time.monotonic()
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            tasks.append(asyncio.create_task(self.one(self.flooder, "alpha__echo", flood=True)))
        await asyncio.gather(*tasks)


# -- the faults -----------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str
    target: str
    at: float  # when it struck (monotonic)
    until: float  # the end of the window a call may be caught in (a kill's: the process reaped)
    recovered: float  # when the part was back (restart ready, SIGCONT, flood over)


RESTARTS = ("nats", "replica", "backend", "registrar")  # faults that start a process afresh
KINDS = (*RESTARTS, "hang", "flood")


def schedule(duration: float, baseline: float, tail: float) -> list[tuple[float, str]]:
    """(offset in seconds, fault) pairs: the six faults in turn, evenly spaced after the
    baseline and before the tail, about one every 90 s, each at least once. Near the end only
    faults that restart nothing (hang, flood): a process started then could not be judged for
    memory growth (the report waits `WARM_UP` after a start and then needs twice that)."""
    span = duration - baseline - tail
    count = max(len(KINDS), int(span // 90))
    gap = span / count
    last_restart = duration - 3 * soak_report.WARM_UP - 60  # a restart takes up to 10 s more
    plan: list[tuple[float, str]] = []
    for i in range(count):
        at, kind = baseline + i * gap, KINDS[i % len(KINDS)]
        if kind in RESTARTS and at > last_restart and i >= len(KINDS):
            kind = ("hang", "flood")[i % 2]
        plan.append((at, kind))
    return plan


async def strike(kind: str, cluster: Cluster, load: Load, round_: int) -> Fault:
    loop = asyncio.get_running_loop()

    async def run(function: Callable[..., Any], *args: Any) -> Any:
        return await loop.run_in_executor(None, function, *args)

    if kind == "flood":
        at = time.monotonic()
        await load.flood(FLOOD_SECONDS)
        return Fault(kind, "agent flooder", at, time.monotonic(), time.monotonic())
    if kind == "hang":
        role = "backend-alpha-2"
        cluster.signal(role, signal.SIGSTOP)
        at = time.monotonic()
        await asyncio.sleep(HANG_SECONDS)
        cluster.signal(role, signal.SIGCONT)
        return Fault(kind, role, at, time.monotonic(), time.monotonic())
    role, pause = {
        "backend": ("backend-alpha-1", 5.0),
        "replica": (f"router-{1 + round_ % 3}", 1.0),
        "nats": ("nats", 10.0),
        "registrar": ("registrar-beta", 3.0),
    }[kind]
    at = time.monotonic()
    cluster.kill(role)
    # Dying takes a few milliseconds: a request written to the process meanwhile reaches a
    # killed process (one was, 3 ms after the signal, in the run of 16:50), so the window a call
    # may be caught in lasts until the process is reaped, its sockets closed.
    gone = await run(cluster.reap, role)
    await asyncio.sleep(max(0.0, pause - (gone - at)))
    await run(cluster.restart, role)
    return Fault(kind, role, at, gone, time.monotonic())


# -- the run --------------------------------------------------------------------------------------


async def soak(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    duration = args.minutes * 60.0
    baseline = min(120.0, duration / 6)
    tail = min(90.0, duration / 8)
    plan = schedule(duration, baseline, tail)
    print(f"soak: {len(plan)} faults: {[kind for _, kind in plan]}", flush=True)
    samples: list[dict[str, Any]] = []
    faults: list[Fault] = []
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=90)) as http:
        load = Load(cluster, args, http)
        await load.open()
        t0 = time.monotonic()
        until = t0 + duration
        loop = asyncio.get_running_loop()

        async def sample() -> None:
            while time.monotonic() < until:
                usage, sessions, nats = await loop.run_in_executor(None, _sample, cluster)
                samples.append(
                    {"t": time.monotonic() - t0, "usage": usage, "sessions": sessions, "nats": nats}
                )
                await asyncio.sleep(SAMPLE_EVERY)

        async def break_things() -> None:
            for index, (offset, kind) in enumerate(plan):
                await asyncio.sleep(max(0.0, t0 + offset - time.monotonic()))
                fault = await strike(kind, cluster, load, index // 6)
                faults.append(fault)
                print(
                    f"{fault.at - t0:7.1f}s {kind:<9} {fault.target:<16} back after "
                    f"{fault.recovered - fault.at:5.1f}s; calls so far {len(load.calls)}, "
                    f"failed {sum(1 for c in load.calls if c.cause)}",
                    flush=True,
                )

        async def progress() -> None:
            minute = 1
            while time.monotonic() < until:
                await asyncio.sleep(max(0.0, t0 + 60 * minute - time.monotonic()))
                window = [c for c in load.calls if c.started >= t0 + 60 * (minute - 1) and not c.flood]
                failed = sum(1 for c in window if c.cause)
                print(
                    f"minute {minute}: {len(window)} calls, {failed} failed, {load.in_flight} in flight",
                    flush=True,
                )
                minute += 1

        await asyncio.gather(load.steady(until), sample(), break_things(), progress())
    return {
        "t0": t0,
        "calls": [asdict(c) for c in load.calls],
        "faults": [asdict(f) for f in faults],
        "samples": samples,
        "skipped": load.skipped,
        "reinitialized": sum(c.reinitialized for c in load.clients),
    }


def _sample(cluster: Cluster) -> tuple[dict[str, dict[str, float]], dict[str, float], dict[str, int]]:
    return cluster.usage(), cluster.sessions(), cluster.nats_counts()


def machine() -> dict[str, Any]:
    load1, load5, load15 = os.getloadavg()
    return {"cpus": os.cpu_count(), "loadavg_at_start": [load1, load5, load15]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the run (default 30)")
    parser.add_argument(
        "--rate", type=float, default=30.0, help="steady calls per second in total (default 30)"
    )
    parser.add_argument("--sessions", type=int, default=40, help="clients, half of each era (default 40)")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json", help="the JSON result")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.sessions < 2:
        parser.error("--minutes and --rate must be positive, --sessions at least 2")
    if args.rate > 200:
        parser.error("--rate is bounded at 200 calls/s: this is a soak, not a load test")
    workdir = Path(tempfile.mkdtemp(prefix="toolmesh-soak-"))
    cluster = Cluster(workdir)
    print(f"soak: work directory {workdir}", flush=True)
    started = machine()
    try:
        cluster.start()
        print(
            f"soak: cluster up at {cluster.mcp_url}; {args.minutes:g} min at {args.rate:g} calls/s",
            flush=True,
        )
        raw = asyncio.run(soak(cluster, args))
    finally:
        left = cluster.stop()
        if left:
            print(f"soak: processes still alive after stopping: {left}", flush=True)
    raw["machine"] = {**started, "loadavg_at_end": list(os.getloadavg())}
    raw["settings"] = {"minutes": args.minutes, "rate": args.rate, "sessions": args.sessions, "limit": LIMIT}
    report = soak_report.evaluate(raw)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps({**report, "raw": raw}, option=orjson.OPT_INDENT_2))
    markdown = soak_report.markdown(report)
    args.out.with_suffix(".md").write_text(markdown)
    print(markdown, flush=True)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if report["verdict"]["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
