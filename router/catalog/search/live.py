"""The search index that follows the catalog: one per replica, updated as each new Index arrives.

`follow(index)` compares the new Index's servers with the ones indexed by identity (a server whose
lists did not change keeps its `Definitions` object), so one server's registration re-indexes that
server only. Documents are keyed by (server, the backend's tool name); the name an agent calls is
looked up in the current Index, whose reverse map (target -> exposed name) is built once per Index.

Visibility is the caller's: `shown(key)`, the name it sees a tool under (None: hidden), with a
`token` that names it for as long as it decides alike (a policy view), so the ranker keeps that view's corpus statistics up to date
incrementally instead of recounting them. A tool the Index withholds (a name two servers share)
is invisible to everyone. Every replica builds the same index from the same catalog and ties break
by key, so each answers a query the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from router.catalog.index import Definitions, Index, Target
from router.catalog.search.fusion import NEAREST, WORDS, MeaningIndex, fuse, meaning_weight
from router.catalog.search.index import DocKey, SearchIndex

log = logging.getLogger("toolmesh.search")

Shown = Callable[[DocKey], str | None]
"""The name the caller sees a tool (server, backend name) under; None if it may not use it."""


@dataclass(frozen=True, slots=True)
class Found:
    """One search result: the name the caller sees, where it leads, its definition as the Index
    lists it, its score."""

    name: str
    target: Target
    item: dict[str, Any]
    score: float


class LiveSearch:
    def __init__(self, ranker: SearchIndex | None = None, meanings: MeaningIndex | None = None) -> None:
        self.ranker = ranker if ranker is not None else SearchIndex()
        self.meanings = meanings  # the tools' vectors by meaning (tools_semantic), or None
        self._servers: dict[str, Definitions] = {}
        self._index: Index | None = None
        self._exposed: dict[DocKey, str] | None = None
        # Per server: its Definitions and their tools by the backend's name.
        self._items: dict[str, tuple[Definitions, dict[str, dict[str, Any]]]] = {}

    @property
    def index(self) -> Index | None:
        """The Index the search follows now."""
        return self._index

    def follow(self, index: Index) -> None:
        """Bring the ranker up to `index`: re-index changed servers, drop removed ones."""
        if index is self._index:
            return
        self._index, self._exposed = index, None  # the ranker's predicates read the new index
        gone = sorted(set(self._servers) - set(index.servers))
        for server in gone:
            self.ranker.remove_server(server)
            self._items.pop(server, None)
        changed = False
        for server, defs in sorted(index.servers.items()):
            old = self._servers.get(server)
            if old is not defs:
                try:
                    self.ranker.put_server(server, defs.instructions, defs.tools)
                except Exception:  # a definition the ranker cannot read must not stop the others
                    log.exception("search: cannot index the tools of %s; they are left out of search", server)
                    self.ranker.remove_server(server)
                changed = changed or old is None or old.tools != defs.tools
        self._servers = dict(index.servers)
        if self.meanings is not None and (gone or changed):
            self.meanings.follow({server: defs.tools for server, defs in self._servers.items()})

    def exposed(self, key: DocKey) -> str | None:
        """The name the current Index exposes (server, tool) under; None if it withholds it.

        The naming policy's name is checked against the Index (O(1)); only a name it had to
        change (two servers' names met) needs the reverse map, built once per Index then."""
        index = self._index
        if index is None:
            return None
        server, name = key
        candidate = index.naming.expose(server, name)
        target = index.tools.get(candidate)
        if target is not None and target.server == server and target.name == name:
            return candidate
        table = self._exposed
        if table is None:
            table = self._exposed = {(t.server, t.name): exposed for exposed, t in index.tools.items()}
        return table.get(key)

    def item(self, name: str) -> dict[str, Any] | None:
        """The listed definition of an exposed tool name in the current Index."""
        index = self._index
        target = index.tools.get(name) if index is not None else None
        if index is None or target is None:
            return None
        defs = index.servers[target.server]
        cached = self._items.get(target.server)
        if cached is None or cached[0] is not defs:
            cached = (defs, {str(item.get("name")): item for item in defs.tools})
            self._items[target.server] = cached
        item = cached[1].get(target.name)
        if item is None:
            return None
        return item if name == target.name else {**item, "name": name}

    def search(
        self,
        index: Index,
        query: str,
        limit: int,
        shown: Shown | None = None,
        token: Hashable = None,
        server: str | None = None,
        meaning: Any = None,
        names: Mapping[str, DocKey] | None = None,
    ) -> list[Found]:
        """The best `limit` tools the caller may use, best first (ties by key).

        `shown(key)` is the name the caller sees a tool under, None for a tool it may not use;
        None means every tool the Index lists, under its exposed name. With `shown`, `token` must
        name the visibility it decides (the same token, the same decisions) so its statistics are
        kept between queries. `meaning`: the query's vector (`meanings.embed(query)`), to rank by
        words and meaning together once every tool has its vector (by words alone until then).
        `names`: the names `shown` gives that are not the tools' exposed names, folded to lower
        case, so that a task spelling one out finds its tool (`SearchIndex.search`)."""
        self.follow(index)
        see = shown if shown is not None else self.exposed
        meanings = self.meanings if meaning is not None else None
        pool = max(limit, WORDS) if meanings is not None else limit
        if shown is None and not index.conflicts:
            hits = self.ranker.search(query, pool, server=server)
        else:
            conflicts = tuple(sorted(c.name for c in index.conflicts if c.kind == "tools"))
            hits = self.ranker.search(
                query,
                pool,
                visible=lambda key: see(key) is not None,
                server=server,
                token=(token, conflicts),
                names=names,
            )
        if meanings is not None:

            def admit(key: DocKey) -> bool:
                return (server is None or key[0] == server) and see(key) is not None

            near = meanings.nearest(meaning, admit, NEAREST)
            if near is not None:
                cosine = meanings.cosines(meaning, [*(hit.key for hit in hits), *(key for key, _ in near)])
                hits = fuse(hits, near, cosine, meaning_weight(query))
            hits = hits[:limit]
        found = []
        for hit in hits:
            name, exposed = see(hit.key), self.exposed(hit.key)
            item = self.item(exposed) if exposed is not None else None
            if name is not None and item is not None:
                found.append(Found(name, Target(*hit.key), item, hit.score))
        return found
