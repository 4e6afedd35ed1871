"""Replicas behind one address: sessions, client messages and catalog changes shared over NATS.

Everything here is real: nats-server with JetStream, three `toolmesh router --nats` processes,
Envoy hashing on Mcp-Session-Id, and the sample MCP backend over HTTP.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import anyio
import pytest

from router.errors import CALL_INTERRUPTED
from router.up.processes import ManagedProcess
from tests.support.cluster import (
    CLUSTER_KEY,
    Cluster,
    McpHttp,
    NatsServer,
    Replica,
    Reply,
    cluster,
    drain,
    envoy,
    wait_ready,
)
from tests.support.procs import free_port, sample_server_http, write_catalog

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ECHO = {"name": "alpha__echo", "arguments": {"text": "hi"}}


def _error_code(reply: Reply) -> int | None:
    error = reply.messages[-1].get("error") if reply.messages else None
    return int(error["code"]) if isinstance(error, dict) else None


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[str]:
    # Handshake era: the backend's list_changed reaches only the upstream session that caused it
    with sample_server_http("alpha", era="legacy", log_dir=tmp_path) as (url, _):
        yield url


@pytest.fixture
def three(tmp_path: Path, backend: str) -> Iterator[Cluster]:
    with cluster(tmp_path, {"alpha": {"url": backend}}, replicas=3) as group:
        yield group


async def test_a_session_started_on_one_replica_continues_on_the_others(three: Cluster) -> None:
    r0, r1, r2 = three.replicas
    async with aiohttp.ClientSession() as http:
        client = McpHttp(http)
        await client.initialize(r0.mcp_url)
        # POST on replicas that never saw the session
        for replica in (r1, r2):
            reply = await client.request(replica.mcp_url, "tools/call", ECHO)
            assert reply.status == 200
            assert reply.result["content"][0]["text"] == "alpha:hi"
            # the replica holds it now, and its sessions gauge says so
            assert replica.metric("toolmesh_sessions") == 1.0
        # log level set on r1 is part of the record r2 and r0 see
        assert (await client.request(r1.mcp_url, "ping")).status == 200
        # GET stream on r2, DELETE on r1: the session ends everywhere and r2's stream closes
        async with client.stream(r2.mcp_url) as events:
            await anyio.sleep(0.2)
            assert await client.delete(r1.mcp_url) == 200
            with anyio.fail_after(5):
                rest = [message async for message in events]  # ends when the stream is closed
            assert rest == []
        # r1 forgot it at once; the others when the bucket's watch tells them (milliseconds, but a
        # busy machine may take longer): the session ends everywhere, within a bound
        assert (await client.request(r1.mcp_url, "ping")).status == 404
        for replica in (r0, r2):
            deadline = time.monotonic() + 5
            while (gone := await client.request(replica.mcp_url, "ping")).status != 404:
                assert gone.status == 200 and time.monotonic() < deadline, (replica.port, gone)
                await anyio.sleep(0.05)
            assert gone.messages[0]["error"]["code"] == -32001


async def test_replicas_holding_two_sessions_each_serve_five(tmp_path: Path, backend: str) -> None:
    """With `session_cache = 2` each replica keeps two sessions and fetches the others from NATS:
    every session still works on both, and a deletion on one reaches the other."""
    servers = {"alpha": {"url": backend}}
    with cluster(tmp_path, servers, replicas=2, env={"TOOLMESH_SESSION_CACHE": "2"}) as two:
        r0, r1 = two.replicas
        async with aiohttp.ClientSession() as http:
            clients = [McpHttp(http) for _ in range(5)]
            for client in clients:
                await client.initialize(r0.mcp_url)
            for _ in range(2):
                for client in clients:
                    for replica in (r1, r0):
                        reply = await client.request(replica.mcp_url, "tools/call", ECHO)
                        assert reply.status == 200
                        assert reply.result["content"][0]["text"] == "alpha:hi"
            for replica in (r0, r1):
                assert (replica.metric("toolmesh_sessions_evicted") or 0) >= 8
            last = clients[-1]  # held by both now (the most recently used)
            assert await last.delete(r0.mcp_url) == 200
            deadline = time.monotonic() + 5
            while (gone := await last.request(r1.mcp_url, "ping")).status != 404:
                assert gone.status == 200 and time.monotonic() < deadline, gone
                await anyio.sleep(0.05)


async def test_a_forged_session_id_is_refused_without_a_lookup(three: Cluster) -> None:
    r0 = three.replicas[0]
    async with aiohttp.ClientSession() as http:
        client = McpHttp(http)
        await client.initialize(r0.mcp_url)
        real = client.session_id
        assert real is not None
        token, _, tag = real.partition(".")
        forged = [f"{token}.{tag[:-1]}{'A' if tag[-1] != 'A' else 'B'}", token, "x" * 40]
        assert (await client.request(three.replicas[1].mcp_url, "ping")).status == 200  # r1 holds it now
        # With NATS down no lookup could succeed (it would answer 503): 404 proves none was tried.
        three.nats.stop()
        await anyio.to_thread.run_sync(lambda: wait_ready(three.replicas[1], status="degraded"))
        for session_id in forged:
            client.session_id = session_id
            reply = await client.request(three.replicas[1].mcp_url, "ping")
            assert reply.status == 404, session_id
        # the real session is in r1's cache since r1 served it: it still works there
        client.session_id = real
        assert (await client.request(three.replicas[1].mcp_url, "ping")).status == 200
        # one created during the outage is only on r0: r1 says "retry", not "re-initialize"
        await client.initialize(r0.mcp_url)
        unknown_here = await client.request(three.replicas[1].mcp_url, "ping")
        assert unknown_here.status == 503
        assert "retry" in unknown_here.messages[0]["error"]["message"]
        three.nats.start()


async def test_list_changed_reaches_clients_on_every_replica_once(three: Cluster) -> None:
    async with aiohttp.ClientSession() as http:
        clients = [McpHttp(http) for _ in three.replicas]
        for client, replica in zip(clients, three.replicas, strict=True):
            await client.initialize(three.replicas[0].mcp_url)  # all created on r0 ...
            assert (await client.request(replica.mcp_url, "tools/list")).status == 200
        async with (
            clients[0].stream(three.replicas[0].mcp_url) as s0,  # ... streams on r0, r1, r2
            clients[1].stream(three.replicas[1].mcp_url) as s1,
            clients[2].stream(three.replicas[2].mcp_url) as s2,
        ):
            await anyio.sleep(0.3)
            # `grow` changes the backend; only r1's upstream session hears its list_changed
            grown = await clients[1].request(
                three.replicas[1].mcp_url,
                "tools/call",
                {"name": "alpha__grow", "arguments": {"standalone": True}},
            )
            assert grown.status == 200
            got = [await drain(stream, 3.0) for stream in (s0, s1, s2)]
        for index, messages in enumerate(got):
            methods = [m.get("method") for m in messages]
            assert methods.count("notifications/tools/list_changed") == 1, (index, methods)
        for client, replica in zip(clients, three.replicas, strict=True):
            tools = (await client.request(replica.mcp_url, "tools/list")).result["tools"]
            assert "alpha__extra_1" in {tool["name"] for tool in tools}


async def test_nats_restarted_mid_run(three: Cluster) -> None:
    r0, r1, _ = three.replicas
    async with aiohttp.ClientSession() as http:
        before = McpHttp(http)
        await before.initialize(r0.mcp_url)
        three.nats.stop()
        detail = await anyio.to_thread.run_sync(lambda: wait_ready(r0, status="degraded"))
        assert detail["nats"] == "disconnected"
        assert r0.metric("toolmesh_nats_connected") == 0.0
        # local state keeps serving: the old session on its replica, and a new one
        assert (await before.request(r0.mcp_url, "tools/call", ECHO)).status == 200
        during = McpHttp(http)
        await during.initialize(r0.mcp_url)
        assert (await during.request(r0.mcp_url, "tools/call", ECHO)).status == 200
        assert r0.metric("toolmesh_sessions_unsynced") == 1.0
        three.nats.start()
        for replica in three.replicas:
            await anyio.to_thread.run_sync(lambda r=replica: wait_ready(r, status="ready"))
        assert r0.metric("toolmesh_nats_connected") == 1.0
        # the session made during the outage was shared once NATS came back
        deadline = time.monotonic() + 10
        while r0.metric("toolmesh_sessions_unsynced") != 0.0 and time.monotonic() < deadline:
            await anyio.sleep(0.1)
        for client in (before, during):
            reply = await client.request(r1.mcp_url, "tools/call", ECHO)
            assert reply.status == 200, reply
        # and new sessions are shared again
        after = McpHttp(http)
        await after.initialize(r1.mcp_url)
        assert (await after.request(r0.mcp_url, "ping")).status == 200


async def test_killing_a_replica_under_load_keeps_every_session(tmp_path: Path, three: Cluster) -> None:
    with envoy(tmp_path, [replica.port for replica in three.replicas]) as vip:
        async with aiohttp.ClientSession() as http:
            clients = [McpHttp(http) for _ in range(30)]
            for client in clients:
                await client.initialize(vip)
            errors: list[tuple[float, str, int]] = []  # (when, what, which client)
            calls = 0
            stop = anyio.Event()

            async def load(client: McpHttp) -> None:
                nonlocal calls
                while not stop.is_set():
                    reply = await client.request(vip, "tools/call", ECHO)
                    if reply.status == 200 and _error_code(reply) is None:
                        calls += 1
                    else:
                        errors.append((time.monotonic(), f"{reply.status} {reply.messages}", id(client)))
                    await anyio.sleep(0.02)

            in_flight: list[tuple[float, int]] = []  # (when it ended, HTTP status)

            async def slow(client: McpHttp) -> None:
                reply = await client.request(
                    vip, "tools/call", {"name": "alpha__slow", "arguments": {"seconds": 10}}
                )
                in_flight.append((time.monotonic(), 0 if reply.status != 200 else _error_code(reply)))

            victim = three.replicas[1]
            async with anyio.create_task_group() as tg:
                for client in clients:
                    tg.start_soon(load, client)
                for client in clients[:6]:
                    tg.start_soon(slow, client)
                await anyio.sleep(1.5)
                os.kill(victim.process.pid, signal.SIGKILL)
                killed_at = time.monotonic()
                await anyio.sleep(3)
                calls_before = calls
                await anyio.sleep(2)
                stop.set()
                with anyio.fail_after(20):  # slow calls on live replicas finish; none hang
                    while len(in_flight) < 6:
                        await anyio.sleep(0.1)
                tg.cancel_scope.cancel()
            assert calls > calls_before, "calls stopped after the kill"
            # every session still works, without re-initialize
            for client in clients:
                reply = await client.request(vip, "tools/call", ECHO)
                assert reply.status == 200, reply
            # slow calls on the dead replica failed promptly, not when their 10 s were up
            failed = [ended - killed_at for ended, code in in_flight if code is not None]
            assert all(seconds < 3.0 for seconds in failed), failed
            # The only failures are calls that were running on the victim when it died: Envoy
            # retries every request whose connection broke, and the replica the retry reaches
            # answers "interrupted" (-32005) for a call the victim had started (it may have run)
            # and runs one the victim never saw. So no client fails twice, none fails once Envoy
            # noticed (allow for a busy machine in when the failure is seen), and no failure is a
            # balancer's 503 or a cut connection.
            late = [(round(at - killed_at, 2), what) for at, what, _ in errors if at - killed_at > 3.0]
            assert not late, late[:5]
            not_in_flight = [what for _, what, _ in errors if f"'code': {CALL_INTERRUPTED}" not in what]
            assert not not_in_flight, not_in_flight[:5]
            per_client = [who for _, _, who in errors]
            assert len(per_client) == len(set(per_client)), errors


async def test_a_replica_started_while_nats_is_down_serves_then_joins(tmp_path: Path, backend: str) -> None:
    """The first connect used to retry for ever: the replica never listened and ignored SIGTERM."""
    catalog = write_catalog(tmp_path, {"alpha": {"url": backend}})
    nats = NatsServer(tmp_path)  # its port is chosen, nothing listens there yet
    group = Cluster(tmp_path, nats, catalog)
    port = free_port()
    argv = [
        sys.executable, "-m", "router", "router", "--config", str(catalog), "--port", str(port),
        "--log-format", "text", "--nats", nats.url,
    ]  # fmt: skip
    env = {"TOOLMESH_CLUSTER_KEY": CLUSTER_KEY, "TOOLMESH_STARTUP_WAIT": "3"}
    # SIGTERM once the first connect has failed: the replica stops at once, cleanly.
    with ManagedProcess(argv, name="stopped", env=env, log_dir=tmp_path) as early:
        await anyio.to_thread.run_sync(lambda: early.wait_log("NATS not reachable", timeout=20))
        early.popen.send_signal(signal.SIGTERM)
        assert early.wait_exit(10) == -signal.SIGTERM  # uvicorn's way: shut down, then re-raise it
        assert "toolmesh listening on" in early.log_text()
    replica = Replica(port, ManagedProcess(argv, name="late", env=env, log_dir=tmp_path).start())
    group.replicas.append(replica)
    try:
        detail = await anyio.to_thread.run_sync(lambda: wait_ready(replica, timeout=30, status="degraded"))
        assert detail["nats"] == "disconnected"
        async with aiohttp.ClientSession() as http:
            client = McpHttp(http)
            await client.initialize(replica.mcp_url)
            assert (await client.request(replica.mcp_url, "tools/call", ECHO)).status == 200
        nats.start()
        await anyio.to_thread.run_sync(lambda: wait_ready(replica, timeout=30, status="ready"))
        assert replica.metric("toolmesh_nats_connected") == 1.0
    finally:
        group.stop()
        nats.stop()
