"""A task that spells out a tool's name finds that tool first (`spelled_names`)."""

from __future__ import annotations

from typing import Any

import pytest

from router.catalog.search import DocKey, SearchIndex
from router.catalog.search.fusion import fuse
from router.catalog.search.index import Hit
from router.catalog.search.literals import spelled_names
from tests.support.search_data import load_evalset


@pytest.fixture(scope="module")
def evalset() -> SearchIndex:
    idx = SearchIndex()
    for server, listing in load_evalset().items():
        idx.put_server(server, listing.get("instructions"), listing["tools"])
    return idx


def _first(idx: SearchIndex, query: str, **kw: Any) -> Hit:
    hits = idx.search(query, 5, **kw)
    assert hits, query
    return hits[0]


@pytest.mark.parametrize(
    ("query", "tool"),
    [
        # each loses to a sibling whose words score higher when the name is read as words
        ("confluence_get_page", ("atlassian", "confluence_get_page")),
        ("read_text_file", ("filesystem", "read_text_file")),
        ("firecrawl_interact", ("firecrawl", "firecrawl_interact")),
        ("API-get-users", ("notion", "API-get-users")),
        ("call `browser_network_request` for me", ("playwright", "browser_network_request")),
    ],
)
def test_a_spelled_name_goes_first(evalset: SearchIndex, query: str, tool: DocKey) -> None:
    # read as words (its separators gone), the name ranks a sibling first
    words = query.replace("_", " ").replace("-", " ").replace("`", "")
    assert _first(evalset, words).key != tool, "pick a name a sibling outranks as words"
    best = _first(evalset, query)
    assert best.key == tool and best.named


def test_the_exposed_name_with_its_server_picks_that_servers_tool(evalset: SearchIndex) -> None:
    # github and gitlab both have create_issue; the router exposes them as <server>__<tool>
    for server in ("github", "gitlab"):
        hits = evalset.search(f"{server}__create_issue", 5)
        assert hits[0].key == (server, "create_issue") and hits[0].named
        assert not any(h.named for h in hits[1:])
    both = {h.key for h in evalset.search("create_issue", 5) if h.named}
    assert both == {("github", "create_issue"), ("gitlab", "create_issue")}


def test_a_plain_word_in_a_sentence_is_a_word_not_a_name(evalset: SearchIndex) -> None:
    # mongodb has tools called `find` and `explain`; these tasks are about neither
    for query in ("find the latest invoice for ACME", "explain why my pod keeps crashing"):
        assert not any(h.named for h in evalset.search(query, 10)), query
    assert spelled_names("find the invoice") == ()
    # alone, the word is the name
    assert ("mongodb", "find") in {h.key for h in evalset.search("find", 5) if h.named}


def test_scores_stay_in_page_order_and_the_page_is_full(evalset: SearchIndex) -> None:
    hits = evalset.search("confluence_get_page", 5)
    assert len(hits) == 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_a_hidden_tool_is_not_found_by_its_name(evalset: SearchIndex) -> None:
    hidden: DocKey = ("filesystem", "read_text_file")
    hits = evalset.search("read_text_file", 10, visible=lambda key: key != hidden, token="no-read-text")
    assert hits and hidden not in {h.key for h in hits} and not any(h.named for h in hits)
    # the server filter applies too
    assert not any(h.named for h in evalset.search("read_text_file", 5, server="github"))


def test_a_name_stays_first_when_meaning_joins_the_ranking() -> None:
    words = [Hit(("a", "get_page"), 2.0, named=True), Hit(("a", "get_page_views"), 1.9)]
    near = [(("a", "get_page_views"), 0.9), (("b", "page"), 0.8)]
    cosine = {("a", "get_page"): 0.3, ("a", "get_page_views"): 0.9, ("b", "page"): 0.8}
    fused = fuse(words, near, cosine)
    assert fused[0].key == ("a", "get_page") and fused[0].named
    assert [h.key for h in fused[1:]] == [("a", "get_page_views"), ("b", "page")]
