"""An incremental, visibility-aware BM25F index over MCP tool definitions.

Scoring is BM25F: a document's terms carry a weighted term frequency summed over fields (tool name,
title, description, parameter names and descriptions, server name and instructions, and capability
tags inferred from the name and description), saturated once per term with a length normalisation
against a fixed pivot length. The query adds capability tags and abbreviation expansions of its own
(``LEXICON``), and its words' neighbours in meaning as light extra terms (``neighbours.py``). The
best candidates are then re-scored by how much of the tool's *name* the query covers, whether the
query names the tool's server, and whether the tool fits what the task does: reads for a question,
writes for a change (by its name's verb or its readOnlyHint), takes an input when the task gives a
value, and names one item or many as the task does.

No leaks: the only corpus statistics in a score are the number of visible documents and the
document frequencies of terms among them; both are counted over the visible documents only (the
length normalisation uses a constant pivot, not a corpus average). A hidden document therefore
changes neither the results nor the scores of a search. Per-view aggregates are cached under a
caller-supplied opaque token (or the frozenset of visible keys) and kept up to date incrementally
when servers register or leave.

Determinism: everything is a function of the visible definitions and the query; terms are visited
in (document frequency, term) order and ties are broken by key, so every replica answers the same
query with the same hits and the same float scores, whatever the order of registrations.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .acronyms import name_terms as acronym_terms
from .intent import ACTIONS, lists, name_verb, nouns_by_number, reads, writes
from .lexicon import LEXICON, Lexicon
from .neighbours import Neighbours, default_neighbours
from .query import Query, QueryReader, pairs
from .schema import schema_params
from .text import analyze, split_identifier, stem
from .unknown_words import UnknownWords
from .weights import Weights

__all__ = ["DocKey", "Hit", "SearchIndex", "Visibility", "Weights"]

DocKey = tuple[str, str]
"""(server, tool name) as the backend lists it."""

Visibility = frozenset[DocKey] | Callable[[DocKey], bool] | None

_FIRST_SENTENCE = re.compile(r"(?<=[.!?])\s|\n\s*\n")
# a word that links a tool name's verb phrase to what follows it (subscribe_contact_to_list)
_NAME_LINK = re.compile(r"[\s_-](?:to|from|by|for|in|on|with|of|at|into|as|and)(?=$|[\s_-])", re.I)
# what a server's code, not its tool, put in a name: a function's suffix (`stock_overview_tool`,
# `create_campaign_tool_wrapper`) or an API version (`VPS_getDataCenterListV1`)
_NAME_BOILERPLATE = re.compile(
    r"(?<=[A-Za-z0-9])(?:[_-](?:[Tt]ool(?:[_-][Ww]rapper)?|[Ww]rapper|[vV]\d+)|(?<=[a-z])V\d+)$"
)


def _core_name(name: str) -> str:
    """A tool's name without the boilerplate of the code that defines it (`_NAME_BOILERPLATE`)."""
    return _NAME_BOILERPLATE.sub("", name)


@dataclass(frozen=True, slots=True)
class Hit:
    key: DocKey
    score: float
    named: bool = False  # the query spelled out the tool's name: it goes first (`spelled_names`)


@dataclass(slots=True)
class _Doc:
    key: DocKey
    length: float
    terms: dict[str, float]
    server_terms: frozenset[str] = frozenset()
    # The parts only re-scoring reads, made when the document first reaches a candidate pool (most
    # never do, and a registration stays cheap): the words of the tool's name as (stem, {stem} |
    # its capability tags), and the stems and tags of the name, title and first sentence of the
    # description (the summary). `source` is the definition they are made from, until then.
    source: Mapping[str, Any] | None = None
    name_units: tuple[tuple[str, frozenset[str]], ...] = ()
    # the tags of its name's verb (`intent.name_verb`), found before a word that links the verb
    # phrase to what follows: in subscribe_contact_to_list, "list" is no verb of the name's
    verb: frozenset[str] = frozenset()
    head_terms: frozenset[str] = frozenset()
    # pairs of words near each other in its name, title and the head of its description (`pairs`)
    head_pairs: frozenset[frozenset[str]] = frozenset()
    # the stems of the name's plural words and of its other words (`intent.nouns_by_number`)
    number: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
    takes_nothing: bool = False  # its input schema has no properties: it cannot be given a value
    read_only: bool | None = None  # its annotations' readOnlyHint, if it has one


@dataclass(slots=True)
class _View:
    """Aggregates over one visibility: kept current by put_server/remove_server."""

    ids: set[int] | None  # None: every document
    predicate: Callable[[DocKey], bool] | None  # how a new document's visibility is decided
    keys: frozenset[DocKey] | None
    n: int
    df: dict[str, int] = field(default_factory=dict)  # lazily counted document frequencies

    def admits(self, key: DocKey) -> bool:
        if self.keys is not None:
            return key in self.keys
        return self.predicate is None or self.predicate(key)


def _idf(n: int, df: int) -> float:
    """BM25's inverse document frequency of a term `df` of `n` visible documents have."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


# how many words of tools' names `SearchIndex._is_action` remembers before it starts over
_ACTIONS_REMEMBERED = 65536

_SERVER_PREFIX = 4  # the shortest server name a longer name of a product is read as

# a task with a digit gives a value (an ID, a number, a date) some tool must take
_GIVES_A_VALUE = re.compile(r"\d")


class SearchIndex:
    """Tool search index; see the module docstring.

    ``put_server`` replaces one server's tools; ``remove_server`` drops them. ``search`` ranks the
    visible tools for a query.
    """

    def __init__(
        self,
        weights: Weights | None = None,
        lexicon: Lexicon | None = None,
        view_cache_size: int = 64,
        neighbours: Neighbours | None = None,
    ) -> None:
        self.weights = weights or Weights()
        self.lexicon = lexicon or LEXICON
        self.neighbours = neighbours if neighbours is not None else default_neighbours()
        self.neighbours.knows("")  # its stems are made now (once per table), not in a first search
        self._docs: dict[int, _Doc] = {}
        self._ids: dict[DocKey, int] = {}
        self._by_server: dict[str, list[int]] = {}
        self._server_terms: dict[str, set[str]] = {}  # a word of servers' names -> those servers
        self._by_name: dict[str, list[int]] = {}  # a tool's name folded to lower case -> its docs
        # term -> {doc id: saturated, length-normalised weighted term frequency}
        self._postings: dict[str, dict[int, float]] = {}
        # typos, katakana loanwords and cognates, read against the terms
        self._unknown = UnknownWords()
        self._next_id = 0
        self._all = _View(ids=None, predicate=None, keys=None, n=0)
        self._views: OrderedDict[Hashable, _View] = OrderedDict()
        self._view_cache_size = view_cache_size
        self._reader = QueryReader(self.weights, self.lexicon, self.neighbours)
        self._actions: dict[str, bool] = {}  # a name's word -> whether it is a verb (`_is_action`)

    # ---- catalogue ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def keys(self) -> list[DocKey]:
        return sorted(self._ids)

    def put_server(self, server: str, instructions: str | None, tools: Sequence[Mapping[str, Any]]) -> None:
        """Index (or re-index) every tool of ``server``; the previous registration is replaced."""
        self._drop(server)
        w = self.weights
        server_terms = analyze(server)
        instr_terms = analyze(instructions or "")[: w.instructions_words]
        # every tool is analysed before any is indexed: a definition the analysis cannot read
        # leaves the index as it was without the server, not half-written
        docs: list[_Doc] = []
        seen: set[DocKey] = set()
        for tool in tools:
            name = str(tool.get("name", ""))
            key = (server, name)
            if not name or key in seen:
                continue
            seen.add(key)
            doc = self._analyse(tool, name, server_terms, instr_terms)
            doc.key = key
            docs.append(doc)
        ids: list[int] = []
        k1, b, pivot = w.k1, w.b, w.pivot
        for doc in docs:
            key, name = doc.key, doc.key[1]
            doc_id = self._next_id
            self._next_id += 1
            self._docs[doc_id] = doc
            self._ids[key] = doc_id
            self._by_name.setdefault(name.lower(), []).append(doc_id)
            ids.append(doc_id)
            norm = k1 * (1.0 - b + b * doc.length / pivot)
            for term, tf in doc.terms.items():
                sat = tf / (tf + norm)
                plist = self._postings.get(term)
                if plist is None:
                    self._postings[term] = {doc_id: sat}
                    self._unknown.term_added(term)
                else:
                    plist[doc_id] = sat
            for view in self._all_views():
                if view.ids is None or view.admits(key):
                    if view.ids is not None:
                        view.ids.add(doc_id)
                    view.n += 1
                    df = view.df
                    for term in doc.terms:
                        if term in df:
                            df[term] += 1
        if ids:
            self._by_server[server] = ids
            for term in docs[0].server_terms:
                self._server_terms.setdefault(term, set()).add(server)

    def remove_server(self, server: str) -> None:
        self._drop(server)

    def _all_views(self) -> Iterable[_View]:
        yield self._all
        yield from self._views.values()

    def _drop(self, server: str) -> None:
        ids = self._by_server.get(server)
        if ids:
            for term in self._docs[ids[0]].server_terms:
                named = self._server_terms[term]
                named.discard(server)
                if not named:
                    del self._server_terms[term]
        for doc_id in self._by_server.pop(server, ()):
            doc = self._docs.pop(doc_id)
            del self._ids[doc.key]
            same = self._by_name[doc.key[1].lower()]
            same.remove(doc_id)
            if not same:
                del self._by_name[doc.key[1].lower()]
            for term in doc.terms:
                plist = self._postings[term]
                del plist[doc_id]
                if not plist:
                    del self._postings[term]
                    self._unknown.term_removed(term)
            for view in self._all_views():
                if view.ids is None or doc_id in view.ids:
                    if view.ids is not None:
                        view.ids.discard(doc_id)
                    view.n -= 1
                    df = view.df
                    for term in doc.terms:
                        if term in df:
                            df[term] -= 1

    def _analyse(
        self, tool: Mapping[str, Any], name: str, server_terms: list[str], instr_terms: list[str]
    ) -> _Doc:
        w = self.weights
        title, description = self._texts(tool)

        terms: dict[str, float] = {}
        length = 0.0

        def add(tokens: Iterable[str], weight: float, counts: bool = True) -> None:
            nonlocal length
            for t in tokens:
                terms[t] = terms.get(t, 0.0) + weight
                if counts:
                    length += weight

        desc_terms = analyze(description)
        name = _core_name(name)
        name_terms = analyze(name)
        add(name_terms, w.name)
        add(self.lexicon.expand(name), w.name * w.expansion)
        skip = set(server_terms)
        acronyms = acronym_terms(
            name, f"{title} {description}", lambda word: stem(word) in skip or self._is_action(word)
        )
        add(sorted(acronyms), w.acronym, counts=False)
        add(analyze(title), w.title)
        add(desc_terms[: w.head_words], w.description)
        add(self.lexicon.expand(" ".join(description.split()[: w.head_words])), w.description * w.expansion)
        add(desc_terms[w.head_words :], w.description_tail)
        # parameters behind a $ref or in anyOf variants count: only a schema without any takes nothing
        params = schema_params(tool.get("inputSchema"))
        for pname, pdesc in params:
            add(analyze(pname), w.param_name)
            add(analyze(" ".join(pdesc.split()[: w.max_param_words])), w.param_description)
        # A tool naming its own server says nothing that tells it apart from its siblings: the
        # server's words count once, as the server field, however often the tool repeats them.
        for t in server_terms:
            if t in terms:
                length -= terms.pop(t)
        add(server_terms, w.server)
        add(instr_terms, w.instructions, counts=False)
        # capability tags: each distinct tag counted once per source
        name_tags = set(self.lexicon.tags(name.replace("_", " ").replace("-", " ") + " " + title))
        head = " ".join(description.split()[: w.head_words])
        desc_tags = set(self.lexicon.tags(head)) - name_tags
        add(sorted(name_tags), w.tag_name, counts=False)
        add(sorted(desc_tags), w.tag_description, counts=False)
        return _Doc(
            key=("", ""),
            length=length,
            terms=terms,
            server_terms=frozenset(server_terms),
            source=tool,
            takes_nothing=not params,
        )

    def _is_action(self, word: str) -> bool:
        """Whether a word of a tool's name is a verb the lexicon knows (remembered: a catalog's
        names repeat a few verbs, and a registration analyses every tool)."""
        known = self._actions.get(word)
        if known is None:
            if len(self._actions) >= _ACTIONS_REMEMBERED:  # catalogs come and go: stay bounded
                self._actions.clear()
            known = self._actions[word] = bool(set(self.lexicon.tags(word)) & ACTIONS)
        return known

    def _texts(self, tool: Mapping[str, Any]) -> tuple[str, str]:
        """A definition's title and description (cut at ``max_description_words``)."""
        title = tool.get("title")
        annotations = tool.get("annotations")
        if not isinstance(title, str) and isinstance(annotations, Mapping):
            title = annotations.get("title")
        title = title if isinstance(title, str) else ""
        description = tool.get("description")
        description = description if isinstance(description, str) else ""
        return title, " ".join(description.split()[: self.weights.max_description_words])

    def _summarise(self, doc: _Doc) -> None:
        """Make the document's name units and summary terms (once; see ``_Doc``)."""
        tool, doc.source = doc.source, None
        if tool is None:
            return
        name = _core_name(doc.key[1])
        title, description = self._texts(tool)
        units = []
        for word in analyze(name):
            units.append((word, frozenset({word, *self.lexicon.tags(word)})))
        first = _FIRST_SENTENCE.split(description, maxsplit=1)[0]
        spaced = name.replace("_", " ").replace("-", " ")
        summary = " ".join([spaced, title, *first.split()[: self.weights.summary_words]])
        doc.name_units = tuple(units)
        split = split_identifier(name)
        linked = _NAME_LINK.search(split, 1)
        verb_phrase = units[: len(analyze(split[: linked.start()]))] if linked else units
        doc.verb = name_verb(verb_phrase, doc.server_terms)
        notes = tool.get("annotations")
        hint = notes.get("readOnlyHint") if isinstance(notes, Mapping) else None
        doc.read_only = hint if isinstance(hint, bool) else None
        # the name's nouns: without its server's name and its verb, which say nothing of number
        plural, singular = nouns_by_number(split_identifier(spaced))
        verb = next((w for w, _ in units if w not in doc.server_terms), None)
        doc.number = (plural - doc.server_terms, singular - doc.server_terms - {verb})
        doc.head_terms = frozenset(
            [*analyze(summary), *self.lexicon.expand(summary), *self.lexicon.tags(summary)]
        )
        near = " ".join([spaced, title, *description.split()[: self.weights.phrase_words]])
        doc.head_pairs = pairs(analyze(near), self.weights.phrase_window)

    # ---- queries --------------------------------------------------------------------------------

    def query_terms(self, query: str) -> tuple[tuple[str, float], ...]:
        """The weighted terms a query is matched with: its stems, abbreviation expansions, the
        English words inside its German compounds, inferred tags and its words' neighbours in
        meaning (what it dictates weighing less), sorted by term."""
        return self._reader.read(query).terms

    def _view(self, visible: Visibility, token: Hashable | None) -> _View:
        if visible is None:
            return self._all
        if isinstance(visible, frozenset):
            cache_key: Hashable | None = ("set", visible) if token is None else ("tok", token)
        else:
            cache_key = None if token is None else ("tok", token)
        if cache_key is not None:
            view = self._views.get(cache_key)
            if view is not None:
                self._views.move_to_end(cache_key)
                return view
        if isinstance(visible, frozenset):
            ids = {self._ids[k] for k in visible if k in self._ids}
            view = _View(ids=ids, predicate=None, keys=visible, n=len(ids))
        else:
            ids = {i for k, i in self._ids.items() if visible(k)}
            view = _View(ids=ids, predicate=visible, keys=None, n=len(ids))
        if cache_key is not None:
            self._views[cache_key] = view
            if len(self._views) > self._view_cache_size:
                self._views.popitem(last=False)
        return view

    def _df(self, term: str, view: _View) -> int:
        plist = self._postings.get(term)
        if not plist:
            return 0
        ids = view.ids
        if ids is None:
            return len(plist)
        df = view.df.get(term)
        if df is None:
            df = len(plist.keys() & ids) if len(plist) > len(ids) else sum(1 for d in plist if d in ids)
            view.df[term] = df
        return df

    def search(
        self,
        query: str,
        limit: int = 5,
        visible: Visibility = None,
        server: str | None = None,
        token: Hashable | None = None,
        names: Mapping[str, DocKey] | None = None,
    ) -> list[Hit]:
        """Best ``limit`` visible tools for ``query``, best first; ties broken by key.

        ``visible``: ``None`` (everything), a frozenset of keys, or a predicate over keys. Pass an
        opaque ``token`` that identifies the visibility (e.g. a policy version) to let per-view
        aggregates be cached across queries; the same token must always mean the same visibility.
        ``server`` restricts the results (not the statistics) to one server. ``names``: the
        names, folded to lower case, the caller sees tools under where they differ from the
        tools' own (an override renamed them), so that such a name spelled out finds its tool.
        """
        if limit <= 0:
            return []
        view = self._view(visible, token)
        n = view.n
        if n == 0:
            return []
        ids = view.ids
        w = self.weights
        terms = []
        parsed = self._reader.read(query)
        query_terms, near, typos = parsed.terms, parsed.near, parsed.typos
        for term, qw in query_terms:
            df = self._df(term, view)
            if df:
                terms.append((term in near, df, term, qw))
        fixed: list[tuple[str, int]] = []
        if (typos and w.typo) or (parsed.cognates and w.cognate):
            # words no visible tool has, read as words some have (`unknown_words.py`)
            def visible_df(term: str) -> int:
                return self._df(term, view)

            have = {t for t, _ in query_terms}
            if typos and w.typo:
                fixed = self._unknown.typos(typos, visible_df, have)
                terms.extend((False, df, term, w.typo) for term, df in fixed)
            if parsed.cognates and w.cognate:
                cognates = self._unknown.cognates(parsed.cognates, visible_df, have)
                terms.extend((False, df, term, w.cognate * share) for term, df, share in cognates)
        if parsed.proper and w.server_prefix:
            found = self._server_prefixes(parsed.proper, view, {t for _, _, t, _ in terms})
            fixed.extend(found)
            terms.extend((False, df, term, w.server_prefix) for term, df in found)
        # the query's own terms first (rarest first), then its neighbours'
        terms.sort()
        acc = self._accumulate(terms, n, ids)
        named = self._spelled(parsed.spelled, ids, server, names) if parsed.spelled else {}
        if not acc and not named:
            return []
        docs = self._docs
        if server is not None:
            acc = {d: s for d, s in acc.items() if docs[d].key[0] == server}
        k = limit + len(named)  # named tools go first; the others fill the page
        if w.name_cover or w.server_mention or w.summary_cover:
            rescored = self._rescore(acc, query, parsed, terms, fixed, view)
            best = self._top(rescored, k)
            if k > len(best):
                # below the pool, raw order, each scored at most the pool's lowest: a re-scored
                # hit the intent rules lowered may score under its raw score, and under the raw
                # score of a tool outside the pool, which still comes after it
                floor = min(rescored.values(), default=math.inf)
                rest = {d: sc for d, sc in acc.items() if d not in rescored}
                best += [(d, min(sc, floor)) for d, sc in self._top(rest, k - len(best))]
        else:
            rescored = {}
            best = self._top(acc, k)
        if named:
            best = self._named_first(best, named, rescored, acc)
        return [Hit(docs[d].key, s, d in named) for d, s in best[:limit]]

    def _server_prefixes(self, proper: frozenset[str], view: _View, have: set[str]) -> list[tuple[str, int]]:
        """The visible servers' names that a name of the task no visible tool has begins with
        ("Sberbank": sber, "Garminconnect": garmin), each with its count of visible tools: a
        product is often called by a longer name than its server's. Neither the name nor the
        server's may be a common English word: "Timekeeping" names no server "time"."""
        found: list[tuple[str, int]] = []
        ids = view.ids
        names = self._server_terms
        for word in sorted(proper):
            if len(word) < _SERVER_PREFIX + 2 or not word.isalpha():
                continue
            # the dictionary first: most names begin with no server's name, and then nothing is stemmed
            for end in range(len(word) - 2, _SERVER_PREFIX - 1, -1):
                servers = names.get(word[:end])
                if not servers:
                    continue
                prefix = word[:end]
                if self._df(word, view) or self.neighbours.knows(word):
                    break
                if prefix in have or self.neighbours.knows(prefix):
                    continue
                df = self._df(prefix, view)  # 0 if no visible tool has it (a server field weighed 0)
                if df and (ids is None or any(d in ids for s in servers for d in self._by_server[s])):
                    have.add(prefix)
                    found.append((prefix, df))
                    break
        return found

    def _accumulate(
        self, terms: list[tuple[bool, int, str, float]], n: int, ids: set[int] | None
    ) -> dict[int, float]:
        """BM25F over the visible documents: each term's postings weighted by its idf, in the order
        given. Past `min_candidates` a common term or a neighbour only re-scores the candidates
        found so far (a neighbour must not take a candidate's place from the query's own words)."""
        w = self.weights
        acc: dict[int, float] = {}
        get = acc.get
        common = w.common * n
        for is_near, df, term, qw in terms:
            plist = self._postings[term]
            wq = qw * _idf(n, df)
            if (is_near or df > common) and len(acc) >= w.min_candidates:
                if len(acc) <= len(plist):
                    for d in acc:
                        s = plist.get(d)
                        if s is not None:
                            acc[d] += wq * s
                else:
                    for d, s in plist.items():
                        if d in acc:
                            acc[d] += wq * s
            elif ids is None:
                if acc:
                    for d, s in plist.items():
                        acc[d] = get(d, 0.0) + wq * s
                else:
                    acc = {d: wq * s for d, s in plist.items()}
                    get = acc.get
            else:
                for d, s in plist.items():
                    if d in ids:
                        acc[d] = get(d, 0.0) + wq * s
        return acc

    def _top(self, items: dict[int, float], k: int) -> list[tuple[int, float]]:
        """The k best by score, then every item tied with the k-th, ordered by (score, key): the
        result does not depend on the dict's insertion order."""
        docs = self._docs

        def order(kv: tuple[int, float]) -> tuple[float, DocKey]:
            return (-kv[1], docs[kv[0]].key)

        if len(items) > k:
            floor = heapq.nlargest(k, items.values())[-1]
            return sorted([kv for kv in items.items() if kv[1] >= floor], key=order)[:k]
        return sorted(items.items(), key=order)

    def _rescore(
        self,
        acc: dict[int, float],
        query: str,
        parsed: Query,
        terms: list[tuple[bool, int, str, float]],
        fixed: list[tuple[str, int]],
        view: _View,
    ) -> dict[int, float]:
        """The best `rerank` candidates (a fixed pool, whatever the limit: the first k hits do not
        depend on the limit asked), each score times how much of the tool's name and summary the
        query covers, whether it names the tool's server, and the intent rules."""
        w = self.weights
        n = view.n
        cover, mention, summary = w.name_cover, w.server_mention, w.summary_cover
        qset = frozenset([*(t for t, _ in parsed.terms), *(t for t, _ in fixed)])
        # a server named only inside a quote or dictated text is no server the task means
        mentioned = parsed.mentioned.union(t for t, _ in fixed) if fixed else parsed.mentioned
        qidf = [(term, qw * _idf(n, df)) for _, df, term, qw in terms]
        qmass = math.fsum(x for _, x in qidf)
        rescored: dict[int, float] = {}
        asking = w.question_write > 0.0 and parsed.question
        gives_a_value = _GIVES_A_VALUE.search(query) is not None
        docs = self._docs
        for d, sc in self._top(acc, w.rerank):
            doc = docs[d]
            if doc.source is not None:
                self._summarise(doc)
            factor = 1.0 + cover * self._name_coverage(doc, qset, view)
            if summary and qmass > 0.0:
                head = doc.head_terms
                factor *= 1.0 + summary * math.fsum(x for t, x in qidf if t in head) / qmass
            if w.phrase and parsed.pairs:
                # words of the task that stand together in the tool's text too ("credit notes")
                together = len(parsed.pairs & doc.head_pairs)
                if together:
                    factor *= 1.0 + w.phrase * min(together, w.phrase_pairs)
            if mention and not doc.server_terms.isdisjoint(mentioned):
                proper = not doc.server_terms.isdisjoint(parsed.proper)
                factor *= 1.0 + (w.proper_mention if proper else mention)
            # a tool writes or reads by its name's verb, or else by its annotations' hint
            if asking and (doc.read_only is False or writes(doc.verb)):
                factor *= 1.0 - w.question_write
            if parsed.change and w.change_read and (doc.read_only is True or reads(doc.verb)):
                factor *= 1.0 - w.change_read
            if w.number_agree:
                plural, singular = doc.number
                qp, qs = parsed.number
                agree = bool((plural & qp) or (singular & qs))
                clash = bool((plural & qs) or (singular & qp))
                if clash and not agree:
                    factor *= 1.0 - w.number_agree
            if w.no_input and doc.takes_nothing and gives_a_value:
                factor *= 1.0 - w.no_input
            if parsed.one and w.one_item_list and lists(doc.verb):
                factor *= 1.0 - w.one_item_list
            rescored[d] = sc * factor
        return rescored

    def _named_first(
        self,
        best: list[tuple[int, float]],
        named: dict[int, int],
        rescored: dict[int, float],
        raw: dict[int, float],
    ) -> list[tuple[int, float]]:
        """The tools the query named ahead of every other hit, by the place of the reading that
        found each (`_spelled`: a token whole before its reading as server and name, so
        `wikipedia_get_summary` is that tool before wikipedia's `get_summary`), then by score
        (re-scored, or raw outside the re-scored pool); scores stay in the page's order."""
        docs = self._docs
        lead = max((sc for d, sc in best if d not in named), default=0.0)
        boosted = {d: lead + rescored.get(d, raw.get(d, 0.0)) for d in named}
        ranked = sorted(named, key=lambda d: (named[d], -boosted[d], docs[d].key))
        first: list[tuple[int, float]] = []
        at_least = lead  # from the last named hit up: each scores at least the one after it
        for d in reversed(ranked):
            at_least = max(at_least, boosted[d])
            first.append((d, at_least))
        first.reverse()
        return [*first, *(kv for kv in best if kv[0] not in named)]

    def _spelled(
        self,
        spelled: tuple[tuple[str, str], ...],
        ids: set[int] | None,
        server: str | None,
        names: Mapping[str, DocKey] | None,
    ) -> dict[int, int]:
        """The visible tools among the names a query spells out (`spelled_names`): a tool's own
        name, the router's exposed name, or a name the caller sees it under (``names``); each
        with the place of the first reading that found it (the whole token reads first)."""
        found: dict[int, int] = {}
        by_name, docs = self._by_name, self._docs
        for place, (spelled_server, name) in enumerate(spelled):
            key = names.get(name) if names and not spelled_server else None
            if key is not None and (server is None or key[0] == server):
                d = self._ids.get(key)
                if d is not None and (ids is None or d in ids):
                    found.setdefault(d, place)
            for d in by_name.get(name, ()):
                key = docs[d].key
                if (
                    (not spelled_server or key[0].lower() == spelled_server)
                    and (server is None or key[0] == server)
                    and (ids is None or d in ids)
                ):
                    found.setdefault(d, place)
        return found

    def _name_coverage(self, doc: _Doc, qset: frozenset[str], view: _View) -> float:
        """Share (idf-weighted over the view) of the tool name's words that the query covers, by
        the word itself or by one of its capability tags."""
        total = hit = 0.0
        flat = 1.0 - self.weights.cover_flat
        n = view.n
        for word, alts in doc.name_units:
            df = self._df(word, view)
            w = _idf(n, df) ** flat
            total += w
            if not alts.isdisjoint(qset):
                hit += w
        return hit / total if total > 0.0 else 0.0
