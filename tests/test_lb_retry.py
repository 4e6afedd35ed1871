"""A call that never reached a live replica does not fail, and a retried call never runs twice.

Everything is real: nats-server with JetStream, three `toolmesh router --nats` replicas, the
sample MCP backend over HTTP, and Envoy with the bootstrap `toolmesh up` runs, which retries a
request whose connection broke before any response (`reset`). The replicas record each tool call
they start under the request's attempt key (session, Envoy's `x-request-id`, JSON-RPC id), so a
retry of a call whose replica died while it ran is answered "interrupted" (-32005) instead of
being run again, and a request no replica saw simply runs.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.to_thread
import nats
import orjson
import pytest

from router.errors import CALL_INTERRUPTED
from tests.support.cluster import LEGACY, Cluster, McpHttp, cluster, envoy
from tests.support.procs import sample_server_http

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ECHO = {"name": "alpha__echo", "arguments": {"text": "hi"}}
KILLS = int(os.environ.get("TOOLMESH_TEST_KILLS") or 6)  # more for a longer run: 21 in the notes


@pytest.fixture
def three(tmp_path: Path) -> Iterator[Cluster]:
    with (
        sample_server_http("alpha", era="legacy", log_dir=tmp_path) as (url, _),
        cluster(tmp_path, {"alpha": {"url": url}}, replicas=3) as group,
    ):
        yield group


def _error_code(messages: list[dict[str, Any]]) -> int | None:
    last = messages[-1] if messages else {}
    error = last.get("error")
    return int(error["code"]) if isinstance(error, dict) else None


async def _post_raw(
    http: aiohttp.ClientSession, url: str, session_id: str, request_id: str, message: dict[str, Any]
) -> dict[str, Any]:
    headers = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-session-id": session_id,
        "mcp-protocol-version": LEGACY,
        "x-request-id": request_id,
    }
    async with http.post(url, data=orjson.dumps(message), headers=headers) as response:
        body = (await response.read()).decode()
    data = [line[5:].strip() for line in body.splitlines() if line.startswith("data:")]
    reply: dict[str, Any] = orjson.loads(data[-1] if data else body)
    return reply


async def test_a_second_attempt_of_a_running_call_is_refused_and_a_new_one_runs(three: Cluster) -> None:
    """The record itself, without a balancer: the same attempt key at a second replica while
    the first still runs the call is answered -32005 at once; after it ended the record is gone,
    and a lookalike with another balancer request id was never refused."""
    first, second = three.replicas[0], three.replicas[1]
    async with aiohttp.ClientSession() as http:
        client = McpHttp(http)
        await client.initialize(first.mcp_url)
        assert client.session_id is not None
        slow = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "alpha__slow", "arguments": {"seconds": 2}},
        }
        results: dict[str, dict[str, Any]] = {}

        async def run_first() -> None:
            results["first"] = await _post_raw(http, first.mcp_url, client.session_id or "", "req-1", slow)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_first)
            await anyio.sleep(0.7)  # the first attempt is running on `first`
            started = time.monotonic()
            again = await _post_raw(http, second.mcp_url, client.session_id, "req-1", slow)
            assert time.monotonic() - started < 1.0, "the retry waited for the call"
            other = await _post_raw(http, second.mcp_url, client.session_id, "req-2", slow)
        assert again["error"]["code"] == CALL_INTERRUPTED, again
        assert again["error"]["data"] == {"tool": "alpha__slow", "interrupted": True}
        assert "result" in results["first"], results
        assert "result" in other, other
        await anyio.sleep(0.5)  # the records' deletes are written in the background
        after = await _post_raw(http, second.mcp_url, client.session_id, "req-1", slow)
        assert "result" in after, after
    # Ended calls leave nothing in the bucket (a key-value delete would leave a marker per call
    # for the bucket's 600 s TTL: here 3, and at 30 calls/s tens of MiB in nats-server).
    await _until_attempts_stream_is_empty(three.nats.url)


async def _until_attempts_stream_is_empty(nats_url: str) -> None:
    connection = await nats.connect(nats_url)
    try:
        stream = connection.jetstream()
        deadline = time.monotonic() + 5
        while (left := (await stream.stream_info("KV_toolmesh_attempts")).state.messages) != 0:
            assert time.monotonic() < deadline, f"{left} entries still in the attempts bucket"
            await anyio.sleep(0.1)
    finally:
        await connection.close()


@dataclass
class Outcome:
    started: float
    ended: float
    code: int | None  # None: a result; else the JSON-RPC error code (0: no JSON-RPC answer)
    what: str


async def test_calls_between_kills_never_fail(tmp_path: Path, three: Cluster) -> None:
    """Replicas are SIGKILLed and restarted one after the other under steady calls from many
    sessions: the only failures are calls that were running on the killed replica, answered
    "interrupted" by the replica the retry reached."""
    with envoy(tmp_path, [replica.port for replica in three.replicas]) as vip:
        async with aiohttp.ClientSession() as http:
            clients = [McpHttp(http) for _ in range(12)]
            for client in clients:
                await client.initialize(vip)
            outcomes: list[Outcome] = []
            stop = anyio.Event()

            async def load(client: McpHttp) -> None:
                while not stop.is_set():
                    started = time.monotonic()
                    reply = await client.request(vip, "tools/call", ECHO)
                    code = _error_code(reply.messages) if reply.status == 200 else 0
                    what = f"{reply.status} {reply.messages[-1] if reply.messages else ''}"
                    outcomes.append(Outcome(started, time.monotonic(), code, what))
                    await anyio.sleep(0.01)

            kills: list[float] = []
            async with anyio.create_task_group() as tg:
                for client in clients:
                    tg.start_soon(load, client)
                for n in range(KILLS):
                    await anyio.sleep(1.0)
                    index = n % len(three.replicas)
                    victim = three.replicas[index]
                    os.kill(victim.process.pid, signal.SIGKILL)
                    kills.append(time.monotonic())
                    await anyio.sleep(0.3)
                    victim.process.stop()
                    restarted = await anyio.to_thread.run_sync(three.start_replica, None, victim.port)
                    three.replicas[index] = restarted
                    three.replicas.pop()  # start_replica appended it as well
                await anyio.sleep(1.0)
                stop.set()
        ok = [o for o in outcomes if o.code is None]
        failed = [o for o in outcomes if o.code is not None]
        assert len(ok) > 50 * KILLS, len(ok)
        # every failure is a call that was running when a replica died: interrupted, not lost
        not_interrupted = [o.what for o in failed if o.code != CALL_INTERRUPTED]
        assert not not_interrupted, not_interrupted[:5]
        not_in_flight = [o for o in failed if not any(o.started <= k <= o.ended for k in kills)]
        assert not not_in_flight, [(o.started, o.ended, o.what) for o in not_in_flight][:5]
        print(f"{KILLS} kills: {len(ok)} calls succeeded, {len(failed)} interrupted in flight")
