"""A query's words bring their neighbours in meaning (router/catalog/search/neighbours.py)."""

from __future__ import annotations

from router.catalog.search import SearchIndex, Weights
from router.catalog.search.neighbours import Neighbours, default_neighbours
from router.catalog.search.text import stem

TOOLS = {
    "maps": [
        {"name": "elevation", "description": "Get the altitude of points on the earth"},
        {"name": "geocode", "description": "Convert an address into coordinates"},
    ],
    "notes": [{"name": "add_note", "description": "Save a note about a place"}],
}


def index(neighbours: Neighbours, weights: Weights | None = None) -> SearchIndex:
    idx = SearchIndex(weights=weights, neighbours=neighbours)
    for server, tools in TOOLS.items():
        idx.put_server(server, None, tools)
    return idx


def test_a_word_missing_from_every_tool_reaches_one_with_its_neighbour() -> None:
    near = Neighbours.parse("height altitude:0.80 stature:0.60\nplace spot:0.70\n")
    # "height" is in no tool's text: only its neighbour "altitude" finds the tool
    hits = index(near).search("how big is the height of Zermatt", 3)
    assert hits[0].key == ("maps", "elevation")
    assert index(near, Weights(neighbour=0.0)).search("how big is the height of Zermatt", 3) == []
    assert index(Neighbours.parse("")).search("how big is the height of Zermatt", 3) == []


def test_neighbours_are_light_and_never_add_to_a_word_the_query_has() -> None:
    near = Neighbours.parse("altitude height:0.90\nheight altitude:0.90\n")
    idx = index(near)
    terms = dict(idx.query_terms("altitude height"))
    assert terms[stem("altitude")] == 1.0 and terms[stem("height")] == 1.0
    terms = dict(idx.query_terms("height"))
    assert abs(terms[stem("altitude")] - idx.weights.neighbour * 0.90) < 1e-9
    assert idx.weights.neighbour < 0.5


def test_a_name_inside_a_sentence_brings_no_neighbours() -> None:
    # "in Sanity" names a product (a CMS): sane and insane are no part of the task; lower-case, or
    # first in the sentence, the word may be the word
    near = Neighbours.parse("sanity sane:0.80 insane:0.70\n")
    idx = index(near)
    assert stem("insane") not in dict(idx.query_terms("find the posts about pricing in Sanity"))
    assert stem("insane") in dict(idx.query_terms("find the posts about pricing in sanity"))
    assert stem("insane") in dict(idx.query_terms("Sanity checks for the pricing posts"))


def test_a_word_of_another_language_brings_its_english_words_neighbours() -> None:
    # the glossary reads 下雨 (and lluvia, pluie...) as rain, whose neighbours come with it
    near = Neighbours.parse("rain rainfall:0.86 precipitation:0.70\n")
    idx = index(near)
    for task in ("明天上海会下雨吗", "¿habrá lluvia mañana en Sevilla?"):
        terms = dict(idx.query_terms(task))
        assert abs(terms[stem("precipitation")] - idx.weights.neighbour * 0.70) < 1e-9, task


def test_the_shipped_table() -> None:
    table = default_neighbours()
    assert len(table) > 10_000
    assert "altitude" in [w for w, _ in table.get("elevation")]
    assert table.get("no-such-word") == ()
    for word in ("delete", "remove", "create", "search", "ticket", "forget", "sum"):
        pairs = table.get(word)
        sims = [s for _, s in pairs]
        assert sims == sorted(sims, reverse=True) and all(0.55 <= s <= 1.0 for s in sims)
        assert all(stem(w) != stem(word) for w, _ in pairs), word  # the stemmer joins those already
        assert len(pairs) <= 8


def test_a_neighbour_never_takes_a_candidates_place_from_the_querys_own_words() -> None:
    # past min_candidates common terms only re-score the candidates found so far; the query's own
    # words are taken first however rare a neighbour is, so a large catalog still finds its tools
    near = Neighbours.parse("deploy rollout:0.90\n")
    idx = SearchIndex(weights=Weights(common=0.0, min_candidates=1), neighbours=near)
    idx.put_server("ops", None, [{"name": f"deploy_{x}", "description": "deploy it"} for x in "abc"])
    idx.put_server("k8s", None, [{"name": "rollout", "description": "a rollout"}])
    hits = idx.search("deploy", 10)
    assert {h.key for h in hits} == {("ops", "deploy_a"), ("ops", "deploy_b"), ("ops", "deploy_c")}
    # below min_candidates the neighbour adds its own candidates, after the query's words
    wide = SearchIndex(neighbours=near)
    wide.put_server("ops", None, [{"name": "deploy_a", "description": "deploy it"}])
    wide.put_server("k8s", None, [{"name": "rollout", "description": "a rollout"}])
    assert [h.key for h in wide.search("deploy", 10)] == [("ops", "deploy_a"), ("k8s", "rollout")]
