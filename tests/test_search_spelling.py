"""Tasks that spell a tool's name out (`spelled_names`), and tasks with a typo in a word (`spelling.py`)."""

from __future__ import annotations

from typing import Any

import pytest

from router.catalog.search import DocKey, SearchIndex
from router.catalog.search.fusion import WEIGHT, fuse, meaning_weight
from router.catalog.search.index import Hit
from router.catalog.search.lexicon import LEXICON
from router.catalog.search.literals import spelled_names
from router.catalog.search.neighbours import default_neighbours
from router.catalog.search.query import QueryReader
from router.catalog.search.unknown_words import UnknownWords
from router.catalog.search.weights import Weights
from tests.support.search_data import index_of, load_evalset


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
        ("jira_get_issue_development_info", ("atlassian", "jira_get_issue_development_info")),
        ("confluence_upload_attachment", ("atlassian", "confluence_upload_attachment")),
        ("read_query", ("sqlite", "read_query")),
        ("call `browser_network_request` for me", ("playwright", "browser_network_request")),
    ],
)
def test_a_spelled_name_goes_first(evalset: SearchIndex, query: str, tool: DocKey) -> None:
    # read as words (its separators gone), the name ranks a sibling first
    words = query.replace("_", " ").replace("-", " ").replace("`", "")
    assert _first(evalset, words).key != tool, "pick a name a sibling outranks as words"
    best = _first(evalset, query)
    assert best.key == tool and best.named


def test_a_name_with_inner_dashes_is_a_name(evalset: SearchIndex) -> None:
    assert ("", "api-get-users") in spelled_names("call API-get-users")
    best = _first(evalset, "call API-get-users")
    assert best.key == ("notion", "API-get-users") and best.named


def test_the_exposed_name_with_its_server_picks_that_servers_tool(evalset: SearchIndex) -> None:
    # github and gitlab both have create_issue; the router exposes them as <server>__<tool>
    for server in ("github", "gitlab"):
        hits = evalset.search(f"{server}__create_issue", 5)
        assert hits[0].key == (server, "create_issue") and hits[0].named
        assert not any(h.named for h in hits[1:])
    both = {h.key for h in evalset.search("create_issue", 5) if h.named}
    assert both == {("github", "create_issue"), ("gitlab", "create_issue")}


def test_a_name_as_spelled_goes_before_its_reading_as_server_and_name() -> None:
    # the real Wikipedia server lists each tool twice: `get_summary` and `wikipedia_get_summary`
    # (same description). Spelled whole, the second is meant; read as "wikipedia" + "get_summary"
    # it also names the first, which scores higher and came first
    summary = {"description": "Get a summary of a Wikipedia article.", "inputSchema": {"type": "object"}}
    idx = SearchIndex()
    idx.put_server(
        "wikipedia",
        None,
        [{"name": "get_summary", **summary}, {"name": "wikipedia_get_summary", **summary}],
    )
    hits = idx.search("wikipedia_get_summary", 2)
    assert [h.key[1] for h in hits] == ["wikipedia_get_summary", "get_summary"]
    assert all(h.named for h in hits) and hits[0].score >= hits[1].score
    assert idx.search("get_summary", 1)[0].key[1] == "get_summary"
    # and with meaning mixed in, the word ranking's order of named tools holds, whatever the cosines
    fused = fuse(hits, [], {h.key: 0.9 if h.key[1] == "get_summary" else 0.1 for h in hits})
    assert [h.key[1] for h in fused] == ["wikipedia_get_summary", "get_summary"]


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


# ---- typos (spelling.py) --------------------------------------------------------------------------

TYPO_TOOLS: dict[str, list[dict[str, Any]]] = {
    "mongodb": [
        {"name": "create-index", "description": "Create an index for a collection."},
        {"name": "find", "description": "Run a find query against a collection."},
        {"name": "create-collection", "description": "Create a new collection."},
    ],
    "email": [
        {"name": "add_label", "description": "Add a label to an email address's messages."},
        {"name": "extract_contacts", "description": "Extract contacts from users' emails."},
    ],
    "calendar": [
        {"name": "create_event", "description": "Create a calendar event."},
        {"name": "list_events", "description": "List calendar events."},
    ],
    "hubspot": [{"name": "update_contact", "description": "Update a contact's properties."}],
}


def _typo_index(**weights: float) -> SearchIndex:
    return index_of(TYPO_TOOLS, **weights)


@pytest.mark.parametrize(
    ("query", "tool"),
    [
        ("create an idnex on the orders collection", ("mongodb", "create-index")),
        ("put a weekly 1:1 with my reports on the calender", ("calendar", "create_event")),
    ],
)
def test_a_typo_in_an_english_task_reads_as_the_word_one_edit_away(query: str, tool: DocKey) -> None:
    without = _typo_index(typo=0.0).search(query, 1)  # the word as typed
    assert not without or without[0].key != tool
    assert _typo_index().search(query, 1)[0].key == tool


def test_words_of_other_languages_names_and_english_words_are_not_typos() -> None:
    from router.catalog.search.spelling import looks_english, typo_candidates

    for other in (
        "Trova in HubSpot tutti i contatti con un'email che finisce in acme",
        "Welche Incidents sind in Datadog gerade offen?",
        "crea una tabla en la base de datos prima",
        "affiche la taille des fichiers",
    ):
        assert not looks_english(other) and typo_candidates(other) == (), other
    # a capitalised word inside a sentence is a name
    assert "priya" not in typo_candidates("set up a call with Priya on my calender")
    assert "calender" in typo_candidates("set up a call with Priya on my calender")
    # a common English word one edit from an indexed one is that word: "contract" is not "contact"
    reader = QueryReader(Weights(), LEXICON, default_neighbours())
    typos = reader.read("attach the signed contract to the record").typos
    assert "contract" not in {word for word, _ in typos}


def test_a_typo_is_corrected_only_to_a_word_a_visible_tool_has() -> None:
    # "calender": the only tools that say "calendar" are hidden, so the task must rank as if they
    # did not exist (no leak), and nothing reads it as "calendar"
    query = "put a weekly sync on the calender"
    hidden = {("calendar", "create_event"), ("calendar", "list_events")}
    idx = _typo_index()
    seen = idx.search(query, 5, visible=lambda key: key not in hidden, token="no-calendar")
    alone = SearchIndex()
    for server, tools in TYPO_TOOLS.items():
        if server != "calendar":
            alone.put_server(server, None, tools)
    assert [(h.key, round(h.score, 9)) for h in seen] == [
        (h.key, round(h.score, 9)) for h in alone.search(query, 5)
    ]
    assert idx.search(query, 1)[0].key[0] == "calendar"


def test_the_correction_is_chosen_among_visible_words_only() -> None:
    # "tages" is one edit from "tags" (two hidden tools) and from "tapes" (one visible tool): the
    # most common visible word is chosen, as if the hidden tools did not exist
    tools = {
        "labels": [
            {"name": "add_tags", "description": "Add tags to an item."},
            {"name": "remove_tags", "description": "Remove tags from an item."},
        ],
        "backup": [
            {"name": "list_tapes", "description": "List the backup tapes of a library."},
            {"name": "list_disks", "description": "List the backup disks of a library."},
        ],
    }
    idx, alone = SearchIndex(), SearchIndex()
    for server, listing in tools.items():
        idx.put_server(server, None, listing)
    alone.put_server("backup", None, tools["backup"])
    query = "list all the tages in the library"
    seen = idx.search(query, 5, visible=lambda key: key[0] == "backup", token="backup-only")
    assert seen[0].key == ("backup", "list_tapes")
    assert [(h.key, h.score) for h in seen] == [(h.key, h.score) for h in alone.search(query, 5)]


def test_a_cyrillic_loanword_reads_as_the_english_word() -> None:
    # "обсидиан" (Obsidian) and "деплоймент" (deployment) are in neither the lexicon nor the
    # glossary; written back in Latin letters and stemmed they are words the tools have
    tools = {
        # the same tool on two servers: only the server's name, written in Cyrillic, tells them apart
        "obsidian": [{"name": "append_content", "description": "Append content to a note."}],
        "notion": [{"name": "append_content", "description": "Append content to a note."}],
        "kubernetes": [{"name": "rollout_undo", "description": "Roll back a deployment to a revision."}],
    }

    note = "допиши пару строк в конец заметки в обсидиане"
    assert _first(index_of(tools, typo=0.0), note).key == ("notion", "append_content")  # a tie, by key
    assert _first(index_of(tools, typo=0.8), note).key == ("obsidian", "append_content")
    from router.catalog.search.spelling import cyrillic_candidates, loan_spellings

    assert "deploy" in loan_spellings("деплоймент") and "commit" in loan_spellings("коммиты")
    assert cyrillic_candidates("roll back the deployment") == ()


@pytest.mark.parametrize(
    ("katakana", "english"),
    [
        ("バッテリー", "battery"), ("マルウェア", "malware"), ("ナレーション", "narration"),
        ("ホスティング", "hosting"), ("サーバー", "server"), ("ドキュメント", "document"),
        ("バージョン", "version"), ("キャンペーン", "campaign"), ("インボイス", "invoice"),
        ("カーソル", "cursor"), ("ウェブサイト", "website"), ("ダッシュボード", "dashboard"),
        ("ワークフロー", "workflow"), ("テキスト", "text"), ("シドニー", "sydney"),
        # ジ for a voiced s, フ for an h
        ("ミュージック", "music"), ("リポジトリ", "repository"), ("ウェブフック", "webhook"),
        ("デジタル", "digital"),
    ],
)  # fmt: skip
def test_a_katakana_loanword_meets_its_english_stem(katakana: str, english: str) -> None:
    from router.catalog.search.katakana import english_skeletons, katakana_reading, katakana_skeletons
    from router.catalog.search.text import stem

    english_stem = stem(english)
    forms = [
        romaji
        for skeleton, romaji in katakana_skeletons(katakana)
        if skeleton in english_skeletons(english_stem)
    ]
    assert forms, (katakana, katakana_skeletons(katakana), english_skeletons(english_stem))
    assert katakana_reading(forms[0], [english_stem]) == english_stem


def test_a_katakana_loanword_reads_as_the_closest_english_word() -> None:
    # ルート shares its consonants with route, root and rate; it sounds like route
    from router.catalog.search.katakana import katakana_candidates, katakana_reading, romanize

    assert katakana_reading(romanize("ルート"), ["rate", "root", "rout"]) == "rout"
    assert katakana_candidates("ルートとバッテリーのペン、ファイル") == ("ルート", "バッテリー", "ファイル")

    tools = {
        "security": [
            {"name": "malware_family", "description": "What is known about a malware family."},
            {"name": "domain_reputation", "description": "How trusted a domain is."},
        ],
        "maps": [
            {"name": "get_route", "description": "Directions between two places."},
            {"name": "list_roots", "description": "The root folders of a drive."},
        ],
    }
    # "about the malware called Emotet" and "tell me the route": the katakana word is all that
    # names the tool (the rest is Japanese the tools do not have, and the glossary has neither)
    malware = "エモテットというマルウェアについて"
    route = "ルートを教えて"
    assert not index_of(tools, typo=0.0).search(malware, 5)
    assert _first(index_of(tools, typo=0.8), malware).key == ("security", "malware_family")
    assert _first(index_of(tools, typo=0.8), route).key == ("maps", "get_route")
    penguin = "ペンギンについて教えて"  # no tool has it: the same answer as with the rule off
    assert index_of(tools, typo=0.8).search(penguin, 5) == index_of(tools, typo=0.0).search(penguin, 5)


def test_unknown_words_read_only_as_terms_the_index_has_and_the_caller_sees() -> None:
    unknown = UnknownWords()
    for term in ("batteri", "rout", "root", "deploy"):
        unknown.term_added(term)
    counts = {"batteri": 2, "rout": 1, "root": 1, "deploy": 3}

    def df(term: str) -> int:
        return counts.get(term, 0)

    # a typo one edit away and a katakana loanword; the query's own terms are not repeated
    assert unknown.typos((("deploi", "deploi"), ("バッテリー", "バッテリー")), df, set()) == [
        ("deploy", 3),
        ("batteri", 2),
    ]
    assert unknown.typos((("バッテリー", "バッテリー"),), df, {"batteri"}) == []
    # a stem no visible tool has is no reading, though the index has it
    counts["batteri"] = 0
    assert unknown.typos((("バッテリー", "バッテリー"),), df, set()) == []
    # nor one the index no longer has: its skeleton is gone with it
    counts["batteri"] = 2
    unknown.term_removed("batteri")
    assert unknown.typos((("バッテリー", "バッテリー"),), df, set()) == []
    assert unknown.typos((("ルート", "ルート"),), df, set()) == [("rout", 1)]


def test_a_word_of_another_language_reads_as_the_english_stems_it_begins_with() -> None:
    # "orchestrazioni" (Italian, in a French task) and "configurées" are in neither the lexicon
    # nor the glossary; the stems of the tools' words they begin with (orchestr[ation],
    # configur[e]) are found ("automatisations" was the example until the glossary learnt it)
    from router.catalog.search.spelling import cognate_candidates, cognate_stems

    tools = {
        "home": [
            {"name": "list_orchestrations", "description": "List the orchestrations configured in the home."},
            {"name": "list_scenes", "description": "List the scenes of the home."},
        ],
        "crm": [{"name": "list_projects", "description": "List the projects of the workspace."}],
    }

    task = "liste toutes les orchestrazioni configurées"
    assert _first(index_of(tools, cognate=0.0), task).key != ("home", "list_orchestrations")
    assert _first(index_of(tools, cognate=1.0), task).key == ("home", "list_orchestrations")
    assert cognate_candidates(task) == ("orchestrazioni", "configurees")
    assert cognate_stems("configurees")[-1] == "confi" and cognate_stems("configurees")[0] == "configurees"
    # an English task has none: its words are read as typed (and as typos)
    assert cognate_candidates("list all the orchestrations configured in the house") == ()


def test_meaning_counts_by_the_share_of_the_task_in_the_latin_script() -> None:
    # the sentence model read English: a task in another script is ranked by its words
    assert meaning_weight("crée une page Confluence") == WEIGHT  # Latin, diacritics folded
    assert meaning_weight("создай задачу") == 0.0
    assert 0.0 < meaning_weight("Jira 上的 PROJ-142 记一下工时") < WEIGHT
    assert meaning_weight("42") == WEIGHT
    hits = [Hit(("a", "x"), 1.0), Hit(("a", "y"), 0.9)]
    cosine = {("a", "x"): 0.2, ("a", "y"): 0.6}
    assert fuse(hits, [], cosine)[0].key == ("a", "y")  # meaning decides at the full weight
    assert fuse(hits, [], cosine, meaning_weight("покажи задачи"))[0].key == ("a", "x")
