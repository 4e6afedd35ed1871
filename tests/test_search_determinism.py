"""Same definitions, same answers: order of registration, repeats and rebuilds do not matter."""

from __future__ import annotations

import random

from router.catalog.search import SearchIndex
from tests.support.search_data import SMALL, load_evalset


def _build(order: list[str], servers: dict[str, list[dict[str, object]]]) -> SearchIndex:
    idx = SearchIndex()
    for name in order:
        idx.put_server(name, None, servers[name])
    return idx


def test_order_independent_and_repeatable() -> None:
    servers = {k: list(v) for k, v in SMALL.items()}
    a = _build(sorted(servers), servers)
    b = _build(sorted(servers, reverse=True), servers)
    for q in ["read file", "search", "create", "pull request files", "web"]:
        first = a.search(q, 10)
        assert first == b.search(q, 10)
        assert first == a.search(q, 10)


def test_ties_broken_by_key() -> None:
    tools = [{"name": "same", "description": "identical text"}]
    idx = SearchIndex()
    for server in ["c", "a", "b"]:
        idx.put_server(server, None, tools)
    hits = idx.search("identical text", 3)
    assert [h.key for h in hits] == [("a", "same"), ("b", "same"), ("c", "same")]
    assert len({h.score for h in hits}) == 1


def test_incremental_update_equals_full_rebuild() -> None:
    servers = load_evalset()
    names = sorted(servers)
    rng = random.Random(3)
    inc = SearchIndex()
    for name in rng.sample(names, len(names)):
        inc.put_server(name, servers[name].get("instructions"), servers[name]["tools"])
    # churn: drop some, re-register others with a different definition, then restore them
    for name in names[:5]:
        inc.remove_server(name)
    for name in names[5:10]:
        inc.put_server(name, "changed", servers[name]["tools"][:1])
    for name in names[:10]:
        inc.put_server(name, servers[name].get("instructions"), servers[name]["tools"])
    full = SearchIndex()
    for name in names:
        full.put_server(name, servers[name].get("instructions"), servers[name]["tools"])
    assert inc.keys() == full.keys()
    for q in [
        "read a web page",
        "create a jira ticket",
        "take a screenshot",
        "ブランチ一覧",
        "SQL query",
        "Datei lesen",
        "delete the collection",
    ]:
        assert inc.search(q, 50) == full.search(q, 50)


def test_remove_server() -> None:
    idx = _build(sorted(SMALL), {k: list(v) for k, v in SMALL.items()})
    idx.remove_server("web")
    assert all(h.key[0] != "web" for h in idx.search("fetch url web search", 50))
    idx.remove_server("does-not-exist")
    assert len(idx) == sum(len(v) for k, v in SMALL.items() if k != "web")


def test_first_hits_do_not_depend_on_limit() -> None:
    servers = load_evalset()
    idx = SearchIndex()
    for name, data in sorted(servers.items()):
        idx.put_server(name, data.get("instructions"), data["tools"])
    for q in ["read a web page", "create a jira ticket", "list pods", "send a slack message", "ファイル"]:
        long = idx.search(q, 60)
        for k in (1, 3, 5, 10, 30, 45):
            assert idx.search(q, k) == long[:k]
        scores = [h.score for h in long]
        assert scores == sorted(scores, reverse=True)


def test_answers_do_not_depend_on_earlier_queries() -> None:
    # the parts only re-scoring reads are made when a tool first reaches a candidate pool: a ranker
    # that answered other queries before answers like a fresh one
    servers = {name: tools["tools"] for name, tools in load_evalset().items()}
    queries = ["read a file", "open a ticket", "post to the channel", "list pods", "take a screenshot"]
    used = _build(sorted(servers), servers)
    for q in ["search the web", "create a branch", "delete the index", "who am i", "current time"]:
        used.search(q, 5)
    for q in queries:
        assert used.search(q, 10) == _build(sorted(servers), servers).search(q, 10)
