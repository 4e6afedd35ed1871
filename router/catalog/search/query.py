"""What a task says, whatever the catalog and the view: its weighted terms (stems, abbreviation
expansions, the English words inside German compounds, capability tags, neighbours in meaning,
what it dictates weighing less), the words that may be typos, loanwords or cognates, the tool
names it spells out, and what its intent rules need (a question, a leading change, one item,
plural or singular, the servers it names). ``SearchIndex`` reads each task text once through a
``QueryReader`` and keeps the result; which of the words count depends on the view, which is the
index's question.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from .acronyms import task_terms as acronym_terms
from .intent import dictated, is_question, leading_change, leading_verb, nouns_by_number
from .katakana import katakana_candidates
from .lexicon import Lexicon
from .literals import names_one_item, spelled_names, strip_patterns
from .neighbours import Neighbours
from .spelling import cognate_candidates, cyrillic_candidates, typo_candidates
from .text import analyze, stem, words
from .weights import Weights

__all__ = ["MAX_COGNATES", "MAX_LOANWORDS", "MAX_TYPOS", "Query", "QueryReader", "pairs"]

MAX_LOANWORDS = 4
"""A task's Cyrillic words, and apart its katakana words, read as English loanwords at most
(spelling.py, katakana.py)."""
MAX_TYPOS = 2
"""A task's words looked up as typos at most (each new one costs ~1 ms once; see spelling.py)."""
MAX_COGNATES = 4
"""A task's words of another language read as English stems they begin with, at most."""


class Query(NamedTuple):
    """What a query says, whatever the catalog and the view (made once per query text, then
    cached)."""

    terms: tuple[tuple[str, float], ...]  # its weighted terms, sorted by term
    near: frozenset[str]  # the terms only a neighbour in meaning brought
    typos: tuple[tuple[str, str], ...]  # words that may be typos or loanwords, with their stems
    spelled: tuple[tuple[str, str], ...]  # tool names it spells out (`spelled_names`)
    question: bool  # asked as a question (`intent.is_question`)
    proper: frozenset[str]  # stems of its words that read as names (`QueryReader.proper_names`)
    one: bool  # it names one item by an identifier (`literals.names_one_item`)
    number: tuple[frozenset[str], frozenset[str]]  # its (plural, singular) noun stems
    change: bool  # it starts with a verb that changes something (`intent.leading_change`)
    cognates: tuple[tuple[str, str], ...]  # words of another language that may begin with an English stem
    mentioned: frozenset[str]  # stems that may name a server: outside what it dictates or quotes
    pairs: frozenset[frozenset[str]]  # its near pairs of words (`pairs`)


# a product name written in PascalCase ("WordPress", "HubSpot", "YouTube"): a task means the whole
# name, so its parts (word, press) weigh `Weights.brand_part` of a word of their own; an identifier
# that starts lower case (getPullRequestFiles) is no product name
_PASCAL = re.compile(r"(?<![\w-])[A-Z][a-z]+(?:[A-Z][a-z]+)+(?![\w-])")

_RAW_TOKEN = re.compile(r"[^\W\d_]+|[.!?:]")


def _capitalised(text: str) -> frozenset[str]:
    """The words of a task, lower-cased, written with a capital inside a sentence ("in Sanity",
    "the Budget column"): names, whose neighbours in meaning are no part of it."""
    found: set[str] = set()
    previous = "."
    for raw in _RAW_TOKEN.findall(text):
        if raw[0].isupper() and previous[-1] not in ".!?:":
            found.add(raw.lower())
        previous = raw
    return frozenset(found)


# a name in single quotes ("the 'Stripe refunds -> Slack' workflow"): an apostrophe inside a word
# ("it's") opens none
_SINGLE_QUOTED = re.compile(r"(?<!\w)'[^'\n]{2,}?'(?!\w)")


def pairs(stems: Sequence[str], window: int) -> frozenset[frozenset[str]]:
    """The unordered pairs of distinct stems at most `window` places apart (stop words left out):
    "credit notes" and "notes of credit" both make {credit, note}. Words that stand together in
    a task and in a tool's text say more than the same words scattered (a phrase, the usual
    sequential-dependence idea in retrieval)."""
    return frozenset(
        frozenset((a, b)) for i, a in enumerate(stems) for b in stems[i + 1 : i + 1 + window] if a != b
    )


class QueryReader:
    """Reads task texts into ``Query`` values with a lexicon, a table of neighbours in meaning and
    the weights of what a task dictates, expands and implies; keeps the last ``cache_size``."""

    def __init__(
        self, weights: Weights, lexicon: Lexicon, neighbours: Neighbours, cache_size: int = 4096
    ) -> None:
        self.weights = weights
        self.lexicon = lexicon
        self.neighbours = neighbours
        self._cache: OrderedDict[str, Query] = OrderedDict()
        self._cache_size = cache_size

    def read(self, query: str) -> Query:
        """What ``query`` says (cached: the same text is read once)."""
        cached = self._cache.get(query)
        if cached is not None:
            return cached
        near: dict[str, float] = {}
        weights: dict[str, float] = {}
        text, pattern_tags = strip_patterns(query)
        for tag in pattern_tags:
            weights[tag] = weights.get(tag, 0.0) + self.weights.pattern_tag
        instruction, content = dictated(text)
        instruction = self.lexicon.rejoin_separable(instruction)
        question = is_question(query)
        verb = frozenset() if question else leading_verb(instruction, self.lexicon)
        names = _capitalised(text)
        self._add_terms(instruction, 1.0, weights, near, names)
        for t in acronym_terms(instruction, self._expands):
            weights[t] = weights.get(t, 0.0) + 1.0
        if content:
            self._add_terms(content, self.weights.dictated, weights, near, names)
        # a term only a neighbour brought (one part's neighbour may be the other part's own word)
        near = {t: x for t, x in near.items() if t not in weights}
        weights.update(near)
        typos = tuple(
            (word, stem(word))
            for word in typo_candidates(text)
            if not self.neighbours.knows(word)
            and not self.lexicon.tags(word)
            and not self.lexicon.expand(word)
        )[:MAX_TYPOS]
        typos += tuple(
            (word, stem(word)) for word in cyrillic_candidates(text) if not self.lexicon.tags(word)
        )[:MAX_LOANWORDS]
        typos += tuple(
            (word, word)
            for word in katakana_candidates(text)
            if not self.lexicon.tags(word) and not self.lexicon.expand(word)
        )[:MAX_LOANWORDS]
        result = Query(
            tuple(sorted(weights.items())),
            frozenset(near),
            typos,
            spelled_names(query),
            question,
            self.proper_names(text, names),
            names_one_item(query),
            nouns_by_number(instruction),
            leading_change(verb),
            tuple(
                (word, stem(word))
                for word in cognate_candidates(text)
                if not self.lexicon.tags(word) and not self.lexicon.expand(word)
            )[:MAX_COGNATES],
            self._mentioned(instruction, content, weights),
            pairs(analyze(instruction), self.weights.phrase_window),
        )
        self._cache[query] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def _expands(self, word: str) -> bool:
        """Whether the lexicon reads ``word`` as a short form already (pr, kpi, k8s)."""
        return word in self.lexicon.abbreviations

    def _mentioned(self, instruction: str, content: str, terms: Mapping[str, float]) -> frozenset[str]:
        """The terms that may name a server: those of what a task asks, without what it dictates
        or names in single quotes ("rename the 'Stripe refunds -> Slack' workflow" names no
        Slack); the task's own terms if it has neither."""
        unquoted = _SINGLE_QUOTED.sub(" ", instruction)
        if not content and unquoted == instruction:
            return frozenset(terms)
        weights: dict[str, float] = {}
        near: dict[str, float] = {}
        self._add_terms(unquoted, 1.0, weights, near)
        return frozenset([*weights, *near])

    def _add_terms(
        self,
        text: str,
        scale: float,
        weights: dict[str, float],
        near: dict[str, float],
        names: frozenset[str] = frozenset(),
    ) -> None:
        """Add the weighted terms of one part of a task: its stems, abbreviation expansions, the
        English words inside its German compounds, inferred tags and its words' neighbours in
        meaning, each times `scale`."""
        for t in analyze(text):
            weights[t] = weights.get(t, 0.0) + scale
        for brand in _PASCAL.findall(text):
            whole = set(analyze(brand.lower()))
            for t in set(analyze(brand)) - whole:
                weights[t] = weights.get(t, 0.0) - (1.0 - self.weights.brand_part) * scale
        for t in self.lexicon.expand(text):
            weights[t] = weights.get(t, 0.0) + self.weights.expansion * scale
        for word in words(text):
            if (
                len(word) >= 10
                and word.isalpha()
                and not self.neighbours.knows(word)
                and not self.lexicon.tags(word)
            ):
                for t in self.lexicon.compound_parts(word):
                    weights[t] = weights.get(t, 0.0) + self.weights.expansion * scale
        tags = set(self.lexicon.tags(text))
        for tag in tags:
            weights[tag] = weights.get(tag, 0.0) + self.weights.query_tag * scale
        if self.weights.neighbour:
            # a neighbour counts once, by its closest source word, and never adds to a term the
            # query already has; a word of another language the glossary reads as English
            # ("明天会下雨吗": rain) brings that word's neighbours (rainfall, precipitation)
            sources = [w for w in words(text) if w not in names]  # "in Sanity": no sane, insane
            sources += sorted({w for tag in tags for w in self.lexicon.english.get(tag, ())})
            for word in sources:
                for other, similarity in self.neighbours.get(word):
                    x = self.weights.neighbour * similarity * scale
                    for t in analyze(other):
                        if t not in weights and x > near.get(t, 0.0):
                            near[t] = x

    def proper_names(self, text: str, capitalised: frozenset[str] | None = None) -> frozenset[str]:
        """Stems of the words of a task that read as names: capitalised inside a sentence
        ("in Notion"; `_capitalised`, passed in if already found), or no common English word
        ("hubspot", "clickhouse"). A server named by such a word is meant; one whose name is a
        common word ("email", "time", "monday") may be named in passing."""
        if capitalised is None:
            capitalised = _capitalised(text)
        found: set[str] = set()
        for raw in _RAW_TOKEN.findall(text):
            word = raw.lower()
            if word.isalpha() and (word in capitalised or not self.neighbours.knows(word)):
                found.update(analyze(word))
        return frozenset(found)
