"""The aggregated index: every server's definitions merged under exposed names.

Built once per change (a backend connected, left, or sent list_changed), never per request:
list requests are served from `pages()`, whose JSON is serialized once per generation, and a call
resolves its name with one dict lookup. Servers are merged in name order so that the result does
not depend on which backend answered first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from router.catalog.naming import NamingPolicy

log = logging.getLogger("toolmesh.catalog")

ListKind = Literal["tools", "prompts", "resources", "resourceTemplates"]
LIST_KINDS: tuple[ListKind, ...] = ("tools", "prompts", "resources", "resourceTemplates")


@dataclass(frozen=True, slots=True)
class Definitions:
    """What one server offers, as its raw JSON list items, plus its capabilities, the
    `instructions` its `initialize` answered (tool search indexes them) and what the router
    repaired in its lists."""

    tools: tuple[dict[str, Any], ...] = ()
    prompts: tuple[dict[str, Any], ...] = ()
    resources: tuple[dict[str, Any], ...] = ()
    resource_templates: tuple[dict[str, Any], ...] = ()
    capabilities: Mapping[str, Any] = field(default_factory=dict)
    instructions: str | None = None
    # per list (its result key), the items the router had to repair or leave out
    # (router/catalog/wellformed.py); lists that needed none are absent
    repairs: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Target:
    """Where an exposed name leads: the server and the name that server knows."""

    server: str
    name: str


@dataclass(slots=True)
class Conflict:
    kind: ListKind
    name: str
    servers: tuple[str, ...]


class Index:
    """An immutable view; the router swaps in a new one on every change."""

    def __init__(self, naming: NamingPolicy, servers: Mapping[str, Definitions], generation: int = 0) -> None:
        self.naming = naming
        self.generation = generation
        self.servers = dict(servers)
        self.conflicts: list[Conflict] = []
        self.tools: dict[str, Target] = {}
        self.prompts: dict[str, Target] = {}
        self.resources: dict[str, Target] = {}
        self.templates: dict[str, str] = {}  # exposed uriTemplate -> server
        self._items: dict[ListKind, list[dict[str, Any]]] = {kind: [] for kind in LIST_KINDS}
        self._templates: list[tuple[re.Pattern[str], str, str]] = []  # (pattern, server, exposed)
        self._pages: dict[tuple[ListKind, int], list[bytes]] = {}
        self._add_named("tools", self.tools)
        self._add_named("prompts", self.prompts)
        for server in sorted(self.servers):
            self._add_resources(server, self.servers[server])
        self._drop_conflicts()

    # -- building -----------------------------------------------------------------------------

    def _add_named(self, kind: Literal["tools", "prompts"], table: dict[str, Target]) -> None:
        """Every server's tools (or prompts) under their exposed names, each computed once.

        Names may contain the separator, so two prefixed names can meet (server `a` with tool
        `b__c`, server `a__b` with tool `c`): each is then given a digest of its own (server,
        name), whatever the order. Without prefixes a shared name is a conflict, reported."""
        named = [
            (server, item, original, self.naming.expose(server, original))
            for server, defs in sorted(self.servers.items())
            for item in (defs.tools if kind == "tools" else defs.prompts)
            if isinstance(original := item.get("name"), str)
        ]
        shared: set[str] = set()
        if self.naming.prefix == "always":
            owners: dict[str, str] = {}
            for server, _, _, exposed in named:
                if owners.setdefault(exposed, server) != server:
                    shared.add(exposed)
        for server, item, original, candidate in named:
            exposed = candidate
            if exposed in shared or (exposed in table and table[exposed].server == server):
                exposed = self.naming.shorten(exposed, f"{server}\x00{original}")
            if exposed in table:
                self._conflict(kind, exposed, table[exposed].server, server)
                continue
            table[exposed] = Target(server, original)
            self._items[kind].append(item if exposed == original else {**item, "name": exposed})

    def _add_resources(self, server: str, defs: Definitions) -> None:
        for item in defs.resources:
            uri = item.get("uri")
            if not isinstance(uri, str):
                continue
            exposed = self.naming.expose_uri(server, uri)
            if exposed in self.resources:
                self._conflict("resources", exposed, self.resources[exposed].server, server)
                continue
            self.resources[exposed] = Target(server, uri)
            self._items["resources"].append(item if exposed == uri else {**item, "uri": exposed})
        for item in defs.resource_templates:
            template = item.get("uriTemplate")
            if not isinstance(template, str):
                continue
            exposed = self.naming.expose_uri(server, template)
            owner = self.templates.setdefault(exposed, server)
            if owner != server:  # only without prefixes: a namespaced template names its server
                self._conflict("resourceTemplates", exposed, owner, server)
                continue
            self._templates.append((_template_pattern(template), server, exposed))
            self._items["resourceTemplates"].append(
                item if exposed == template else {**item, "uriTemplate": exposed}
            )

    def _conflict(self, kind: ListKind, name: str, first: str, second: str) -> None:
        self.conflicts.append(Conflict(kind, name, (first, second)))

    def _drop_conflicts(self) -> None:
        """A name two servers share is withheld from both and reported: never silently shadowed."""
        if not self.conflicts:
            return
        tables: dict[ListKind, tuple[dict[str, Any], str]] = {
            "tools": (self.tools, "name"),
            "prompts": (self.prompts, "name"),
            "resources": (self.resources, "uri"),
            "resourceTemplates": (self.templates, "uriTemplate"),
        }
        for conflict in self.conflicts:
            log.error(
                "name offered by two servers is withheld; enable prefixing or rename one",
                extra={"kind": conflict.kind, "item": conflict.name, "servers": list(conflict.servers)},
            )
            tables[conflict.kind][0].pop(conflict.name, None)
        for kind, (table, attribute) in tables.items():
            self._items[kind] = [item for item in self._items[kind] if item[attribute] in table]
        # Without prefixes a template's URI is the backend's own: a read matching a template two
        # servers share could reach either, so it leads nowhere until one of them renames it.
        self._templates = [entry for entry in self._templates if entry[2] in self.templates]

    # -- reading ------------------------------------------------------------------------------

    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        return self._items[kind]

    def owner(self, kind: ListKind, item: dict[str, Any]) -> str | None:
        """The server a listed item belongs to."""
        if kind == "resourceTemplates":
            return self.templates.get(item["uriTemplate"])
        table = self.resources if kind == "resources" else self.tools if kind == "tools" else self.prompts
        target = table.get(item["uri" if kind == "resources" else "name"])
        return target.server if target is not None else None

    def pages(self, kind: ListKind, page_size: int) -> list[bytes]:
        """The list serialized as JSON arrays, one per page; computed once per index."""
        cache_key = (kind, page_size)
        pages = self._pages.get(cache_key)
        if pages is None:
            items = self._items[kind]
            size = page_size or max(len(items), 1)
            pages = [orjson.dumps(items[i : i + size]) for i in range(0, max(len(items), 1), size)]
            self._pages[cache_key] = pages
        return pages

    def resolve_uri(self, uri: str) -> Target | None:
        """The server that owns `uri`, by namespace, by listed resource, or by template."""
        split = self.naming.split_uri(uri)
        if split is not None:
            server, original = split
            return Target(server, original) if server in self.servers else None
        if uri in self.resources:
            return self.resources[uri]
        for pattern, server, _ in self._templates:
            if pattern.fullmatch(uri):
                return Target(server, uri)
        with_resources = [name for name, d in self.servers.items() if "resources" in d.capabilities]
        if self.naming.prefix == "never" and len(with_resources) == 1:
            return Target(with_resources[0], uri)
        return None

    def capability_union(self) -> dict[str, Any]:
        """What the aggregate supports: a capability is advertised if any server has it."""
        caps: dict[str, Any] = {"tools": {"listChanged": True}}
        for defs in self.servers.values():
            for name in ("resources", "prompts", "completions", "logging"):
                if name in defs.capabilities:
                    caps.setdefault(name, {})
        if "prompts" in caps:
            caps["prompts"] = {"listChanged": True}
        if "resources" in caps:
            caps["resources"] = {"listChanged": True}
            if any(_subscribable(defs.capabilities) for defs in self.servers.values()):
                caps["resources"]["subscribe"] = True
        return caps


def _subscribable(capabilities: Mapping[str, Any]) -> bool:
    resources = capabilities.get("resources")
    return isinstance(resources, dict) and bool(resources.get("subscribe"))


_EXPRESSION = re.compile(r"\{[^}]*\}")


def _template_pattern(template: str) -> re.Pattern[str]:
    """An RFC 6570 template as a regex: each `{...}` matches one or more characters."""
    parts = _EXPRESSION.split(template)
    return re.compile(".+?".join(re.escape(part) for part in parts))
