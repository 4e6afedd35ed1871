"""Tool search by meaning (`tools_semantic`, router/catalog/search/semantic.py): the numpy model
gives the sentence model's vectors, meaning finds what words rank lower, nothing hidden leaks, a
search ranks by words until every tool has its vector, and the router uses it end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from router.catalog.index import Definitions, Index
from router.catalog.naming import NamingPolicy
from router.catalog.search.literals import plain_literals
from router.catalog.search.live import LiveSearch
from router.catalog.search.semantic import Meanings, MiniLM, tool_text
from tests.conftest import run_router, write_catalog
from tests.guard_support import client_with, guarded_env
from tests.support.procs import REPO_ROOT
from tests.test_tool_search import CATALOG, POLICY, VISIBLE, frozen, search, url

EVALSET = REPO_ROOT / "bench" / "toolsearch" / "evalset"
FIVE = ("filesystem", "github", "kubernetes", "notion", "slack")
# tasks whose words rank another tool first, and whose meaning finds the right one
TASKS = {
    "make a new folder called reports": "filesystem__create_directory",
    "who is in our Slack workspace": "slack__slack_get_users",
}


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return MiniLM.load()


class Remembering(MiniLM):
    """The real model, remembering each text's vector, so that the tests' many catalogs over the
    same tools embed each tool once. Exact: `encode` runs each text alone, so a text's vector is
    the same whatever it is encoded with."""

    def __init__(self, model: MiniLM) -> None:
        self.__dict__.update(model.__dict__)
        self.seen: dict[str, Any] = {}

    def encode(self, texts: Sequence[str]) -> Any:
        missing = [text for text in dict.fromkeys(texts) if text not in self.seen]
        if missing:
            self.seen.update(zip(missing, super().encode(missing), strict=True))
        if not texts:
            return super().encode(texts)
        return np.stack([self.seen[text] for text in texts])


@pytest.fixture(scope="module")
def remembering(model: MiniLM) -> Remembering:
    return Remembering(model)


def index_of(servers: Sequence[str]) -> Index:
    defs = {s: Definitions(tools=tuple(frozen(s))) for s in servers}
    return Index(NamingPolicy("always", "__", 64), defs, 1)


def ranked(live: LiveSearch, index: Index, query: str, meanings: Meanings | None, k: int = 5) -> list[str]:
    vector = meanings.embed(query) if meanings is not None else None
    return [f.name for f in live.search(index, query, k, meaning=vector)]


def test_the_numpy_model_gives_the_sentence_models_vectors(model: MiniLM) -> None:
    v = model.encode(
        ["A man is eating food.", "A man is eating a piece of bread.", "A monkey is playing drums.", ""]
    )
    assert v.shape == (4, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # the published model's similarities for these sentences (sentence-transformers: 0.7553, 0.0478)
    assert abs(float(v[0] @ v[1]) - 0.7553) < 0.005
    assert abs(float(v[0] @ v[2]) - 0.0478) < 0.005
    # a batch gives each text the vector it gets alone (padding is masked out)
    alone = model.encode(["A monkey is playing drums."])[0]
    assert np.allclose(alone, v[2], atol=1e-5)


def test_meaning_finds_what_words_rank_lower(remembering: Remembering) -> None:
    model = remembering
    index = index_of(FIVE)
    words = LiveSearch()
    meanings = Meanings(model)
    both = LiveSearch(meanings=meanings)
    words.follow(index)
    both.follow(index)
    assert meanings.wait(60)
    for query, tool in TASKS.items():
        assert ranked(words, index, query, None)[0] != tool, query  # words alone rank another first
        assert ranked(both, index, query, meanings)[0] == tool, query
    # a query whose words already find the tool keeps it first
    assert ranked(both, index, "list the pods in a namespace", meanings)[0].startswith("kubernetes__")


def test_hidden_tools_change_no_result_and_no_score(model: MiniLM) -> None:
    # the real model, unremembered: each side embeds its own catalog, and the scores must agree
    # to the last digit
    index = index_of(FIVE)
    meanings = Meanings(model)
    live = LiveSearch(meanings=meanings)
    live.follow(index)
    alone = Meanings(model)
    visible_only = LiveSearch(meanings=alone)
    small = index_of(VISIBLE)
    visible_only.follow(small)
    assert meanings.wait(60) and alone.wait(60)

    def shown(key: tuple[str, str]) -> str | None:
        return f"{key[0]}__{key[1]}" if key[0] in VISIBLE else None

    for query in (*TASKS, "scale the deployment to three replicas", "add a comment to the page", "search"):
        vector = meanings.embed(query)
        got = [(f.name, f.score) for f in live.search(index, query, 50, shown, "visible", meaning=vector)]
        want = [(f.name, f.score) for f in visible_only.search(small, query, 50, meaning=vector)]
        assert got == want, query
        assert all(name.split("__")[0] in VISIBLE for name, _ in got)


class GatedModel(Remembering):
    """The real model, whose catalog work waits for a gate (a registration still being embedded)."""

    def __init__(self, model: MiniLM) -> None:
        self.__dict__.update(model.__dict__)
        self.gate = threading.Event()

    def encode(self, texts: Sequence[str]) -> Any:
        if (len(texts) > 1 or not self.gate.is_set()) and not self.gate.wait(30):
            raise TimeoutError("gate never opened")
        return super().encode(texts)


def test_until_every_tool_has_its_vector_search_ranks_by_words(remembering: Remembering) -> None:
    model = remembering
    gated = GatedModel(model)
    gated.gate.set()
    meanings = Meanings(gated)
    live, words = LiveSearch(meanings=meanings), LiveSearch()
    first = index_of(("github", "kubernetes"))
    live.follow(first)
    assert meanings.wait(60)
    query = "make a new folder called reports"
    vector = meanings.embed(query)
    gated.gate.clear()
    later = index_of(FIVE)  # filesystem registers: its tools are not embedded yet
    live.follow(later)
    words.follow(later)
    assert not meanings.ready()
    hits = live.search(later, query, 10, meaning=vector)
    assert [(f.name, f.score) for f in hits] == [(f.name, f.score) for f in words.search(later, query, 10)]
    assert hits[0].name != TASKS[query]  # found by its words, at once, but not yet by its meaning
    gated.gate.set()
    assert meanings.wait(60)
    assert live.search(later, query, 10, meaning=vector)[0].name == TASKS[query]


def test_a_tool_is_embedded_from_its_server_name_title_and_first_two_sentences() -> None:
    tool = {
        "name": "getPullRequest_files",
        "title": "PR files",
        "description": "List the files a pull request changes. Paginated; 30 per page. Needs a token.",
    }
    assert (
        tool_text("github", tool)
        == "github: get pull request files. PR files List the files a pull request changes. "
        "Paginated; 30 per page."
    )


@pytest.mark.parametrize(
    ("query", "read"),
    [
        ("open ~/projects/app/config.yaml and show me", "open path and show me"),
        ("grab the text of https://stripe.com/pricing please", "grab the text of web page please"),
        ("every URL on docs.example.com", "every URL on web page"),
        ("rename draft.md to final.md", "rename file to file"),
        ("give ABC-12 to maria", "give ticket to maria"),
        ("revert 3f2a9c1 on main", "revert id on main"),
        ("who owns 9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d", "who owns id"),
        # a prefixed ID reads as written: its prefix (txn, cus) says what it is
        ("refund txn_01hv8k2m3n", "refund txn_01hv8k2m3n"),
        # not whole tokens: a branch, a pair, an e-mail address; numbers read well as they are
        ("open a PR from feature/auth", "open a PR from feature/auth"),
        ("lat/long for 10 Downing Street", "lat/long for 10 Downing Street"),
        ("mail jane@acme.io", "mail jane@acme.io"),
        ("add 17 and 25", "add 17 and 25"),
    ],
)
def test_the_model_reads_a_querys_literal_values_by_kind(model: MiniLM, query: str, read: str) -> None:
    assert plain_literals(query) == read
    meanings = Meanings(model)
    assert np.array_equal(meanings.embed(query), model.encode([read])[0])


@pytest.mark.anyio
@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_the_router_ranks_by_meaning_when_told_to(
    tmp_path: Path, era: str, remembering: Remembering
) -> None:
    model = remembering
    keys, env = guarded_env(tmp_path, {"half": ["half"]}, POLICY)
    env["TOOLMESH_TOOLS_SEMANTIC"] = "true"
    meanings = Meanings(model)
    expected = LiveSearch(meanings=meanings)
    small = index_of(VISIBLE)
    expected.follow(small)
    assert meanings.wait(60)
    with run_router(tmp_path, CATALOG, env=env) as router:
        async with client_with(url(router, "search"), keys["half"], era) as client:
            for query, tool in TASKS.items():
                want = [
                    (f.name, round(f.score, 4))
                    for f in expected.search(small, query, 5, meaning=meanings.embed(query))
                ]
                assert want[0][0] == tool
                # the router embeds its catalog after it is ready: ~30 s when the two cores are busy
                with anyio.fail_after(120):
                    while (rows := await search(client, query))[0]["name"] != tool:
                        await anyio.sleep(0.2)
                # what a search that never saw the hidden servers answers, names and scores
                assert [(r["name"], r["score"]) for r in rows] == want
                assert not {r["server"] for r in rows} - set(VISIBLE)
            called = await client.call_tool("call_tool", {"name": TASKS["make a new folder called reports"],
                                                          "arguments": {"path": "/tmp/reports"}})  # fmt: skip
            assert not called.is_error


def test_a_missing_model_is_a_clear_startup_error(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path, {"github": CATALOG["github"]})
    env = {
        "TOOLMESH_TOOLS_SEMANTIC": "true",
        "TOOLMESH_TOOLS_SEMANTIC_MODEL": str(tmp_path / "no-such-model"),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "router", "router", "--config", str(catalog), "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "tools_semantic" in done.stderr and "model.safetensors" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_the_evaluation_sets_name_real_tools() -> None:
    """Every acceptable tool of every query set exists in the frozen listings: the evaluation set,
    plus the folder of servers named like the set (up to a "-") if it has one, as bench/search.py
    evaluates it (`unseen/` for `unseen.jsonl` and `unseen-blind.jsonl`). A typo would make a query
    unanswerable and lower every ranker's figures alike."""

    def tools_in(folder: Path) -> set[tuple[str, str]]:
        return {
            (data["server"], t["name"])
            for data in (json.loads(p.read_text()) for p in folder.glob("*.json"))
            for t in data["tools"]
        }

    sets = REPO_ROOT / "bench" / "toolsearch"
    evaluation = tools_in(EVALSET)
    for path in sorted(sets.glob("*.jsonl")):
        tools = evaluation | tools_in(sets / path.stem.partition("-")[0])
        for line in path.read_text().splitlines():
            if line.strip():
                query = json.loads(line)
                assert query["query"].strip() and query["relevant"], (path.name, line)
                assert {tuple(r) for r in query["relevant"]} <= tools, (path.name, query["query"])


class FailingOnce(Remembering):
    """The real model, whose first catalog batch fails (a fault the machine cannot make on demand:
    memory running out mid-embedding)."""

    def __init__(self, model: MiniLM) -> None:
        self.__dict__.update(model.__dict__)
        self.failed = False

    def encode(self, texts: Sequence[str]) -> Any:
        if len(texts) > 1 and not self.failed:
            self.failed = True
            raise MemoryError("no room for the vectors")
        return super().encode(texts)


def test_a_failed_embedding_leaves_search_by_words_until_the_next_change(
    remembering: Remembering, caplog: pytest.LogCaptureFixture
) -> None:
    model = remembering
    failing = FailingOnce(model)
    meanings = Meanings(failing)
    live, words = LiveSearch(meanings=meanings), LiveSearch()
    query = "make a new folder called reports"
    index = index_of(FIVE)
    live.follow(index)
    words.follow(index)
    assert not meanings.wait(2)  # the worker logged the fault and waits for the next state
    assert failing.failed and "cannot embed" in caplog.text
    vector = meanings.embed(query)
    assert [f.name for f in live.search(index, query, 5, meaning=vector)] == ranked(words, index, query, None)
    later = index_of((*FIVE, "time"))
    live.follow(later)  # the next catalog change: everything is embedded again
    assert meanings.wait(60)
    assert live.search(later, query, 5, meaning=vector)[0].name == TASKS[query]
