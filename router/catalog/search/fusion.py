"""Words and meaning in one ranking: the seam between the word ranker and an optional sentence model.

The word ranker (`index.py`) needs nothing beyond the standard library and one stemmer; a ranker
by meaning (`semantic.py`, the `semantic` extra) needs numpy. `LiveSearch` sees the latter only
through `MeaningIndex`, so nothing imports numpy unless `tools_semantic` is on.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from .index import DocKey, Hit

__all__ = ["FLOOR", "NEAREST", "WEIGHT", "WORDS", "MeaningIndex", "fuse", "meaning_weight"]

WEIGHT = 3.0
"""How much meaning counts beside words: a cosine 0.1 above FLOOR is worth 0.3 of the best word score."""
FLOOR = 0.1
"""Cosines at or below this say nothing. Unrelated texts score 0-0.2 with all-MiniLM-L6-v2, but
0.2 clipped too much: over the 35 sets (2,346 tasks, 2026-12-05) a grid over the weight 2.5-5 and
the floor 0.05-0.25 put 0.1 with the weight 3 at +9 tasks first and +16 in the first five against
0.2 (+13 and +10 on the 1,463 tasks on servers the word ranker was not built on)."""
NEAREST = 10
"""How many of the tools closest in meaning join the word ranking's candidates."""
WORDS = 50
"""How many of the word ranking's best are candidates, whatever the limit asked (so the first k
hits do not depend on the limit)."""


class MeaningIndex(Protocol):
    """Vectors of the catalog's tools and of queries (`semantic.Meanings`)."""

    def follow(self, servers: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """The catalog's tools now, by server (cheap: the vectors are made elsewhere)."""

    def embed(self, query: str) -> Any:
        """The query's vector (CPU work: called off the event loop)."""

    def nearest(
        self, vector: Any, admit: Callable[[DocKey], bool], k: int
    ) -> list[tuple[DocKey, float]] | None:
        """The `k` admitted tools closest to `vector`, closest first; None until the vectors are
        those of the latest catalog state."""

    def cosines(self, vector: Any, keys: Sequence[DocKey]) -> dict[DocKey, float]:
        """Each key's cosine with `vector`."""


def meaning_weight(query: str) -> float:
    """WEIGHT times the share of the query's letters in the Latin script (diacritics folded).

    The sentence model learnt English: a task written in Cyrillic, Han, kana or Hangul gets
    cosines that say little, and the words ranker, with its lexicon in those scripts, should
    decide; a task in the Latin script keeps the whole weight. Measured over the 20 sets with
    meaning (2026-12-04): 5 more tasks first and 2 more in the first five."""
    letters = [ch for ch in query if ch.isalpha()]
    if not letters:
        return WEIGHT
    latin = sum(ch.isascii() or unicodedata.normalize("NFD", ch)[0].isascii() for ch in letters)
    return WEIGHT * latin / len(letters)


def fuse(
    words: Sequence[Hit],
    near: Sequence[tuple[DocKey, float]],
    cosine: Mapping[DocKey, float],
    weight: float = WEIGHT,
) -> list[Hit]:
    """One ranking from the word ranking's hits (`words`, best first) and the closest tools in
    meaning (`near`): each candidate scores its word score over the best one, plus `weight`
    (WEIGHT, or `meaning_weight` of the query) times its cosine above FLOOR (`cosine` holds every
    candidate's). Ties by key. A tool the query named (`Hit.named`) stays ahead of the others, in
    the word ranking's order (a name as spelled before its reading as server and name).

    Normalising by the best word score keeps the mix independent of a query's length and of the
    corpus statistics, which differ between views; the cosine is a function of the tool and the
    query alone."""
    top = words[0].score if words and words[0].score > 0.0 else 1.0
    lexical = {hit.key: hit.score / top for hit in words}
    named = {hit.key: place for place, hit in enumerate(h for h in words if h.named)}
    candidates = set(lexical) | {key for key, _ in near}
    scored = [
        Hit(key, lexical.get(key, 0.0) + weight * max(0.0, cosine.get(key, 0.0) - FLOOR), key in named)
        for key in candidates
    ]
    scored.sort(key=lambda hit: (named.get(hit.key, len(named)), -hit.score, hit.key))
    return scored
