"""Streams and calls held by one replica, reached from another: resource updates and list changes
for 2026-07-28 listen streams (and legacy GET streams), a `notifications/cancelled` POSTed to a
replica that does not run the call, and a 2025-11-25 stream resumed with `Last-Event-ID` on a
replica that did not hold it.

Real parts: nats-server, three `toolmesh router --nats` replicas, the sample MCP backend over HTTP
in the handshake era, which tells a resource update or a list change only to the upstream session
whose call caused it, so only one replica hears it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest

from router.up.processes import ManagedProcess
from tests.conformance import run_suite
from tests.support.cluster import Cluster, McpHttp, cluster, drain, listen
from tests.support.procs import sample_server_http, sample_server_stdio_entry

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

HELLO = "toolmesh://alpha/mem://alpha/hello"  # the backend's mem://alpha/hello, as clients see it
OTHER = "toolmesh://alpha/mem://alpha/item/3"
UPDATED = "notifications/resources/updated"
TOOLS_CHANGED = "notifications/tools/list_changed"


@pytest.fixture(scope="module")
def alpha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ManagedProcess]]:
    with sample_server_http("alpha", era="legacy", log_dir=tmp_path_factory.mktemp("alpha")) as found:
        yield found


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory, alpha: tuple[str, ManagedProcess]) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("cluster"), {"alpha": {"url": alpha[0]}}, replicas=3) as group:
        yield group


async def _touch(client: McpHttp, url: str, uri: str = "mem://alpha/hello") -> None:
    """Have the backend announce an update of its `uri`, once it knows the URI is subscribed (the
    router subscribes upstream in the background)."""
    deadline = time.monotonic() + 10
    while True:
        reply = await client.request(
            url, "tools/call", {"name": "alpha__touch", "arguments": {"uri": uri, "standalone": True}}
        )
        text = reply.result["content"][0]["text"]
        if text.startswith("updated"):
            return
        assert time.monotonic() < deadline, text
        await anyio.sleep(0.2)


def _methods(frames: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(f["method"], (f.get("params") or {}).get("uri")) for f in frames if "method" in f]


async def test_an_update_one_replica_hears_reaches_streams_on_the_others_once(three: Cluster) -> None:
    r0, r1, r2 = three.replicas
    async with aiohttp.ClientSession() as http:
        caller, subscriber = McpHttp(http), McpHttp(http)
        await caller.initialize(r0.mcp_url)
        await subscriber.initialize(r0.mcp_url)
        assert (await subscriber.request(r0.mcp_url, "resources/subscribe", {"uri": HELLO})).status == 200
        async with (
            listen(http, r0.mcp_url, {"resourceSubscriptions": [HELLO]}, "on-r0") as l0,
            listen(
                http, r1.mcp_url, {"resourceSubscriptions": [OTHER], "toolsListChanged": True}, "on-r1"
            ) as l1,
            listen(
                http, r2.mcp_url, {"resourceSubscriptions": [HELLO], "toolsListChanged": True}, "on-r2"
            ) as l2,
            subscriber.stream(r1.mcp_url) as legacy_on_r1,
        ):
            for stream in (l0, l1, l2):
                with anyio.fail_after(5):
                    ack = await stream.receive()
                assert ack["method"] == "notifications/subscriptions/acknowledged"
            # through r0 (only r0's upstream session hears it), then r2, then a list change via r1
            await _touch(caller, r0.mcp_url)
            await anyio.sleep(1.0)  # more than the window in which copies of one update are matched
            await _touch(caller, r2.mcp_url)
            grown = await caller.request(
                r1.mcp_url, "tools/call", {"name": "alpha__grow", "arguments": {"standalone": True}}
            )
            assert grown.status == 200
            unwanted = {"name": "alpha__touch", "arguments": {"uri": "mem://alpha/blob", "standalone": True}}
            assert (await caller.request(r1.mcp_url, "tools/call", unwanted)).status == 200
            got = [await drain(stream, 3.0) for stream in (l0, l1, l2, legacy_on_r1)]
    on_r0, on_r1, on_r2, legacy = (_methods(frames) for frames in got)
    assert on_r0 == [(UPDATED, HELLO), (UPDATED, HELLO)]
    assert on_r1 == [(TOOLS_CHANGED, None)]  # OTHER was never updated: only the list change
    assert on_r2 == [(UPDATED, HELLO), (UPDATED, HELLO), (TOOLS_CHANGED, None)]
    assert legacy.count((UPDATED, HELLO)) == 2 and legacy.count((TOOLS_CHANGED, None)) == 1, legacy
    for frames, listen_id in zip(got[:3], ("on-r0", "on-r1", "on-r2"), strict=True):
        assert {f["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] for f in frames} == {listen_id}


@pytest.fixture
def modern(tmp_path: Path) -> Iterator[Cluster]:
    """The sample backend in the 2026-07-28 era: it tells an update to every upstream listen
    stream that named the resource, so every replica with a listener for it hears it."""
    with (
        sample_server_http("alpha", era="modern", log_dir=tmp_path) as (url, _),
        cluster(tmp_path, {"alpha": {"url": url}}) as group,
    ):
        yield group


async def test_an_update_several_replicas_hear_reaches_each_stream_once(modern: Cluster) -> None:
    r0, r1, r2 = modern.replicas
    touch = {"name": "alpha__touch", "arguments": {"uri": "mem://alpha/hello"}}
    async with aiohttp.ClientSession() as http:
        caller = McpHttp(http)
        await caller.initialize(r1.mcp_url)
        async with (
            listen(http, r0.mcp_url, {"resourceSubscriptions": [HELLO]}, "on-r0") as l0,
            listen(http, r2.mcp_url, {"resourceSubscriptions": [HELLO]}, "on-r2") as l2,
        ):
            for stream in (l0, l2):
                with anyio.fail_after(5):
                    assert (await stream.receive())["method"] == "notifications/subscriptions/acknowledged"
            await anyio.sleep(1.5)  # r0 and r2 reopen their upstream listen streams with HELLO
            assert (await caller.request(r1.mcp_url, "tools/call", touch)).status == 200
            await anyio.sleep(1.0)  # more than the window in which copies are matched
            assert (await caller.request(r1.mcp_url, "tools/call", touch)).status == 200
            got = [_methods(await drain(stream, 3.0)) for stream in (l0, l2)]
    assert got == [[(UPDATED, HELLO)] * 2] * 2
    # copies really were matched: an update both replicas heard gives one match on each (all four
    # when both upstream listen streams named HELLO in time, which they do but on a slow machine)
    matched = [replica.process.log_text().count("resource update copy matched") for replica in (r0, r2)]
    assert sum(matched) >= 2 and matched[0] == matched[1], matched


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Cluster]:
    """The sample backend as a stdio child of each replica (handshake era): a call through one
    replica changes only its own child, which tells only if it was asked to (resources/subscribe)."""
    with cluster(tmp_path, {"alpha": sample_server_stdio_entry("alpha", era="legacy")}) as group:
        yield group


async def test_a_replica_without_listeners_subscribes_for_the_others(children: Cluster) -> None:
    r0, _, r2 = children.replicas
    async with aiohttp.ClientSession() as http:
        caller = McpHttp(http)
        await caller.initialize(r0.mcp_url)
        async with listen(http, r2.mcp_url, {"resourceSubscriptions": [HELLO]}, "on-r2") as l2:
            with anyio.fail_after(5):
                assert (await l2.receive())["method"] == "notifications/subscriptions/acknowledged"
            # r0 has no listener: it subscribes its child because r2's listener wants HELLO
            await _touch(caller, r0.mcp_url)
            got = _methods(await drain(l2, 3.0))
    assert got == [(UPDATED, HELLO)]


async def test_a_cancel_posted_to_another_replica_ends_the_call_there(
    three: Cluster, alpha: tuple[str, ManagedProcess]
) -> None:
    r0, r1, _ = three.replicas
    backend = alpha[1]
    cancelled_before = backend.log_text().count("alpha: slow call cancelled")
    async with aiohttp.ClientSession() as http:
        client = McpHttp(http)
        await client.initialize(r0.mcp_url)
        ended: dict[str, Any] = {}

        async def slow_call() -> None:
            started = time.monotonic()
            call = {"name": "alpha__slow", "arguments": {"seconds": 60}}
            reply = await client.post(
                r0.mcp_url, {"jsonrpc": "2.0", "id": "slow-1", "method": "tools/call", "params": call}
            )
            ended.update(reply=reply, at=time.monotonic(), took=time.monotonic() - started)

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow_call)
            await anyio.sleep(1.5)  # the call is running on r0 (and at the backend)
            assert not ended
            cancel = {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": "slow-1"},
            }
            cancelled_at = time.monotonic()
            assert (await client.post(r1.mcp_url, cancel)).status == 202
            with anyio.fail_after(15):
                while not ended:
                    await anyio.sleep(0.05)
        assert ended["at"] - cancelled_at < 5.0, ended
        assert ended["reply"].messages[-1]["error"]["code"] == -32800
        # the backend's call was cancelled too: nothing is left running
        deadline = time.monotonic() + 15
        while backend.log_text().count("alpha: slow call cancelled") == cancelled_before:
            assert time.monotonic() < deadline, "the backend's call was not cancelled"
            await anyio.sleep(0.1)
        # and the session goes on, from any replica
        echo = await client.request(
            r1.mcp_url, "tools/call", {"name": "alpha__echo", "arguments": {"text": "x"}}
        )
        assert echo.result["content"][0]["text"] == "alpha:x"


# -- Last-Event-ID on another replica -------------------------------------------------------------


@pytest.fixture
def polling(tmp_path: Path) -> Iterator[Cluster]:
    """The conformance backend, spoken to in the handshake era: its `test_reconnection` closes the
    call's stream early (SSE polling), so the response waits in the calling replica's event store."""
    with (
        run_suite.running_backend(tmp_path) as url,
        cluster(tmp_path, {"conf": {"url": url}}, env={"TOOLMESH_UPSTREAM_PROTOCOL": "legacy"}) as group,
    ):
        yield group


def _events(body: str) -> list[tuple[str | None, str]]:
    """(id, data) of each SSE event."""
    out: list[tuple[str | None, str]] = []
    for block in body.split("\n\n"):
        lines = block.splitlines()
        ids = [line[3:].strip() for line in lines if line.startswith("id:")]
        data = "\n".join(line[5:].lstrip() for line in lines if line.startswith("data:"))
        if ids or data:
            out.append((ids[0] if ids else None, data))
    return out


async def _polled_call(http: aiohttp.ClientSession, client: McpHttp, url: str) -> str:
    """Start `test_reconnection` at `url`; the stream closes early: return the last event id."""
    call = {"jsonrpc": "2.0", "id": 41, "method": "tools/call",
            "params": {"name": "conf__test_reconnection", "arguments": {}}}  # fmt: skip
    async with http.post(url, data=orjson.dumps(call), headers=client.headers()) as response:
        assert response.status == 200
        events = _events(await response.text())
    assert events and all(data == "" for _, data in events), events  # closed before the response
    last = events[-1][0]
    assert last is not None
    return last


async def _resume(http: aiohttp.ClientSession, client: McpHttp, url: str, last: str) -> tuple[int, str]:
    headers = {k: v for k, v in client.headers().items() if k != "content-type"}
    headers |= {"accept": "text/event-stream", "last-event-id": last}
    async with http.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as response:
        return response.status, await response.text()


async def test_a_stream_resumes_on_a_replica_that_did_not_hold_it(polling: Cluster) -> None:
    r0, r1, _ = polling.replicas
    async with aiohttp.ClientSession() as http:
        client = McpHttp(http)
        await client.initialize(r0.mcp_url)
        last = await _polled_call(http, client, r0.mcp_url)
        status, body = await _resume(http, client, r1.mcp_url, last)
        assert status == 200, body
        events = _events(body)
        replies = [orjson.loads(data) for _, data in events if data]
        assert replies[-1]["id"] == 41
        assert replies[-1]["result"]["content"][0]["text"] == "Reconnection test completed"
        # the ids are the keeper's: a resumption from any of them goes back to r0's log
        keeper = last.split(".")[0]
        assert all(event_id and event_id.split(".")[0] == keeper for event_id, _ in events), events
        # an id r1 itself does not know is refused as expired, not as a lost session (404)
        status, body = await _resume(http, client, r1.mcp_url, "nosuch.0")
        assert status == 410 and "Last-Event-ID" in body, body
        assert (await client.request(r1.mcp_url, "ping")).status == 200


async def test_a_resumption_after_the_keeper_died_is_told_so(polling: Cluster) -> None:
    r0, r1, _ = polling.replicas
    async with aiohttp.ClientSession() as http:
        client = McpHttp(http)
        await client.initialize(r1.mcp_url)
        last = await _polled_call(http, client, r0.mcp_url)
        os.kill(r0.process.pid, signal.SIGKILL)
        r0.process.wait_exit()
        with anyio.fail_after(10):  # promptly, not a stream that never ends
            status, body = await _resume(http, client, r1.mcp_url, last)
        assert status == 410, body
        error = orjson.loads(body)["error"]
        assert "gone" in error["message"] and "send it again" in error["message"], error
        # the session itself lives on
        assert (await client.request(r1.mcp_url, "ping")).status == 200
