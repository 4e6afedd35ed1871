"""Inputs of the capacity model (docs/capacity.md), measured on this machine.

    .venv/bin/python bench/capacity.py                   # everything (a few minutes)
    .venv/bin/python bench/capacity.py --only nats,registry --sessions 500

Sections (`--only`, comma-separated):

- `nats`: NATS messages per operation, from nats-server's own counters (`/varz` in_msgs and
  out_msgs, monitoring on): two router replicas with `--nats`, a `bench/fast_backend.py` backend;
  deltas around N `initialize` (a 2025-era session), N `tools/call` on a warm session, the same
  with `X-Request-Id` (as a balancer sends: attempt records), N 2026-07-28 stateless calls, N
  calls under a per-agent rate limit, and the idle rate of two replicas (subtracted from each).
- `kv`: session record writes per second at N active sessions: the `<prefix>_sessions` stream's
  last sequence (`/jsz`) before and after every session is touched for a while, with
  `session_idle_timeout` at 40 s (a replica rewrites a used record at most every quarter of it).
- `kvrate`: JetStream KV create + delete pairs per second one nats-server takes (64 writers).
- `sessions`: RSS of the replica that holds N sessions and of one that only follows them (the
  watch keeps other replicas' records as bytes) per 10,000 sessions.
- `tools`: RSS of an embedded router whose one backend has 10, 1,000 and 5,000 tools.
- `registry`: the router's registry source (`RegistrySource`, the code a replica runs) over real
  etcd and over the Consul double at 1,000 and 10,000 instances: time and CPU to the first
  catalog, then per update (one instance changes) from the write to the new catalog, and the
  bytes one Consul blocking query returns.

Writes bench/results/capacity.json. Everything is on loopback, started here and stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from router.catalog.record import BackendRecord, etcd_instance_key, to_json
from router.catalog.sources.consul import ConsulRegistry
from router.catalog.sources.etcd import EtcdRegistry
from router.catalog.sources.registry import RegistrySource
from router.up.binaries import Binaries
from router.up.processes import ManagedProcess, Supervisor, free_port, wait_until
from router.up.readiness import answers

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
HOST = "127.0.0.1"
LEGACY = "2025-11-25"
MODERN = "2026-07-28"
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, flags=re.MULTILINE)
    return round(int(match[1]) / 1024, 1) if match else 0.0


class Mcp:
    """Raw requests: a 2025-era session or 2026-07-28 stateless calls."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url
        self.session_id: str | None = None
        self.ids = 0

    async def post(self, method: str, params: dict[str, Any], extra: dict[str, str] | None = None) -> Any:
        self.ids += 1
        headers = {**HEADERS, **(extra or {})}
        if self.session_id:
            headers |= {"mcp-session-id": self.session_id, "mcp-protocol-version": LEGACY}
        body = {"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params}
        async with self.http.post(self.url, data=orjson.dumps(body), headers=headers) as response:
            raw = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{method}: HTTP {response.status} {raw[:200]!r}")
            if "mcp-session-id" in response.headers:
                self.session_id = response.headers["mcp-session-id"]
            return raw

    async def initialize(self) -> None:
        self.session_id = None
        params = {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "cap", "version": "1"},
        }
        await self.post("initialize", params)
        headers = {**HEADERS, "mcp-session-id": self.session_id or "", "mcp-protocol-version": LEGACY}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        async with self.http.post(self.url, data=orjson.dumps(note), headers=headers) as response:
            await response.read()

    async def call(self, tool: str, extra: dict[str, str] | None = None) -> None:
        await self.post("tools/call", {"name": tool, "arguments": {"text": "x"}}, extra)

    async def stateless(self, tool: str) -> None:
        meta = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        headers = {"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": tool}
        saved, self.session_id = self.session_id, None
        try:
            await self.post("tools/call", {"name": tool, "arguments": {"text": "x"}, "_meta": meta}, headers)
        finally:
            self.session_id = saved


# -- a small cluster --------------------------------------------------------------------------------


class Rig:
    """nats-server (monitoring on), a fast backend with 2 tools, and replicas with `--nats`."""

    def __init__(self, run: Supervisor, workdir: Path, replicas: int, env: dict[str, str]) -> None:
        self.run, self.workdir = run, workdir
        bins = Binaries.find()
        self.nats_port, self.monitor = free_port(), free_port()
        nats = [
            bins.nats_server, "-a", HOST, "-p", str(self.nats_port), "-js", "-sd", str(workdir / "js"),
            "-m", str(self.monitor),
        ]  # fmt: skip
        process = run.start(nats, "nats")
        wait_until(answers(f"http://{HOST}:{self.monitor}/healthz"), 30, "nats", process=process)
        backend = free_port()
        fast = [sys.executable, str(REPO / "bench/fast_backend.py"), "--port", str(backend), "--tools", "2"]
        process = run.start(fast, "backend")
        wait_until(answers(f"http://{HOST}:{backend}/mcp", status=None), 30, "backend", process=process)
        catalog = workdir / "catalog.json"
        limited = [{"rate": 100000, "tool": "tool_1", "per": ["agent"]}]
        servers = {"fast": {"url": f"http://{HOST}:{backend}/mcp", "limits": limited}}
        catalog.write_bytes(orjson.dumps({"mcpServers": servers}))
        self.ports: list[int] = []
        self.processes: list[ManagedProcess] = []
        environment = {"TOOLMESH_CLUSTER_KEY": secrets.token_hex(32), **env}
        for index in range(replicas):
            port = free_port()
            argv = [
                sys.executable, "-m", "router", "router", "--config", str(catalog), "--port", str(port),
                "--nats", f"nats://{HOST}:{self.nats_port}", "--log-level", "warning",
            ]  # fmt: skip
            process = run.start(argv, f"router-{index + 1}", environment)
            wait_until(answers(f"http://{HOST}:{port}/readyz"), 60, f"router {index + 1}", process=process)
            self.ports.append(port)
            self.processes.append(process)

    def url(self, index: int) -> str:
        return f"http://{HOST}:{self.ports[index]}/mcp"

    def varz(self) -> dict[str, int]:
        varz = get_json(f"http://{HOST}:{self.monitor}/varz")
        return {key: int(varz[key]) for key in ("in_msgs", "out_msgs", "in_bytes", "out_bytes")}

    def stream_seq(self, name: str) -> int:
        jsz = get_json(f"http://{HOST}:{self.monitor}/jsz?streams=true")
        for account in jsz.get("account_details", []):
            for stream in account.get("stream_detail", []):
                if stream["name"] == name:
                    return int(stream["state"]["last_seq"])
        return 0


@contextlib.contextmanager
def rig(replicas: int, env: dict[str, str] | None = None) -> Iterator[Rig]:
    workdir = Path(tempfile.mkdtemp(prefix="toolmesh-capacity-"))
    with Supervisor(workdir / "logs", cwd=REPO) as run:
        yield Rig(run, workdir, replicas, env or {})


async def counted(r: Rig, idle_per_s: dict[str, float], what: Any, n: int) -> dict[str, float]:
    """NATS messages per operation: the /varz deltas around `what()` run `n` times, less the idle
    rate over the time it took."""
    await asyncio.sleep(1.5)  # let background writes of the step before settle
    before, started = r.varz(), time.monotonic()
    for _ in range(n):
        await what()
    await asyncio.sleep(1.5)  # background writes (records, deletes) land
    after, elapsed = r.varz(), time.monotonic() - started
    return {key: round((after[key] - before[key] - idle_per_s[key] * elapsed) / n, 2) for key in before} | {
        "n": n,
        "seconds": round(elapsed, 1),
    }


async def nats_ops(n: int) -> dict[str, Any]:
    with rig(2) as r:
        async with aiohttp.ClientSession() as http:
            a = Mcp(http, r.url(0))
            await a.initialize()
            await a.call("fast__tool_0")
            before = r.varz()
            await asyncio.sleep(10)
            after = r.varz()
            idle = {key: (after[key] - before[key]) / 10 for key in before}

            async def session() -> None:
                await Mcp(http, r.url(0)).initialize()

            async def call() -> None:
                await a.call("fast__tool_0")

            async def recorded() -> None:
                await a.call("fast__tool_0", {"x-request-id": secrets.token_hex(16)})

            async def stateless() -> None:
                await a.stateless("fast__tool_0")

            async def limited() -> None:
                await a.call("fast__tool_1")

            b = Mcp(http, r.url(1))

            async def cold() -> None:  # a session made on replica 1, its first call on replica 2
                first = Mcp(http, r.url(0))
                await first.initialize()
                b.session_id = first.session_id
                await b.call("fast__tool_0")

            result: dict[str, Any] = {"idle_two_replicas_per_s": {k: round(v, 1) for k, v in idle.items()}}
            for name, what in (
                ("initialize", session),
                ("call_warm", call),
                ("call_with_x_request_id", recorded),
                ("call_stateless_2026", stateless),
                ("call_rate_limited_tool", limited),
                ("initialize_then_call_on_other_replica", cold),
            ):
                result[name] = await counted(r, idle, what, n)
                print(f"nats {name}: {result[name]}", flush=True)
    return result


async def kv_writes(sessions: int, seconds: float) -> dict[str, Any]:
    idle_timeout = 40.0
    with rig(1, {"TOOLMESH_SESSION_IDLE_TIMEOUT": str(idle_timeout), "TOOLMESH_MAX_SESSIONS": "100000"}) as r:
        connector = aiohttp.TCPConnector(limit=16)
        async with aiohttp.ClientSession(connector=connector) as http:
            clients = [Mcp(http, r.url(0)) for _ in range(sessions)]
            for chunk in range(0, sessions, 16):
                await asyncio.gather(*(c.initialize() for c in clients[chunk : chunk + 16]))
            await asyncio.sleep(2)
            name = "KV_toolmesh_sessions"
            before, started, touched = r.stream_seq(name), time.monotonic(), 0
            while time.monotonic() - started < seconds:
                for chunk in range(0, sessions, 16):
                    await asyncio.gather(*(c.post("ping", {}) for c in clients[chunk : chunk + 16]))
                    touched += 16
            elapsed = time.monotonic() - started
            await asyncio.sleep(1)
            writes = r.stream_seq(name) - before
    result = {
        "sessions": sessions,
        "idle_timeout_s": idle_timeout,
        "seconds": round(elapsed, 1),
        "touches_per_session": round(touched / sessions, 1),
        "writes": writes,
        "writes_per_s": round(writes / elapsed, 1),
        "bound_per_s": round(sessions / (idle_timeout / 4), 1),
    }
    print(f"kv: {result}", flush=True)
    return result


async def session_rss(sessions: int) -> dict[str, Any]:
    with rig(2, {"TOOLMESH_MAX_SESSIONS": str(sessions * 2)}) as r:
        connector = aiohttp.TCPConnector(limit=16)
        async with aiohttp.ClientSession(connector=connector) as http:
            warm = Mcp(http, r.url(0))
            await warm.initialize()
            await warm.call("fast__tool_0")
            await asyncio.sleep(2)
            before = [rss_mib(p.pid) for p in r.processes]
            started = time.monotonic()
            for chunk in range(0, sessions, 16):
                await asyncio.gather(
                    *(Mcp(http, r.url(0)).initialize() for _ in range(min(16, sessions - chunk)))
                )
            took = time.monotonic() - started
            await asyncio.sleep(5)  # the other replica's watch catches up
            after = [rss_mib(p.pid) for p in r.processes]
    per = 10000 / sessions
    result = {
        "sessions": sessions,
        "seconds_to_create": round(took, 1),
        "serving_replica_mib": [before[0], after[0]],
        "following_replica_mib": [before[1], after[1]],
        "serving_mib_per_10k": round((after[0] - before[0]) * per, 1),
        "following_mib_per_10k": round((after[1] - before[1]) * per, 1),
    }
    print(f"sessions: {result}", flush=True)
    return result


def tool_rss() -> dict[str, Any]:
    result: dict[str, Any] = {}
    for tools in (10, 1000, 5000):
        workdir = Path(tempfile.mkdtemp(prefix="toolmesh-capacity-"))
        with Supervisor(workdir / "logs", cwd=REPO) as run:
            backend, port = free_port(), free_port()
            fast = [
                sys.executable,
                str(REPO / "bench/fast_backend.py"),
                "--port",
                str(backend),
                "--tools",
                str(tools),
            ]
            process = run.start(fast, "backend")
            wait_until(answers(f"http://{HOST}:{backend}/mcp", status=None), 30, "backend", process=process)
            catalog = workdir / "catalog.json"
            catalog.write_bytes(
                orjson.dumps({"mcpServers": {"fast": {"url": f"http://{HOST}:{backend}/mcp"}}})
            )
            argv = [sys.executable, "-m", "router", "router", "--config", str(catalog), "--port", str(port)]
            router = run.start(argv, "router")
            wait_until(answers(f"http://{HOST}:{port}/readyz"), 60, "router", process=router)

            def listed(port: int = port, tools: int = tools) -> bool:
                text = urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5).read().decode()
                match = re.search(r'^toolmesh_catalog_items\{kind="tools"\} (\S+)$', text, flags=re.MULTILINE)
                return match is not None and float(match[1]) >= tools

            with contextlib.suppress(Exception):
                wait_until(listed, 60, "the tools listed", process=router)
            time.sleep(2)
            result[str(tools)] = rss_mib(router.pid)
    result["mib_per_1000_tools"] = round((result["5000"] - result["10"]) / 4.99, 1)
    print(f"tools: {result}", flush=True)
    return result


async def kv_rate(seconds: float, in_flight: int) -> dict[str, Any]:
    """JetStream KV create + delete pairs per second that one nats-server takes here (what an
    attempt record costs NATS), with `in_flight` writers on one connection."""
    import nats

    workdir = Path(tempfile.mkdtemp(prefix="toolmesh-capacity-"))
    with Supervisor(workdir / "logs", cwd=REPO) as run:
        port, monitor = free_port(), free_port()
        argv = [Binaries.find().nats_server, "-a", HOST, "-p", str(port), "-js", "-sd", str(workdir / "js"),
                "-m", str(monitor)]  # fmt: skip
        process = run.start(argv, "nats")
        wait_until(answers(f"http://{HOST}:{monitor}/healthz"), 30, "nats", process=process)
        client = await nats.connect(f"nats://{HOST}:{port}")
        try:
            kv = await client.jetstream().create_key_value(bucket="capacity", ttl=600)
            stop, done = time.monotonic() + seconds, 0

            async def writer(number: int) -> None:
                nonlocal done
                n = 0
                while time.monotonic() < stop:
                    key = f"k{number}-{n}"
                    await kv.create(key, b"x" * 80)
                    await kv.delete(key)
                    n += 1
                    done += 1

            started = time.monotonic()
            await asyncio.gather(*(writer(w) for w in range(in_flight)))
            elapsed = time.monotonic() - started
        finally:
            await client.close()
    result = {
        "in_flight": in_flight,
        "pairs_per_s": round(done / elapsed),
        "writes_per_s": round(2 * done / elapsed),
    }
    print(f"kv rate: {result}", flush=True)
    return result


# -- the registry watch -------------------------------------------------------------------------------


def _record(n: int, tag: str = "v1") -> BackendRecord:
    return BackendRecord(
        server=f"s{n // 10}",
        instance_id=f"i{n}",
        transport="http",
        url=f"http://10.0.{n // 250}.{n % 250}:8000/mcp",
        tags=(tag,),
        eras=(LEGACY,),
        capabilities=("tools",),
        server_info=(("name", f"s{n // 10}"),),
        definitions_hash="0" * 64,
        timeout=None,
    )


async def _follow(source: RegistrySource, write: Any, updates: int) -> dict[str, Any]:
    """Time and CPU from the start to the first catalog, then per one-instance update."""
    cpu, started = time.process_time(), time.monotonic()
    per_update: list[float] = []
    per_update_cpu: list[float] = []
    async with aclosing(source.snapshots()) as catalogs:
        first = await anext(catalogs)
        first_s, first_cpu = time.monotonic() - started, time.process_time() - cpu
        size = sum(len(v) for v in first.servers.values())
        for number in range(updates):
            cpu, started = time.process_time(), time.monotonic()
            await write(number)
            await anext(catalogs)
            per_update.append(time.monotonic() - started)
            per_update_cpu.append(time.process_time() - cpu)
    return {
        "instances": size,
        "first_catalog_s": round(first_s, 3),
        "first_catalog_cpu_s": round(first_cpu, 3),
        "update_p50_ms": round(statistics.median(per_update) * 1000, 1),
        "update_cpu_p50_ms": round(statistics.median(per_update_cpu) * 1000, 1),
    }


async def registry(sizes: list[int], updates: int, kinds: set[str]) -> dict[str, Any]:
    result: dict[str, Any] = {"etcd": {}, "consul": {}}
    bins = Binaries.find()
    for size in sizes:
        if "etcd" not in kinds:
            break
        workdir = Path(tempfile.mkdtemp(prefix="toolmesh-capacity-"))
        with Supervisor(workdir / "logs", cwd=REPO) as run:
            client, peer = free_port(), free_port()
            url = f"http://{HOST}:{client}"
            etcd = [
                bins.etcd, "--name", "cap", "--data-dir", str(workdir / "etcd"),
                "--listen-client-urls", url, "--advertise-client-urls", url,
                "--listen-peer-urls", f"http://{HOST}:{peer}", "--initial-advertise-peer-urls",
                f"http://{HOST}:{peer}", "--initial-cluster", f"cap=http://{HOST}:{peer}", "--log-level", "warn",
            ]  # fmt: skip
            process = run.start(etcd, "etcd")
            wait_until(answers(f"{url}/health"), 30, "etcd", process=process)
            async with EtcdRegistry(url) as writer:
                started = time.monotonic()
                for chunk in range(0, size, 50):
                    await asyncio.gather(
                        *(
                            writer.kv.put(etcd_instance_key(writer.prefix, _record(n)), to_json(_record(n)))
                            for n in range(chunk, min(size, chunk + 50))
                        )
                    )
                print(f"etcd: {size} records written in {time.monotonic() - started:.1f} s", flush=True)

                async def put(number: int, writer: EtcdRegistry = writer) -> None:
                    record = _record(number, tag=f"u{number}")
                    await writer.kv.put(etcd_instance_key(writer.prefix, record), to_json(record))

                source = RegistrySource(lambda url=url: EtcdRegistry(url), "etcd")  # type: ignore[misc]
                result["etcd"][str(size)] = await _follow(source, put, updates)
            print(f"etcd {size}: {result['etcd'][str(size)]}", flush=True)
    for size in sizes:
        if "consul" not in kinds:
            break
        workdir = Path(tempfile.mkdtemp(prefix="toolmesh-capacity-"))
        with Supervisor(workdir / "logs", cwd=REPO) as run:
            port = free_port()
            url = f"http://{HOST}:{port}"
            double = [sys.executable, "-m", "tests.consul_double", "--port", str(port)]
            process = run.start(double, "consul")
            wait_until(answers(f"{url}/v1/status/leader"), 30, "consul double", process=process)
            # TTL checks that outlast the registration of 10,000 services (Consul would turn the
            # first ones critical, and the double reap them, before the last one is in)
            async with ConsulRegistry(url, ttl=3600, deregister_after=7200) as consul:
                started = time.monotonic()
                for chunk in range(0, size, 50):
                    await asyncio.gather(
                        *(consul.register(_record(n), b"") for n in range(chunk, min(size, chunk + 50)))
                    )
                    await asyncio.gather(
                        *(consul.heartbeat(_record(n), True, "") for n in range(chunk, min(size, chunk + 50)))
                    )
                print(f"consul: {size} services registered in {time.monotonic() - started:.1f} s", flush=True)

                async def register(number: int, consul: ConsulRegistry = consul) -> None:
                    await consul.register(_record(number, tag=f"u{number}"), b"")
                    await consul.heartbeat(_record(number, tag=f"u{number}"), True, "")

                source = RegistrySource(lambda url=url: ConsulRegistry(url), "consul")  # type: ignore[misc]
                found = await _follow(source, register, updates)
                async with aiohttp.ClientSession() as http, http.get(f"{url}/v1/health/service/mcp") as reply:
                    raw = await reply.read()
                found["bytes_per_blocking_answer"] = len(raw)
                result["consul"][str(size)] = found
            print(f"consul {size}: {found}", flush=True)
    return result


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    only = (
        set(args.only.split(",")) if args.only else {"nats", "kv", "kvrate", "sessions", "tools", "registry"}
    )
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()}}
    if "nats" in only:
        result["nats"] = await nats_ops(args.calls)
    if "kv" in only:
        result["kv"] = await kv_writes(args.sessions, 30.0)
    if "kvrate" in only:
        result["kv_rate"] = await kv_rate(10.0, 64)
    if "sessions" in only:
        result["sessions"] = await session_rss(args.rss_sessions)
    if "tools" in only:
        result["tools"] = tool_rss()
    if "registry" in only:
        kinds = set(args.registries.split(","))
        result["registry"] = await registry([int(s) for s in args.sizes.split(",")], args.updates, kinds)
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated sections (default: all)")
    parser.add_argument("--calls", type=int, default=500, help="operations per NATS count (default 500)")
    parser.add_argument("--sessions", type=int, default=1000, help="active sessions for kv (default 1000)")
    parser.add_argument(
        "--rss-sessions", type=int, default=10000, help="sessions for the RSS step (default 10000)"
    )
    parser.add_argument("--sizes", default="1000,10000", help="registry sizes (default 1000,10000)")
    parser.add_argument("--registries", default="etcd,consul", help="registry kinds (default etcd,consul)")
    parser.add_argument("--updates", type=int, default=20, help="one-instance updates per size (default 20)")
    parser.add_argument("--out", type=Path, default=RESULTS / "capacity.json")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = orjson.loads(args.out.read_bytes()) if args.out.exists() and args.only else {}
    args.out.write_bytes(orjson.dumps(previous | result, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
