"""Resource subscriptions and list_changed through the router, for both eras of client.

Legacy clients subscribe with resources/subscribe and hear notifications/resources/updated on
their GET stream; 2026-07-28 clients open a subscriptions/listen stream. Either way only the
clients that asked hear an update, and a backend's list change reaches every listener, whichever
client's call caused it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from mcp import Client, types

from tests.conftest import run_router
from tests.guard_support import client_with, make_keys, write_policy
from tests.support.cluster import CLUSTER_KEY, nats_server
from tests.support.procs import sample_server_http, sample_server_stdio_entry
from tests.support.waits import eventually

pytestmark = pytest.mark.anyio

HELLO = "mem://s/hello"
MODERN = "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
}


class Inbox:
    def __init__(self) -> None:
        self.updates: list[str] = []

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.updates.append(str(message.params.uri))


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_a_legacy_subscriber_hears_updates_and_others_do_not(tmp_path: Path, era: str) -> None:
    with (
        sample_server_http("s", era=era, log_dir=tmp_path) as (url, _),  # type: ignore[arg-type]
        run_router(tmp_path, {"s": {"url": url}}, "--prefix", "never") as router,
    ):
        watcher, bystander = Inbox(), Inbox()
        async with (
            Client(router.mcp_url, mode="legacy", message_handler=watcher) as subscribed,
            Client(router.mcp_url, mode="legacy", message_handler=bystander) as other,
        ):
            await subscribed.subscribe_resource(HELLO)
            # the other client's call causes the update: it still goes to the subscriber only
            await touch_once_subscribed(other, HELLO)
            await eventually(lambda: watcher.updates)
            assert watcher.updates == [HELLO]
            await subscribed.unsubscribe_resource(HELLO)
            await anyio.sleep(0.5)
            await other.call_tool("touch", {"uri": HELLO})
            await anyio.sleep(1.0)
            assert watcher.updates == [HELLO]
            assert bystander.updates == []


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
async def test_a_stdio_backend_is_subscribed_upstream(tmp_path: Path) -> None:
    """A stdio child has no GET stream to hold, yet its subscriptions are kept like any other's."""
    entry = sample_server_stdio_entry("s", era="legacy")
    with run_router(tmp_path, {"s": entry}, "--prefix", "never") as router:
        watcher = Inbox()
        async with (
            Client(router.mcp_url, mode="legacy", message_handler=watcher) as subscribed,
            Client(router.mcp_url, mode="legacy") as other,
        ):
            await subscribed.subscribe_resource(HELLO)
            await touch_once_subscribed(other, HELLO, standalone=True)
            await eventually(lambda: watcher.updates)
            assert watcher.updates == [HELLO]


async def touch_once_subscribed(client: Client, uri: str, **args: Any) -> None:
    """Touch `uri` on a legacy backend once the router has subscribed to it upstream, which it
    does in the background: the backend answers "not subscribed" until then (and sends nothing)."""
    with anyio.fail_after(15):
        while True:
            touched = await client.call_tool("touch", {"uri": uri, **args})
            if "updated" in touched.content[0].text:  # type: ignore[union-attr]
                return
            await anyio.sleep(0.1)


async def listen_frames(
    http: aiohttp.ClientSession, url: str, notifications: dict[str, Any], token: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    body = {
        "jsonrpc": "2.0",
        "id": "listen-1",
        "method": "subscriptions/listen",
        "params": {"_meta": ENVELOPE, "notifications": notifications},
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "subscriptions/listen",
        **({"Authorization": f"Bearer {token}"} if token else {}),
    }
    async with http.post(url, data=json.dumps(body), headers=headers) as response:
        assert response.status == 200 and response.content_type == "text/event-stream"
        async for line in response.content:
            if line.startswith(b"data: "):
                yield json.loads(line[6:])


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_a_listen_stream_gets_what_it_asked_for_tagged(tmp_path: Path, era: str) -> None:
    with (
        sample_server_http("s", era=era, log_dir=tmp_path) as (url, _),  # type: ignore[arg-type]
        run_router(tmp_path, {"s": {"url": url}}, "--prefix", "never") as router,
    ):
        frames: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as http, anyio.create_task_group() as tg:

            async def listen() -> None:
                async for frame in listen_frames(
                    http, router.mcp_url, {"resourceSubscriptions": [HELLO], "toolsListChanged": True}
                ):
                    frames.append(frame)

            tg.start_soon(listen)
            await eventually(lambda: frames)
            await anyio.sleep(0.5)  # the router subscribes upstream in the background
            async with Client(router.mcp_url, mode=MODERN) as client:
                await client.call_tool("touch", {"uri": HELLO, "standalone": True})
                await eventually(
                    lambda: any(f.get("method") == "notifications/resources/updated" for f in frames)
                )
                await client.call_tool("grow", {"standalone": True})
                await eventually(
                    lambda: any(f.get("method") == "notifications/tools/list_changed" for f in frames)
                )
                await client.call_tool("touch", {"uri": "mem://s/other", "standalone": True})
            tg.cancel_scope.cancel()
        ack = frames[0]
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        assert ack["params"]["notifications"] == {"resourceSubscriptions": [HELLO], "toolsListChanged": True}
        for frame in frames:
            assert frame["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "listen-1"
        updates = [f["params"]["uri"] for f in frames if f["method"] == "notifications/resources/updated"]
        assert updates == [HELLO]  # never mem://s/other, which this stream did not ask for


BLOB = "mem://s/blob"


def readers_may_read(*uris: str) -> dict[str, Any]:
    """Writers may use everything on `s`; readers may only read (and subscribe to) `uris`."""
    return {
        "default": "deny",
        "groups": {"writers": {"allow": {"servers": ["s"]}}, "readers": {"allow": {"resources": list(uris)}}},
    }


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
@pytest.mark.parametrize("shared", [False, True], ids=["alone", "nats"])
@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_an_agent_that_loses_read_access_stops_hearing_updates(
    tmp_path: Path, era: str, shared: bool
) -> None:
    """Subscribed (legacy) or listening (2026-07-28) to two resources, a reader whose policy then
    drops one of them hears no more updates of it, and still hears the other's. With NATS the
    update takes the shared path (published for the other replicas, delivered here once)."""
    keys = make_keys(tmp_path / "keys.json", {"reader": ["readers"], "writer": ["writers"]})
    policy = tmp_path / "policy.json"
    write_policy(policy, readers_may_read(HELLO, BLOB))
    env = {
        "TOOLMESH_POLICY_FILE": str(policy),
        "TOOLMESH_POLICY_POLL_INTERVAL": "0.2",
        "TOOLMESH_AUTH_KEYS_FILE": str(tmp_path / "keys.json"),
        "TOOLMESH_AUTH_ANONYMOUS": "never",
    }
    mode = "legacy" if era == "legacy" else MODERN
    touch_args = {} if era == "legacy" else {"standalone": True}
    with contextlib.ExitStack() as stack:
        url, _ = stack.enter_context(sample_server_http("s", era=era, log_dir=tmp_path))  # type: ignore[arg-type]
        if shared:
            env["TOOLMESH_CLUSTER_KEY"] = CLUSTER_KEY
        nats = ["--nats", stack.enter_context(nats_server(tmp_path)).url] if shared else []
        router = stack.enter_context(
            run_router(tmp_path, {"s": {"url": url}}, "--prefix", "never", *nats, env=env)
        )
        updates: list[str] = []
        inbox = Inbox()
        async with (
            client_with(router.mcp_url, keys["reader"], "legacy", message_handler=inbox) as reader,
            client_with(router.mcp_url, keys["writer"], mode) as writer,
            aiohttp.ClientSession() as http,
            anyio.create_task_group() as tg,
        ):
            if era == "legacy":
                await reader.subscribe_resource(HELLO)
                await reader.subscribe_resource(BLOB)
                updates = inbox.updates
            else:
                frames: list[dict[str, Any]] = []

                async def listen() -> None:
                    wanted = {"resourceSubscriptions": [HELLO, BLOB]}
                    async for frame in listen_frames(http, router.mcp_url, wanted, keys["reader"]):
                        frames.append(frame)
                        if frame["method"] == "notifications/resources/updated":
                            updates.append(frame["params"]["uri"])

                tg.start_soon(listen)
                await eventually(lambda: frames)
            if era == "legacy":
                await touch_once_subscribed(writer, HELLO)
            else:  # a 2026-07-28 backend always publishes; the router's listen stream may lag
                await anyio.sleep(0.5)
                await writer.call_tool("touch", {"uri": HELLO, **touch_args})
            await eventually(lambda: updates == [HELLO])

            await anyio.to_thread.run_sync(write_policy, policy, readers_may_read(BLOB))

            async def readable() -> set[str]:
                return {str(r.uri) for r in (await reader.list_resources()).resources}

            with anyio.fail_after(15):
                while HELLO in await readable():
                    await anyio.sleep(0.2)
            await writer.call_tool("touch", {"uri": HELLO, **touch_args})
            if era == "legacy":
                # The router subscribes upstream in the background, each resource on its own: BLOB's
                # subscription may not be in place yet (the backend would answer "not subscribed"
                # and send nothing), so touch it once it is, as HELLO above.
                await touch_once_subscribed(writer, BLOB)
            else:
                await writer.call_tool("touch", {"uri": BLOB, **touch_args})
            await eventually(lambda: BLOB in updates)
            # Updates arrive in the order they were sent: an update of HELLO that got through
            # would stand before BLOB's.
            assert updates == [HELLO, BLOB]
            tg.cancel_scope.cancel()
