"""The live search index and the search-mode parts, on the router's own Index and policy View:
it follows catalog swaps incrementally, ranks tools that cannot be called below the others and
marks them, keeps the search-mode list's bytes while pins do not change, and withholds what the
Index withholds (a name two servers share)."""

from __future__ import annotations

import json
from typing import Any

import orjson

from router.catalog.index import Definitions, Index
from router.catalog.naming import NamingPolicy
from router.catalog.search import SearchIndex
from router.catalog.search.live import LiveSearch
from router.guard.agent import Agent
from router.guard.guard import Guard
from router.guard.views import OPEN
from router.relay.meta_tools import ToolSearch, ToolsSettings, tools_mode_of
from tests.support.search_data import load_evalset

NAMING = NamingPolicy("always", "__", 64)


def index_of(servers: dict[str, dict[str, Any]], names: list[str], generation: int) -> Index:
    return Index(NAMING, {n: Definitions(tools=tuple(servers[n]["tools"])) for n in names}, generation)


def test_the_index_follows_catalog_swaps_server_by_server() -> None:
    servers = load_evalset()
    names = sorted(servers)
    live = LiveSearch()
    first = index_of(servers, names[:20], 1)
    live.follow(first)
    calls: list[str] = []
    put = live.ranker.put_server

    def counting(server: str, instructions: str | None, tools: Any) -> None:
        calls.append(server)
        put(server, instructions, tools)

    live.ranker.put_server = counting  # type: ignore[method-assign]
    # the next catalog keeps 19 servers' Definitions objects, drops one, adds two
    kept = {n: first.servers[n] for n in names[1:20]}
    added = {n: Definitions(tools=tuple(servers[n]["tools"])) for n in names[20:22]}
    second = Index(NAMING, {**kept, **added}, 2)
    live.follow(second)
    assert calls == names[20:22]  # only the new servers were indexed
    fresh = SearchIndex()
    for n in names[1:22]:
        fresh.put_server(n, None, servers[n]["tools"])
    for query in ("read a file", "create an issue", "take a screenshot"):
        found = live.search(second, query, 10)
        want = fresh.search(query, 10)
        assert [(f.target.server, f.target.name, f.score) for f in found] == [(*h.key, h.score) for h in want]
        assert all(f.name == f"{f.target.server}__{f.target.name}" for f in found)


def test_tools_that_cannot_be_called_rank_below_the_others_and_are_marked() -> None:
    servers = load_evalset()
    index = index_of(servers, ["firecrawl", "fetch", "playwright", "tavily"], 1)
    down = {"fetch", "firecrawl"}
    search = ToolSearch(ToolsSettings(), serving=lambda server: server not in down)
    rows = search.search(OPEN, index, "read this web page", 50)["tools"]
    flags = [row.get("available", True) for row in rows]
    assert True in flags and False in flags
    assert flags == sorted(flags, reverse=True)  # every available hit first
    assert {row["server"] for row in rows if row.get("available") is False} <= down
    assert all("available" not in row for row in rows if row["server"] not in down)
    healthy = ToolSearch(ToolsSettings(), serving=lambda server: True).search(
        OPEN, index, "read this web page", 50
    )
    assert {r["name"] for r in healthy["tools"]} == {r["name"] for r in rows}  # same hits, reordered
    assert {r["server"] for r in healthy["tools"][:3]} & down  # so the demotion moved something
    # a short page is the long page's head: an unavailable hit in it is replaced by the next
    # available one from further down
    assert search.search(OPEN, index, "read this web page", 3)["tools"] == rows[:3]
    assert all("available" not in row for row in rows[:3])


def test_search_mode_list_keeps_its_bytes_until_pins_change() -> None:
    servers = load_evalset()
    search = ToolSearch(
        ToolsSettings(mode="search", pinned=("github__create_issue",)), serving=lambda s: True
    )
    one = index_of(servers, ["github", "slack"], 1)
    two = index_of(servers, ["github", "slack", "notion", "kubernetes"], 2)
    page = search.listed(None, OPEN, one)
    assert page is not None and page == search.listed(None, OPEN, two)
    names = [tool["name"] for tool in orjson.loads(page)]
    assert names == ["search_tools", "describe_tools", "call_tool", "github__create_issue"]
    marked = json.loads(json.dumps(servers["slack"]))
    marked["tools"][0]["_meta"] = {"anthropic/alwaysLoad": True}
    three = Index(NAMING, {**two.servers, "slack": Definitions(tools=tuple(marked["tools"]))}, 3)
    assert search.listed(None, OPEN, three) != page
    assert search.listed("all", OPEN, three) is None  # the client's parameter wins over the setting


def test_auto_mode_counts_only_the_agents_tools() -> None:
    servers = load_evalset()
    index = index_of(servers, ["github", "slack"], 1)
    guard = Guard()
    guard.install(
        b'{"groups": {"few": {"allow": {"servers": ["slack"]}}, "many": {"allow": {"servers": ["*"]}}}}', "t"
    )
    search = ToolSearch(ToolsSettings(mode="auto", auto_max_count=20, auto_max_tokens=10**9), lambda s: True)
    assert search.searching(None, guard.view(Agent("a", frozenset({"many"}))), index)  # 34 tools
    assert not search.searching(None, guard.view(Agent("b", frozenset({"few"}))), index)  # 8 tools
    tight = ToolSearch(ToolsSettings(mode="auto", auto_max_count=1000, auto_max_tokens=100), lambda s: True)
    assert tight.searching(None, guard.view(Agent("b", frozenset({"few"}))), index)  # by size


def test_a_name_the_index_withholds_is_found_by_nobody() -> None:
    tools = ({"name": "lookup", "description": "Look up a word in the dictionary"},)
    naming = NamingPolicy("never", "__", 64)
    index = Index(naming, {"a": Definitions(tools=tools), "b": Definitions(tools=tools),
                           "c": Definitions(tools=({"name": "define", "description": "Define a word"},))}, 1)  # fmt: skip
    assert "lookup" not in index.tools
    found = LiveSearch().search(index, "look up a word", 10)
    assert [f.name for f in found] == ["define"]


def test_the_url_parameter() -> None:
    assert tools_mode_of(b"") is None
    assert tools_mode_of(b"tools=search") == "search"
    assert tools_mode_of(b"x=1&tools=auto") == "auto"
    try:
        tools_mode_of(b"tools=many")
    except ValueError as exc:
        assert "not a tools mode" in str(exc)
    else:
        raise AssertionError("an unknown mode must be refused")


def test_an_override_that_renames_a_tool_is_searched_described_and_called_under_the_new_name() -> None:
    servers = load_evalset()
    index = index_of(servers, ["github", "slack"], 1)
    guard = Guard()
    policy = {
        "default": "allow",
        "overrides": [
            {"tool": "github__create_issue", "name": "file_ticket", "description": "File a ticket."}
        ],
    }
    guard.install(json.dumps(policy).encode(), "t")
    view = guard.view(Agent("a", frozenset()))
    search = ToolSearch(ToolsSettings(mode="search"), lambda s: True)
    rows = search.search(view, index, "open a new issue in the repository", 5)["tools"]
    assert rows[0]["name"] == "file_ticket" and rows[0]["tool"] == "create_issue"
    assert rows[0]["description"] == "File a ticket."
    assert "github__create_issue" not in {r["name"] for r in rows}
    # the new name spelled out finds its tool first, as a tool's own name would
    for query in ("file_ticket", "call file_ticket with the crash report from the CI run"):
        assert search.search(view, index, query, 5)["tools"][0]["name"] == "file_ticket", query
    assert ToolSearch(ToolsSettings(mode="search", pinned=("file_*",)), lambda s: True).listed(
        None, view, index
    ) == orjson.dumps([*orjson.loads(search.listed(None, view, index) or b"[]"), next(
        t for t in orjson.loads(view.pages(index, "tools", 0)[0]) if t["name"] == "file_ticket"
    )])  # fmt: skip


def test_a_server_the_ranker_cannot_read_leaves_the_others_searchable(caplog: Any) -> None:
    # a fault no real definition produces on demand any more (the recursive schemas that did are
    # walked now): the analysis of one server's tools fails
    servers = load_evalset()
    live = LiveSearch()
    analyse = live.ranker._analyse

    def failing(tool: Any, name: str, *rest: Any) -> Any:
        if name == "slack_post_message":
            raise ValueError("unreadable definition")
        return analyse(tool, name, *rest)

    live.ranker._analyse = failing  # type: ignore[method-assign]
    index = index_of(servers, ["filesystem", "slack"], 1)
    live.follow(index)  # does not raise
    assert "cannot index the tools of slack" in caplog.text
    found = live.search(index, "read a text file", 5)
    assert found and all(f.target.server == "filesystem" for f in found)
    # nothing of slack's was half-written into the index
    assert {key[0] for key in live.ranker.keys()} == {"filesystem"}  # noqa: SIM118
    # the next catalog with slack readable again brings it back
    live.ranker._analyse = analyse  # type: ignore[method-assign]
    live.follow(index_of(servers, ["filesystem", "slack"], 2))
    assert live.search(index, "post a message to a channel", 1)[0].target.server == "slack"
