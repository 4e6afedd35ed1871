"""No leaks: hidden tools never appear and never change a visible tool's score."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from router.catalog.search import DocKey, SearchIndex
from tests.support.search_data import SMALL, load_evalset

QUERIES = [
    "read a file",
    "open a pull request",
    "search the web for news",
    "create a ticket",
    "list the directory",
    "ファイルを読む",
    "Datei lesen",
    "get issue comments",
    "x",
]


def _hidden_tools(n: int) -> list[dict[str, object]]:
    # deliberately strong matches for every query, and long texts that would move averages
    return [
        {
            "name": f"read_file_{i}",
            "title": "Read file, search web, create issue, pull request",
            "description": "read file text web search news ticket issue directory " * (i + 1),
        }
        for i in range(n)
    ]


def test_hidden_tools_change_nothing_small() -> None:
    plain = SearchIndex()
    for server, tools in SMALL.items():
        plain.put_server(server, None, tools)
    visible = frozenset(plain.keys())

    noisy = SearchIndex()
    noisy.put_server("zz-hidden", "Reads files and searches the web.", _hidden_tools(30))
    for server, tools in SMALL.items():
        noisy.put_server(server, None, [*tools, *_hidden_tools(3)])  # hidden tools inside visible servers
    for q in QUERIES:
        expected = plain.search(q, 50)
        assert noisy.search(q, 50, visible=visible) == expected  # bit-identical scores
        assert noisy.search(q, 50, visible=visible, token="v1") == expected
        assert noisy.search(q, 50, visible=lambda k: k in visible) == expected
        assert noisy.search(q, 50, visible=lambda k: k in visible, token="v2") == expected
        for hit in noisy.search(q, 50, visible=visible):
            assert hit.key in visible


def test_hidden_tools_change_nothing_evalset() -> None:
    servers = load_evalset()
    names = sorted(servers)
    shown = names[::2]
    plain = SearchIndex()
    for name in shown:
        plain.put_server(name, servers[name].get("instructions"), servers[name]["tools"])
    full = SearchIndex()
    for name in names:
        full.put_server(name, servers[name].get("instructions"), servers[name]["tools"])
    visible = frozenset(plain.keys())
    for q in [*QUERIES, "take a screenshot of the page", "jira ticket comment", "run SQL", "kill process"]:
        assert full.search(q, 100, visible=visible, token="half") == plain.search(q, 100)


def test_policy_hiding_single_tools_of_a_server() -> None:
    idx = SearchIndex()
    for server, tools in SMALL.items():
        idx.put_server(server, None, tools)
    hidden: DocKey = ("filesystem", "read_text_file")
    visible = frozenset(k for k in idx.keys() if k != hidden)  # noqa: SIM118
    assert all(h.key != hidden for h in idx.search("read the file contents", 50, visible=visible))
    assert idx.search("read the file contents", 50, visible=frozenset()) == []


def test_token_cache_is_dropped_on_change() -> None:
    idx = SearchIndex()
    idx.put_server("web", None, SMALL["web"])
    before = idx.search("search the web", 5, visible=lambda k: True, token="t")
    idx.put_server("github", None, SMALL["github"])
    after = idx.search("search the web", 5, visible=lambda k: True, token="t")
    fresh = idx.search("search the web", 5)
    assert after == fresh
    assert before != after  # corpus statistics moved with the new visible server


def test_cached_views_follow_registrations() -> None:
    servers = load_evalset()
    names = sorted(servers)
    idx = SearchIndex()
    for name in names[:20]:
        idx.put_server(name, servers[name].get("instructions"), servers[name]["tools"])
    every = [(n, t["name"]) for n in names for t in servers[n]["tools"]]
    visible = frozenset(k for i, k in enumerate(every) if i % 3 != 0)
    queries = ["read a file", "create an issue", "search the web", "delete the branch"]
    for q in queries:  # fill the view caches (frozenset view and a token view)
        idx.search(q, 10, visible=visible)
        idx.search(q, 10, visible=lambda k: k in visible, token="policy-7")
    for name in names[20:]:
        idx.put_server(name, servers[name].get("instructions"), servers[name]["tools"])
    for name in names[:3]:
        idx.remove_server(name)
    fresh = SearchIndex()
    for name in names[3:]:
        fresh.put_server(name, servers[name].get("instructions"), servers[name]["tools"])
    for q in queries:
        want = fresh.search(q, 30, visible=visible)
        assert idx.search(q, 30, visible=visible) == want
        assert idx.search(q, 30, visible=lambda k: k in visible, token="policy-7") == want


# ---- any task, hostile or not (hypothesis) --------------------------------------------------------

# Hidden tools built to be found by every path a task can take: their names spelled out, words
# one edit from a typo, English words a Cyrillic or katakana loanword is read as.
_BAIT = [
    {"name": "calendar_sync", "description": "Calendar index namespace dashboard deployment obsidian."},
    {"name": "battery_route", "description": "Battery route server malware narration campaign."},
    {"name": "read_text_file", "description": "Read files from the vault: notes, logs, commits."},
    {"name": "API-get-users", "description": "Users, customers, contacts and their email addresses."},
    # the typos themselves: a hidden tool that has the word must not stop its correction
    {"name": "typo_bait", "description": "reposiotry direcotry serach contnets craete isssue"},
]
_WORD_LINES = (
    "read the file create an issue on github search web for news list directory",
    "calender idnex namepsace dashbaord custmer flakey whcih",  # typos of bait words
    "reposiotry direcotry serach contnets craete isssue",  # typos of visible words
    "деплоймент обсидиане коммиты постгреса заметку сделай",  # loanwords and Russian
    "バッテリー ルート サーバー マルウェア ナレーション キャンペーン",  # loanwords in katakana
    "read_text_file github__create_issue calendar_sync API-get-users zz-hidden__read_text_file",
    "Priya ファイルを読む Datei lesen https://youtu.be/abc r/korea PROJ-12 CHECKOUT-1A2",
)
_WORDS = [word for line in _WORD_LINES for word in line.split()]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(["serach", "the", "web", "for", "news"])
@example(["craete", "an", "isssue", "on", "the", "reposiotry"])
@example(["open", "the", "calender", "and", "read_text_file"])
@example(["допиши", "в", "обсидиане", "деплоймент"])
@example(["バッテリーの", "ルートを", "サーバー"])
@given(st.lists(st.one_of(st.sampled_from(_WORDS), st.text(min_size=1, max_size=12)), min_size=1, max_size=8))
def test_no_task_finds_or_feels_a_hidden_tool(parts: list[str]) -> None:
    query = " ".join(parts)
    plain = _small_index()
    noisy = _small_index()
    noisy.put_server("zz-hidden", None, _BAIT)
    noisy.put_server("github", None, [*SMALL["github"], *_BAIT])  # hidden tools in a visible server
    visible = frozenset(plain.keys())
    expected = plain.search(query, 20)
    assert noisy.search(query, 20, visible=visible) == expected
    assert noisy.search(query, 20, visible=lambda k: k in visible, token="fuzz") == expected


def _small_index() -> SearchIndex:
    idx = SearchIndex()
    for server, tools in SMALL.items():
        idx.put_server(server, None, tools)
    return idx


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
_SCHEMA_KEYS = st.sampled_from(["properties", "anyOf", "oneOf", "allOf", "$ref", "items", "enum", "const",
                                "description", "$defs", "type"])  # fmt: skip
_SCHEMA = st.recursive(
    st.text(max_size=10) | st.sampled_from(["#", "#/$defs/a", "#/$defs/b", "#/properties/x", "#/"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.one_of(_SCHEMA_KEYS, st.sampled_from(["a", "b", "x"])), children, max_size=4)
    ),
    max_leaves=40,
)


_CYCLE = {
    "$defs": {"a": {"oneOf": [{"$ref": "#/$defs/b"}]}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}},
    "$ref": "#/$defs/a",
}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example([{"name": "cycle", "inputSchema": _CYCLE}], "cycle")
@example([{"name": ["not", "a", "string"], "description": {"a": 1}, "inputSchema": "#"}], "")
@given(
    st.lists(
        st.fixed_dictionaries(
            {"name": st.one_of(st.text(max_size=30), _JSON)},
            optional={
                "title": _JSON,
                "description": st.one_of(st.text(max_size=200), _JSON),
                "inputSchema": _SCHEMA,
                "annotations": _JSON,
            },
        ),
        max_size=5,
    ),
    st.text(max_size=40),
)
def test_any_definition_a_backend_sends_is_indexed_or_skipped(
    tools: list[dict[str, Any]], query: str
) -> None:
    # whatever JSON a backend lists as tools (recursive schemas, wrong types), indexing and search
    # do not raise, and removing the server leaves nothing of it behind
    idx = SearchIndex()
    idx.put_server("odd", "instructions", tools)
    idx.put_server("web", None, SMALL["web"])
    idx.search(query, 5)
    idx.search(query, 5, visible=lambda key: key[0] == "web", token="web")
    idx.remove_server("odd")
    assert {key[0] for key in idx.keys()} == {"web"}  # noqa: SIM118
