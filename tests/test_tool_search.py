"""Tool search through the router (docs/tool-search.md): modes and their precedence, the search-mode
list and its pins, search_tools / describe_tools / call_tool with the SDK client in both eras under
a policy that hides half the catalog, `GET /v1/tools/search`, and list_changed in search mode.

The backends replay five real servers' frozen tool lists (tests/servers/replay.py over
bench/toolsearch/evalset/). Agent `half` may see github, filesystem and slack (48 tools); kubernetes
and notion (47 tools) are hidden from it. The no-leak checks compare every
search's names and scores with a ranker that never saw the hidden servers.
"""

from __future__ import annotations

import hashlib
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ToolsListChanged

from router.catalog.search import SearchIndex
from tests.conftest import RouterHandle, run_router
from tests.guard_support import client_with, guarded_env
from tests.support.procs import REPO_ROOT
from tests.test_guard_access import same_as_nonexistent
from tests.test_router_changes import Notifications

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]
EVALSET = REPO_ROOT / "bench" / "toolsearch" / "evalset"
VISIBLE = ("filesystem", "github", "slack")  # of the catalog, for `half` (time joins later)
HIDDEN = ("kubernetes", "notion")
META = {"search_tools", "describe_tools", "call_tool"}
POLICY = {
    "default": "deny",
    "groups": {
        "half": {"allow": {"servers": ["github", "filesystem", "slack", "time", "memory"]}},
        "searchers": {
            "allow": {"servers": ["*"]},
            "tools_mode": "search",
            "pinned": ["github__create_issue"],
        },
        "small": {"allow": {"servers": ["slack"]}},
    },
    "agents": {"listing": {"groups": ["searchers"], "tools_mode": "all"}},
}


def replay(server: str, *always_load: str) -> dict[str, Any]:
    args = ["-m", "tests.servers.replay", str(EVALSET / f"{server}.json")]
    for tool in always_load:
        args += ["--always-load", tool]
    return {"command": sys.executable, "args": args, "cwd": str(REPO_ROOT)}


CATALOG = {
    "github": replay("github"),
    "filesystem": replay("filesystem", "read_text_file"),
    "slack": replay("slack"),
    "kubernetes": replay("kubernetes"),
    "notion": replay("notion"),
}


def frozen(server: str) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = json.loads((EVALSET / f"{server}.json").read_text())["tools"]
    return tools


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RouterHandle, dict[str, str], Path]]:
    tmp = tmp_path_factory.mktemp("search")
    agents = {"half": ["half"], "searcher": ["searchers"], "listing": [], "small": ["small"]}
    keys, env = guarded_env(tmp, agents, POLICY)
    env["TOOLMESH_TOOLS_PINNED"] = "slack__slack_post_message"
    with run_router(tmp, CATALOG, env=env) as router:
        yield router, keys, tmp


def url(router: RouterHandle, mode: str | None) -> str:
    return router.mcp_url + (f"?tools={mode}" if mode else "")


async def listed(router: RouterHandle, key: str, era: str, mode: str | None = None) -> list[str]:
    async with client_with(url(router, mode), key, era) as client:
        return [tool.name for tool in (await client.list_tools()).tools]


def expected_search(query: str, limit: int, servers: tuple[str, ...] = VISIBLE) -> list[tuple[str, float]]:
    """What a ranker that only ever saw `servers` answers: names and scores as search_tools gives them."""
    ranker = SearchIndex()
    for server in servers:
        ranker.put_server(server, None, frozen(server))
    return [(f"{h.key[0]}__{h.key[1]}", round(h.score, 4)) for h in ranker.search(query, limit)]


async def search(client: Client, query: str, limit: int = 5) -> list[dict[str, Any]]:
    result = await client.call_tool("search_tools", {"query": query, "limit": limit})
    assert not result.is_error
    assert result.structured_content is not None
    rows: list[dict[str, Any]] = result.structured_content["tools"]
    return rows


@pytest.mark.parametrize("era", ERAS)
async def test_modes_follow_url_then_agent_then_group_then_setting(
    searched: tuple[RouterHandle, dict[str, str], Path], era: str
) -> None:
    router, keys, _ = searched
    everything = {f"{s}__{t['name']}" for s in VISIBLE for t in frozen(s)}
    search_list = META | {"slack__slack_post_message", "filesystem__read_text_file"}
    # the setting (all), overridden by the URL
    assert set(await listed(router, keys["half"], era)) == everything
    half_search = await listed(router, keys["half"], era, "search")
    assert half_search[:3] == ["search_tools", "describe_tools", "call_tool"]
    assert set(half_search) == search_list
    # auto: 48 tools pass the threshold of 40; slack's 8 do not
    assert set(await listed(router, keys["half"], era, "auto")) == search_list
    assert set(await listed(router, keys["small"], era, "auto")) == {
        f"slack__{t['name']}" for t in frozen("slack")
    }
    # the group says search (and pins one more); the URL still wins; the agent's own entry wins over its group
    assert set(await listed(router, keys["searcher"], era)) == search_list | {"github__create_issue"}
    assert len(await listed(router, keys["searcher"], era, "all")) == 95
    assert len(await listed(router, keys["listing"], era)) == 95
    assert set(await listed(router, keys["listing"], era, "search")) == search_list | {"github__create_issue"}
    # in `all` mode the meta-tools are not there to call
    async with client_with(url(router, None), keys["half"], era) as client:
        with pytest.raises(MCPError, match="Unknown tool"):
            await client.call_tool("search_tools", {"query": "issue"})


def test_an_unknown_mode_on_the_url_is_refused(searched: tuple[RouterHandle, dict[str, str], Path]) -> None:
    router, keys, _ = searched
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
    request = urllib.request.Request(
        url(router, "everything"),
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {keys['half']}", "Content-Type": "application/json",
                 "Accept": "application/json, text/event-stream"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    assert "tools='everything' is not a tools mode" in caught.value.read().decode()


@pytest.mark.parametrize("era", ERAS)
async def test_search_describe_and_call_see_only_the_agents_view(
    searched: tuple[RouterHandle, dict[str, str], Path], era: str
) -> None:
    router, keys, tmp = searched
    async with client_with(url(router, "search"), keys["half"], era) as client:
        # a task, not a name: the agent finds the tool, then calls it through call_tool
        rows = await search(client, "open a new ticket in the repository about the failing build")
        assert rows[0]["name"] == "github__create_issue"
        assert rows[0]["server"] == "github" and rows[0]["tool"] == "create_issue"
        assert "inputSchema" in rows[0] and "inputSchema" in rows[2] and "inputSchema" not in rows[3]
        called = await client.call_tool(
            "call_tool",
            {"name": "github__create_issue", "arguments": {"owner": "o", "repo": "r", "title": "CI is red"}},
        )
        assert not called.is_error
        assert (
            called.content[0].text == 'github:create_issue {"owner": "o", "repo": "r", "title": "CI is red"}'
        )  # type: ignore[union-attr]

        # nothing hidden comes back, and the hidden tools change no score and no count
        for query in ("list the pods in the default namespace", "tail the logs of a deployment",
                      "query a database of pages", "add a comment to the page", "read a file",
                      "post a message to the team channel", "search"):  # fmt: skip
            rows = await search(client, query, 50)
            assert [(r["name"], r["score"]) for r in rows] == expected_search(query, 50), query
            assert not {r["server"] for r in rows} & set(HIDDEN)
        text = (await client.call_tool("search_tools", {"query": "scale the deployment replicas"})).content
        assert "kubernetes" not in text[0].text and "kubectl" not in text[0].text  # type: ignore[union-attr]

        described = await client.call_tool("describe_tools", {"names": ["github__create_issue"]})
        definition = described.structured_content["tools"][0]  # type: ignore[index]
        assert definition == {**next(t for t in frozen("github") if t["name"] == "create_issue"),
                              "name": "github__create_issue"}  # fmt: skip
        # a name asked for again is described once; more names than a search returns are refused
        repeated = await client.call_tool("describe_tools", {"names": ["github__create_issue"] * 3})
        assert repeated.structured_content == {"tools": [definition]}
        with pytest.raises(MCPError) as refused:
            await client.call_tool("describe_tools", {"names": ["github__create_issue"] * 100_000})
        assert refused.value.error.code == -32602 and "at most 50" in refused.value.error.message

        # describe and call of a hidden tool fail exactly as for a tool that does not exist
        for meta, arguments in (("describe_tools", lambda n: {"names": [n]}),
                                ("call_tool", lambda n: {"name": n, "arguments": {}})):  # fmt: skip
            code, message = await same_as_nonexistent(
                lambda name, m=meta, a=arguments: client.call_tool(m, a(name)),  # type: ignore[misc]
                "kubernetes__kubectl_get",
                "kubernetes__kubectl_nothing",
            )
            assert code == -32602 and "Unknown tool" in message
        assert all(r["server"] in VISIBLE for r in await search(client, "kubectl get pods"))
        restricted = await client.call_tool("search_tools", {"query": "list pods", "server": "kubernetes"})
        assert restricted.structured_content == {"tools": []}

    # the audit names the real tool that call_tool reached, with the arguments that tool got
    with anyio.fail_after(10):
        while '"target": "github__create_issue"' not in (tmp / "audit.jsonl").read_text().replace(
            '":"', '": "'
        ):
            await anyio.sleep(0.1)
    records = [json.loads(line) for line in (tmp / "audit.jsonl").read_text().splitlines()]
    reached = [r for r in records if r.get("target") == "github__create_issue"]
    inner = json.dumps(
        {"owner": "o", "repo": "r", "title": "CI is red"}, sort_keys=True, separators=(",", ":")
    )
    assert reached and {r["arguments_sha256"] for r in reached} == {
        hashlib.sha256(inner.encode()).hexdigest()
    }


def http_search(router: RouterHandle, key: str, **query: Any) -> tuple[int, Any]:
    """GET /v1/tools/search as `key`'s agent: (status, decoded JSON body)."""
    address = f"{router.base_url}/v1/tools/search?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(address, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_http_search_returns_what_search_tools_does(
    searched: tuple[RouterHandle, dict[str, str], Path],
) -> None:
    router, keys, _ = searched
    query = "which files did the pull request change"
    async with client_with(url(router, "search"), keys["half"], "legacy") as client:
        rows = await search(client, query, 7)
    assert rows[0]["name"] == "github__get_pull_request_files"
    assert await anyio.to_thread.run_sync(lambda: http_search(router, keys["half"], q=query, limit=7)) == (
        200,
        {"tools": rows},
    )
    # kubernetes' tools would answer this; the agent may not see them, so nothing does
    status, body = await anyio.to_thread.run_sync(
        lambda: http_search(router, keys["half"], q="pods", limit=50)
    )
    assert (status, body) == (200, {"tools": []})
    status, body = await anyio.to_thread.run_sync(
        lambda: http_search(router, keys["half"], q="create something new", limit=50)
    )
    assert status == 200 and len(body["tools"]) > 10
    assert all(row["server"] in VISIBLE for row in body["tools"])
    status, body = await anyio.to_thread.run_sync(
        lambda: http_search(router, keys["half"], q="pods", limit=0)
    )
    assert status == 400 and "limit" in body["error"]["message"]
    # a query far longer than a task (ranking cost grows with its words) is refused, saying why
    pasted = (query + " ") * 30
    status, body = await anyio.to_thread.run_sync(lambda: http_search(router, keys["half"], q=pasted))
    assert status == 400 and f"`query` is {len(pasted)} characters, over the 1000" in body["error"]["message"]
    async with client_with(url(router, "search"), keys["half"], "legacy") as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("search_tools", {"query": pasted})
        assert refused.value.code == -32602 and "over the 1000" in str(refused.value)
        assert await search(client, pasted[:1000])  # at the bound: searched


async def test_search_mode_list_is_stable_and_list_changed_only_when_it_changes(tmp_path: Path) -> None:
    keys, env = guarded_env(tmp_path, {"half": ["half"]}, POLICY)
    catalog = {name: CATALOG[name] for name in ("github", "filesystem", "slack")}
    with run_router(tmp_path, catalog, env=env) as router:
        flat_seen, search_seen = Notifications(), Notifications()
        async with (
            client_with(url(router, None), keys["half"], "legacy", message_handler=flat_seen) as flat,
            client_with(
                url(router, "search"), keys["half"], "legacy", message_handler=search_seen
            ) as searching,
        ):
            before = [t.model_dump() for t in (await searching.list_tools()).tools]
            await anyio.sleep(0.5)  # let both GET streams open
            # a new server the agent may see: the flat list changes, the search-mode list does not
            router.write_catalog({**catalog, "time": replay("time")})
            await flat_seen.wait_for("notifications/tools/list_changed", 20)
            assert "time__get_current_time" in {t.name for t in (await flat.list_tools()).tools}
            rows = await search(searching, "what is the current time")
            assert rows[0]["name"] == "time__get_current_time"  # the index followed the catalog
            await anyio.sleep(1.0)
            assert "notifications/tools/list_changed" not in search_seen.methods
            assert [t.model_dump() for t in (await searching.list_tools()).tools] == before
            # a server whose tool asks to be always loaded changes the search-mode list: it hears
            router.write_catalog(
                {**catalog, "time": replay("time"), "memory": replay("memory", "read_graph")}
            )
            await search_seen.wait_for("notifications/tools/list_changed", 20)
            after = {t.name for t in (await searching.list_tools()).tools}
            assert after == {t["name"] for t in before} | {"memory__read_graph"}


async def test_2026_listen_streams_hear_list_changed_only_when_their_search_list_changes(
    tmp_path: Path,
) -> None:
    keys, env = guarded_env(tmp_path, {"half": ["half"]}, POLICY)
    catalog = {name: CATALOG[name] for name in ("github", "slack")}
    with run_router(tmp_path, catalog, env=env) as router:
        async with (
            client_with(url(router, None), keys["half"], "2026-07-28") as flat,
            client_with(url(router, "search"), keys["half"], "2026-07-28") as searching,
            flat.listen(tools_list_changed=True) as flat_events,
            searching.listen(tools_list_changed=True) as search_events,
        ):
            before = [t.model_dump() for t in (await searching.list_tools()).tools]
            router.write_catalog({**catalog, "time": replay("time")})
            with anyio.fail_after(20):
                assert isinstance(await anext(flat_events), ToolsListChanged)
            with anyio.move_on_after(1.5) as quiet:
                await anext(search_events)
            assert quiet.cancelled_caught  # nothing for the search-mode stream
            assert [t.model_dump() for t in (await searching.list_tools()).tools] == before
            router.write_catalog(
                {**catalog, "time": replay("time"), "memory": replay("memory", "read_graph")}
            )
            with anyio.fail_after(20):
                assert isinstance(await anext(search_events), ToolsListChanged)
            assert "memory__read_graph" in {t.name for t in (await searching.list_tools()).tools}


async def test_a_servers_instructions_are_searched(tmp_path: Path) -> None:
    # context7's initialize answers instructions naming frameworks its tools' texts do not
    keys, env = guarded_env(tmp_path, {"searcher": ["searchers"]}, POLICY)
    catalog = {"github": CATALOG["github"], "context7": replay("context7")}
    instructions = json.loads((EVALSET / "context7.json").read_text())["instructions"]
    query = "Tailwind and Prisma setup"
    ranker = SearchIndex()
    ranker.put_server("github", None, frozen("github"))
    ranker.put_server("context7", instructions, frozen("context7"))
    want = [(f"{h.key[0]}__{h.key[1]}", round(h.score, 4)) for h in ranker.search(query, 5)]
    assert {name.split("__")[0] for name, _ in want} == {"context7"}
    with run_router(tmp_path, catalog, env=env) as router:
        async with client_with(url(router, "search"), keys["searcher"], "legacy") as client:
            rows = await search(client, query)
    assert [(row["name"], row["score"]) for row in rows] == want
