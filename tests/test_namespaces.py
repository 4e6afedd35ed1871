"""Namespaces: `/mcp/{name}` and `/v1/namespaces/{name}/tools` serve a cut of the catalog.

Two SDK sample servers (alpha over stdio, beta over HTTP) behind one router whose policy declares
`support` (alpha's echo and add, its greet prompt and its hello resource; only agents of the
groups `support` and `ops`) and `data` (all of beta). `ops` may see everything under the policy;
`helper` (group `support`) may use only alpha's echo, greet and hello; `outsider` has no group.
For every surface, in both eras, a namespace shows and serves exactly its selection — narrowed
further by the agent's policy, never widened — and anything else fails like a name that does not
exist, also when guessed exactly.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from mcp import types

from router.errors import ConfigError
from router.guard.guard import Guard
from router.relay.meta_tools import CALL, META_NAMES, SEARCH
from tests.conftest import RouterHandle, run_router
from tests.guard_support import client_with, make_keys, write_policy
from tests.support.procs import sample_server_http, sample_server_stdio_entry
from tests.support.waits import eventually
from tests.test_guard_access import error_of, names, same_as_nonexistent

pytestmark = pytest.mark.anyio

MODES = ["legacy", "2026-07-28"]
POLICY: dict[str, Any] = {
    "default": "deny",
    "groups": {
        "ops": {"allow": {"servers": ["*"]}},
        "support": {
            "allow": {
                "tools": ["alpha__echo"],
                "prompts": ["alpha__greet"],
                "resources": ["toolmesh://alpha/mem://alpha/hello"],
            }
        },
    },
    "namespaces": {
        "support": {
            "title": "Support desk",
            "instructions": "Answer customers; echo what they say.",
            "servers": ["alpha"],
            "tools": ["alpha__echo", "alpha__add"],
            "prompts": ["alpha__greet"],
            "resources": ["toolmesh://alpha/mem://alpha/hello"],
            "groups": ["support", "ops"],
        },
        "data": {"servers": ["beta"]},
        "lookup": {"servers": ["alpha"], "tools_mode": "search"},
        "desk": {"servers": ["alpha"], "tools_mode": "search", "pinned": ["alpha__add", "beta__*"]},
    },
}
SUPPORT = {
    "tools": {"alpha__echo", "alpha__add"},
    "prompts": {"alpha__greet"},
    "resources": {"toolmesh://alpha/mem://alpha/hello"},
    "templates": set(),
}
MODERN_ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}
JSON_SSE = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RouterHandle, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("namespaces")
    agents = {"ops": ["ops"], "helper": ["support"], "outsider": []}
    keys = make_keys(tmp / "keys.json", agents)
    write_policy(tmp / "policy.json", POLICY)
    env = {
        "TOOLMESH_AUTH_ANONYMOUS": "never",
        "TOOLMESH_AUTH_KEYS_FILE": str(tmp / "keys.json"),
        "TOOLMESH_POLICY_FILE": str(tmp / "policy.json"),
    }
    with sample_server_http("beta", log_dir=tmp) as (beta_url, _):
        servers = {"alpha": sample_server_stdio_entry("alpha"), "beta": {"url": beta_url}}
        with run_router(tmp, servers, env=env) as router:
            yield router, keys


@pytest.mark.parametrize("mode", MODES)
async def test_a_namespace_lists_exactly_its_selection_under_its_own_name(
    routed: tuple[RouterHandle, dict[str, str]], mode: str
) -> None:
    router, keys = routed
    async with client_with(f"{router.mcp_url}/support", keys["ops"], mode) as ops:
        assert await names(ops) == SUPPORT
    async with client_with(f"{router.mcp_url}/data", keys["ops"], mode) as ops:
        seen = await names(ops)
        assert {"beta__echo", "beta__slow"} <= seen["tools"]
        assert all(name.startswith("beta__") for name in seen["tools"] | seen["prompts"])
        assert "toolmesh://beta/mem://beta/item/{id}" in seen["templates"]
        assert all(uri.startswith("toolmesh://beta/") for uri in seen["resources"] | seen["templates"])
    async with client_with(router.mcp_url, keys["ops"], mode) as ops:  # /mcp: the whole catalog
        seen = await names(ops)
        assert {"alpha__echo", "alpha__crash", "beta__echo"} <= seen["tools"]


@pytest.mark.parametrize(("mode", "version"), [("legacy", "2025-11-25"), ("auto", "2026-07-28")])
async def test_a_namespace_introduces_itself_as_its_own_server(
    routed: tuple[RouterHandle, dict[str, str]], mode: str, version: str
) -> None:
    """initialize (legacy) and server/discover (2026-07-28, asked by an `auto` client)."""
    router, keys = routed
    for path, name, instructions in (
        ("/support", "Support desk", "Answer customers; echo what they say."),
        ("/data", "data", "toolmesh routes to these MCP servers: alpha, beta."),
        ("", "toolmesh", "toolmesh routes to these MCP servers: alpha, beta."),
    ):
        async with client_with(router.mcp_url + path, keys["ops"], mode) as ops:
            assert ops.protocol_version == version
            assert ops.server_info is not None and ops.server_info.name == name
            assert ops.instructions == instructions


@pytest.mark.parametrize("mode", MODES)
async def test_a_namespace_has_its_own_discovery_mode(
    routed: tuple[RouterHandle, dict[str, str]], mode: str
) -> None:
    """`lookup` is in search mode: the meta-tools, which search and call only inside it."""
    router, keys = routed
    async with client_with(f"{router.mcp_url}/lookup", keys["ops"], mode) as ops:
        assert {tool.name for tool in (await ops.list_tools()).tools} == set(META_NAMES)
        found = await ops.call_tool(SEARCH, {"query": "echo", "limit": 50})
        assert found.structured_content is not None
        hits = {hit["name"] for hit in found.structured_content["tools"]}
        assert "alpha__echo" in hits and not any(name.startswith("beta__") for name in hits)
        called = await ops.call_tool(CALL, {"name": "alpha__echo", "arguments": {"text": "hi"}})
        assert called.content[0].text == "alpha:hi"  # type: ignore[union-attr]
        _, refused = await error_of(ops.call_tool(CALL, {"name": "beta__echo", "arguments": {"text": "hi"}}))
        assert "Unknown tool: 'beta__echo'" in refused
    async with client_with(f"{router.mcp_url}/support", keys["ops"], mode) as ops:  # its own mode: all
        assert {tool.name for tool in (await ops.list_tools()).tools} == SUPPORT["tools"]
    # `desk` pins a tool of its own (a pin outside the namespace shows nothing); `lookup` pins none
    async with client_with(f"{router.mcp_url}/desk", keys["ops"], mode) as ops:
        assert {tool.name for tool in (await ops.list_tools()).tools} == {*META_NAMES, "alpha__add"}


@pytest.mark.parametrize("mode", MODES)
async def test_a_namespace_never_widens_what_the_policy_shows(
    routed: tuple[RouterHandle, dict[str, str]], mode: str
) -> None:
    router, keys = routed
    async with client_with(f"{router.mcp_url}/support", keys["helper"], mode) as helper:
        assert await names(helper) == {**SUPPORT, "tools": {"alpha__echo"}}
        await same_as_nonexistent(
            lambda name: helper.call_tool(name, {"a": 1, "b": 2}), "alpha__add", "alpha__nonexistent"
        )
        assert (await helper.call_tool("alpha__echo", {"text": "hi"})).content[0].text == "alpha:hi"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
async def test_everything_outside_a_namespace_looks_nonexistent_even_by_exact_name(
    routed: tuple[RouterHandle, dict[str, str]], mode: str
) -> None:
    router, keys = routed
    async with client_with(f"{router.mcp_url}/support", keys["ops"], mode) as ops:
        for hidden in ("beta__echo", "alpha__crash"):  # both usable by ops at /mcp
            await same_as_nonexistent(lambda name: ops.call_tool(name, {"text": "x"}), hidden, "zz__nope")
        _, near_miss = await error_of(ops.call_tool("beta__ech", {"text": "x"}))
        assert "beta__echo" not in near_miss
        assert (await ops.call_tool("alpha__add", {"a": 2, "b": 3})).content[0].text == "5"  # type: ignore[union-attr]
        for uri in ("toolmesh://beta/mem://beta/hello", "toolmesh://alpha/mem://alpha/item/42"):
            await same_as_nonexistent(ops.read_resource, uri, "toolmesh://nosuchserver/mem://x")
        hello = await ops.read_resource("toolmesh://alpha/mem://alpha/hello")
        assert hello.contents[0].text == "hello from alpha"  # type: ignore[union-attr]
        await same_as_nonexistent(
            lambda name: ops.get_prompt(name, {"who": "x"}), "beta__greet", "beta__nope"
        )
        await same_as_nonexistent(
            lambda name: ops.complete(
                {"type": "ref/prompt", "name": name}, argument={"name": "who", "value": "a"}
            ),
            "beta__greet",
            "beta__nope",
        )
        await same_as_nonexistent(
            lambda uri: ops.complete(
                {"type": "ref/resource", "uri": uri}, argument={"name": "id", "value": ""}
            ),
            "toolmesh://beta/mem://beta/item/{id}",
            "toolmesh://nosuchserver/x/{id}",
        )
        done = await ops.complete(
            {"type": "ref/prompt", "name": "alpha__greet"}, argument={"name": "who", "value": "al"}
        )
        assert done.completion.values == ["alice", "albert"]
        await same_as_nonexistent(lambda name: ops.call_tool(name, {}), "alpha__link", "alpha__nope")


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_subscriptions_outside_a_namespace_look_nonexistent(
    routed: tuple[RouterHandle, dict[str, str]],
) -> None:
    router, keys = routed
    async with client_with(f"{router.mcp_url}/support", keys["ops"], "legacy") as ops:
        await same_as_nonexistent(
            ops.subscribe_resource, "toolmesh://beta/mem://beta/hello", "toolmesh://nosuchserver/mem://x"
        )
        await ops.subscribe_resource("toolmesh://alpha/mem://alpha/hello")


async def listen_in(url: str, token: str, uris: list[str]) -> tuple[int, dict[str, Any]]:
    """Open a 2026-07-28 listen stream asking for `uris`; the HTTP status and its first message."""
    body = {
        "jsonrpc": "2.0",
        "id": "listen-ns",
        "method": "subscriptions/listen",
        "params": {"_meta": MODERN_ENVELOPE, "notifications": {"resourceSubscriptions": uris}},
    }
    headers = {**JSON_SSE, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "subscriptions/listen",
               "Authorization": f"Bearer {token}"}  # fmt: skip
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=json.dumps(body), headers=headers) as reply,
    ):
        if reply.content_type != "text/event-stream":
            return reply.status, await reply.json()
        async for line in reply.content:
            if line.startswith(b"data: "):
                return reply.status, json.loads(line[6:])
    raise AssertionError("the listen stream ended before its first message")


async def test_listen_streams_outside_a_namespace_look_nonexistent(
    routed: tuple[RouterHandle, dict[str, str]],
) -> None:
    """The 2026-07-28 side of subscriptions: a listen stream opened on a namespace may ask only for
    what the namespace holds; anything else fails exactly like a URI that does not exist."""
    router, keys = routed
    url = f"{router.mcp_url}/support"
    hidden = await listen_in(url, keys["ops"], ["toolmesh://beta/mem://beta/hello"])
    missing = await listen_in(url, keys["ops"], ["toolmesh://nosuchserver/mem://x"])
    assert "error" in hidden[1] and "error" in missing[1]
    assert hidden[0] == missing[0]
    assert hidden[1]["error"]["code"] == missing[1]["error"]["code"]
    assert hidden[1]["error"]["message"].replace("toolmesh://beta/mem://beta/hello", "URI") == missing[1][
        "error"
    ]["message"].replace("toolmesh://nosuchserver/mem://x", "URI")
    status, ack = await listen_in(url, keys["ops"], ["toolmesh://alpha/mem://alpha/hello"])
    assert status == 200 and ack["method"] == "notifications/subscriptions/acknowledged"
    # The same URI outside the namespace is fine on /mcp: the namespace, not the policy, refused it.
    status, ack = await listen_in(router.mcp_url, keys["ops"], ["toolmesh://beta/mem://beta/hello"])
    assert status == 200 and ack["method"] == "notifications/subscriptions/acknowledged"


async def test_an_unknown_namespace_and_one_closed_to_the_agent_answer_alike(
    routed: tuple[RouterHandle, dict[str, str]],
) -> None:
    router, keys = routed
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with aiohttp.ClientSession() as http:
        replies = []
        for agent, path in (("outsider", "support"), ("outsider", "nosuch"), ("ops", "nosuch")):
            headers = {**JSON_SSE, "Authorization": f"Bearer {keys[agent]}"}
            async with http.post(f"{router.mcp_url}/{path}", json=INIT, headers=headers) as response:
                text = (await response.text()).replace(path, "NAME")
                replies.append((response.status, text))
        assert replies[0] == replies[1] == replies[2]
        assert replies[0][0] == 404 and "no such namespace" in replies[0][1]
        async with http.post(f"{router.mcp_url}/support", json=ping, headers=JSON_SSE) as response:
            assert response.status == 401  # who asks is settled before anything about namespaces


async def test_a_session_belongs_to_the_endpoint_that_opened_it(
    routed: tuple[RouterHandle, dict[str, str]],
) -> None:
    router, keys = routed
    auth = {**JSON_SSE, "Authorization": f"Bearer {keys['ops']}"}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{router.mcp_url}/support", json=INIT, headers=auth) as response:
            assert response.status == 200
            session = response.headers["mcp-session-id"]
        for url, status in (
            (router.mcp_url, 404),
            (f"{router.mcp_url}/data", 404),
            (f"{router.mcp_url}/support", 200),
        ):
            async with http.post(url, json=listing, headers={**auth, "mcp-session-id": session}) as response:
                assert response.status == status, url
                if status == 200:
                    reply = next(
                        json.loads(line[5:])
                        for line in (await response.text()).splitlines()
                        if line.startswith("data:") and '"result"' in line
                    )  # an SSE stream (its first event primes resumption)
                    tools = {tool["name"] for tool in reply["result"]["tools"]}
                    assert tools == SUPPORT["tools"]


async def test_plain_http_tools_of_a_namespace(routed: tuple[RouterHandle, dict[str, str]]) -> None:
    router, keys = routed
    base = f"{router.base_url}/v1/namespaces"
    auth = {"Authorization": f"Bearer {keys['ops']}"}
    async with aiohttp.ClientSession(headers=auth) as http:
        async with http.get(f"{base}/support/tools") as response:
            assert response.status == 200
            assert {tool["name"] for tool in (await response.json())["tools"]} == SUPPORT["tools"]
        async with http.post(f"{base}/support/tools/alpha__echo/call", json={"text": "hi"}) as response:
            assert response.status == 200
            assert (await response.json())["content"][0]["text"] == "alpha:hi"
        for name in ("beta__echo", "nonexistent"):
            async with http.post(f"{base}/support/tools/{name}/call", json={"text": "x"}) as response:
                assert response.status == 404, name
        async with http.post(f"{base}/data/tools/beta__echo/call", json={"text": "x"}) as response:
            assert (await response.json())["content"][0]["text"] == "beta:x"
        async with http.get(f"{base}/nosuch/tools") as response:
            assert response.status == 404
            assert "no such namespace" in (await response.json())["error"]["message"]
        async with http.get(f"{base}/support/other") as response:
            assert response.status == 404


@pytest.mark.parametrize(
    ("namespaces", "field", "fix"),
    [
        ({"support": {"tols": ["a"]}}, "namespaces.support.tols", "did you mean 'tools'?"),
        ({"support": {"tools_mode": "some"}}, "namespaces.support.tools_mode", "'all', 'search' or 'auto'"),
        ({"sup/port": {}}, "document", "a path segment of /mcp/{name}"),
    ],
)
def test_an_invalid_namespace_is_refused_naming_the_field_and_the_fix(
    namespaces: dict[str, Any], field: str, fix: str
) -> None:
    guard = Guard()
    guard.install(json.dumps(POLICY).encode(), "first")
    with pytest.raises(ConfigError) as refused:
        guard.install(json.dumps({**POLICY, "namespaces": namespaces}).encode(), "second")
    assert f"field '{field}'" in str(refused.value) and fix in str(refused.value)
    assert guard.policy is not None and set(guard.policy.namespaces) == set(POLICY["namespaces"])  # kept


class Heard:
    """The notifications one client received, by method."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ServerNotification):
            self.methods.append(message.method)


async def test_each_namespace_hears_list_changed_only_for_its_own_lists(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys.json", {"ops": ["ops"]})
    write_policy(tmp_path / "policy.json", POLICY)
    env = {
        "TOOLMESH_AUTH_ANONYMOUS": "never",
        "TOOLMESH_AUTH_KEYS_FILE": str(tmp_path / "keys.json"),
        "TOOLMESH_POLICY_FILE": str(tmp_path / "policy.json"),
        "TOOLMESH_POLICY_POLL_INTERVAL": "0.1",
    }
    tools_changed = "notifications/tools/list_changed"
    heard = {path: Heard() for path in ("", "/support", "/data")}
    with sample_server_http("beta", log_dir=tmp_path) as (beta_url, _):
        servers = {"alpha": sample_server_stdio_entry("alpha"), "beta": {"url": beta_url}}
        with run_router(tmp_path, servers, env=env) as router:
            async with contextlib.AsyncExitStack() as stack:
                clients = {
                    path: await stack.enter_async_context(
                        client_with(router.mcp_url + path, keys["ops"], "legacy", message_handler=inbox)
                    )
                    for path, inbox in heard.items()
                }
                await anyio.sleep(0.5)  # let the GET streams open
                await clients[""].call_tool("alpha__grow", {})  # a tool support does not select
                await eventually(lambda: tools_changed in heard[""].methods)
                await anyio.sleep(0.5)
                assert heard["/support"].methods == [] and heard["/data"].methods == []

                selected = [*POLICY["namespaces"]["support"]["tools"], "alpha__extra_*"]
                support = {**POLICY["namespaces"]["support"], "tools": selected}
                policy = {**POLICY, "namespaces": {**POLICY["namespaces"], "support": support}}
                await anyio.to_thread.run_sync(write_policy, tmp_path / "policy.json", policy)
                await eventually(lambda: tools_changed in heard["/support"].methods)
                listed = {tool.name for tool in (await clients["/support"].list_tools()).tools}
                assert listed == {*SUPPORT["tools"], "alpha__extra_1"}
                await anyio.sleep(0.5)
                assert heard["/data"].methods == [] and heard[""].methods == [tools_changed]
