"""Streams and calls held by one replica, reached from another: resource updates and list changes
for 2026-07-28 listen streams (and legacy GET streams), a `notifications/cancelled` POSTed to a
replica that does not run the call, and a 2025-11-25 stream resumed with `Last-Event-ID` on a
replica that did not hold it.

Real parts: nats-server, three `toolmesh router --nats` replicas, the sample MCP backend over HTTP
in the handshake era, which tells a resource update or a list change only to the upstream session
whose call caused it, so only one replica hears it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import anyio
import pytest

from tests.support.cluster import Cluster, McpHttp, cluster, listen
from tests.support.procs import ManagedProcess, sample_server_http

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


async def _drain(stream: Any, seconds: float) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    with anyio.move_on_after(seconds):
        async for message in stream:
            got.append(message)
    return got


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
            got = [await _drain(stream, 3.0) for stream in (l0, l1, l2, legacy_on_r1)]
    on_r0, on_r1, on_r2, legacy = (_methods(frames) for frames in got)
    assert on_r0 == [(UPDATED, HELLO), (UPDATED, HELLO)]
    assert on_r1 == [(TOOLS_CHANGED, None)]  # OTHER was never updated: only the list change
    assert on_r2 == [(UPDATED, HELLO), (UPDATED, HELLO), (TOOLS_CHANGED, None)]
    assert legacy.count((UPDATED, HELLO)) == 2 and legacy.count((TOOLS_CHANGED, None)) == 1, legacy
    for frames, listen_id in zip(got[:3], ("on-r0", "on-r1", "on-r2"), strict=True):
        assert {f["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] for f in frames} == {listen_id}


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
