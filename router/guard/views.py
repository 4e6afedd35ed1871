"""What one agent may see and use under the policy in force: `View` (a scope's rules, decisions
memoized, filtered list pages cached per index), `NamespaceView` (a view narrowed to a namespace),
`OPEN` (no policy: everything, at no cost), and the `Guard` that holds the policy and hands them
out. The rules themselves are explained in `policy.py`."""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import orjson

from router.catalog.capabilities import CapabilitySpec, ProviderSpec
from router.catalog.index import Index, ListKind, Target
from router.catalog.namespaces import Namespace
from router.catalog.overrides import Applied, Override
from router.guard.budgets import Budget
from router.guard.conditions import CallFacts, Condition, activation
from router.guard.policy import Policy
from router.guard.policy_document import KIND_OF_LIST, Kind, ToolsMode

log = logging.getLogger("toolmesh.guard")

MAX_VIEWS = 4096


# -- views --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Collision:
    """Overrides give one name to several tools (exposed catalog names); all are withheld."""

    name: str
    tools: tuple[str, ...]


@dataclass(slots=True)
class _Pages:
    generation: int
    pages: dict[tuple[ListKind, int], list[bytes]] = field(default_factory=dict)
    visible: dict[Kind, dict[str, Target]] = field(default_factory=dict)
    original: dict[str, str] = field(default_factory=dict)  # a renamed tool's catalog name
    withheld: set[str] = field(default_factory=set)  # catalog names of tools whose new names collide
    collisions: list[Collision] = field(default_factory=list)


def overrides_for(
    policy: Policy, groups: frozenset[str], namespace: str | None
) -> list[tuple[re.Pattern[str], Override]]:
    """The overrides that apply to a scope's groups at one endpoint (None: `/mcp`): those for
    everyone or one of the groups, and for every endpoint or this namespace."""
    return [
        (re.compile(fnmatch.translate(o.tool)), o)
        for o in policy.document.overrides
        if (not o.groups or groups.intersection(o.groups))
        and (not o.namespaces or (namespace is not None and namespace in o.namespaces))
    ]


@dataclass(frozen=True, slots=True)
class _CallRules:
    """The conditional rules that cover one tool in one view, and whether a plain allow does."""

    denies: tuple[Condition, ...]
    plain_allow: bool
    allows: tuple[Condition, ...]


class View:
    """One scope's view of the catalog: decisions memoized, filtered pages cached per index."""

    open = False
    namespace_name = ""  # the namespace it is narrowed to (usage records it); "" for `/mcp` itself

    def __init__(self, policy: Policy, scope: tuple[str, frozenset[str]]) -> None:
        agent, groups = scope
        self.default_allow = policy.document.default == "allow"
        self.rules = [policy.everyone, *(policy.groups[g] for g in sorted(groups) if g in policy.groups)]
        if agent in policy.agents:
            self.rules.append(policy.agents[agent])
        self.overrides = overrides_for(policy, groups, None)
        self.rego = policy.rego
        self.conditional = self.rego is not None or any(rules.conditional for rules in self.rules)
        self.capabilities = policy.document.capabilities
        self.groups = groups  # the policy's groups this scope is in (usage records them)
        # The budgets a call of this scope is checked against (none: no budget work at all).
        self.budgets: tuple[Budget, ...] = tuple(b for b in policy.budgets if b.applies(agent, groups))
        self._applied: dict[str, Applied | None] = {}
        self._decisions: dict[tuple[Kind, str, str], bool] = {}
        self._conditions: dict[tuple[str, str], _CallRules] = {}
        self._pages = _Pages(-1)
        # Names this view for caches that outlive one request (tool search): same key, same view.
        self.key: Hashable = (policy.generation, scope)
        document = policy.document
        entries = [
            *([document.agents[agent]] if agent in document.agents else []),
            *(document.groups[g] for g in sorted(groups) if g in document.groups),
            document.everyone,
        ]
        self.tools_mode: ToolsMode | None = next((e.tools_mode for e in entries if e.tools_mode), None)
        self.pinned: tuple[str, ...] = tuple(sorted({glob for e in entries for glob in e.pinned}))

    def allows(self, kind: Kind, server: str, name: str) -> bool:
        key = (kind, server, name)
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._decide(kind, server, name)
            if len(self._decisions) < 100_000:  # guessed names must not grow memory without bound
                self._decisions[key] = decision
        return decision

    def _decide(self, kind: Kind, server: str, name: str) -> bool:
        """The name-based decision (lists, search, resolving a call's name). A rule with a `when`
        applies to tool calls only: here a conditional allow counts (some call could be allowed)
        and a conditional deny does not (some call could pass it); `check_call` decides the rest."""
        if any(
            s.condition is None and s.matches(kind, server, name) for rules in self.rules for s in rules.deny
        ):
            return False
        if not (
            self.default_allow
            or any(
                (s.condition is None or kind == "tools") and s.matches(kind, server, name)
                for rules in self.rules
                for s in rules.allow
            )
        ):
            return False
        return kind != "tools" or self._enabled(name)

    def check_call(self, facts: CallFacts) -> str | None:
        """For a tool this view shows: None if its rules' conditions and the policy's Rego decision
        allow this call, else why not (for the audit record). The Rego decision on this thread."""
        denied = self._check_rules(facts)
        if denied is None and self.rego is not None:
            return self.rego.decide(facts)
        return denied

    async def check_call_within_budget(self, facts: CallFacts) -> str | None:
        """`check_call` as the router makes it: the Rego decision in a worker process, denied when
        its budget ends (guard/rego.py)."""
        denied = self._check_rules(facts)
        if denied is None and self.rego is not None:
            return await self.rego.decide_within_budget(facts)
        return denied

    def _check_rules(self, facts: CallFacts) -> str | None:
        """The `when` conditions. Costs a dict lookup when no conditional rule covers the tool."""
        key = (facts.server, facts.exposed)
        rules = self._conditions.get(key)
        if rules is None:
            rules = self._call_rules(facts.server, facts.exposed)
            if len(self._conditions) < 100_000:
                self._conditions[key] = rules
        if not rules.denies and rules.plain_allow:
            return None
        variables = activation(facts)
        for condition in rules.denies:
            holds = condition.holds(variables)
            if holds is True:
                return f"denied by {condition.rule} (its `when` holds)"
            if holds is not False:
                return str(holds)
        if rules.plain_allow:
            return None
        reasons = []
        for condition in rules.allows:
            holds = condition.holds(variables)
            if holds is True:
                return None
            if holds is not False:
                return str(holds)  # an allow that cannot be evaluated denies, with its reason
            reasons.append(condition.rule)
        return f"no allow rule holds for this call ({', '.join(reasons)}: `when` is false)"

    def _call_rules(self, server: str, name: str) -> _CallRules:
        denies = tuple(
            s.condition
            for r in self.rules
            for s in r.deny
            if s.condition is not None and s.matches("tools", server, name)
        )
        allows = tuple(
            s.condition
            for r in self.rules
            for s in r.allow
            if s.condition is not None and s.matches("tools", server, name)
        )
        plain = self.default_allow or any(
            s.condition is None and s.matches("tools", server, name) for r in self.rules for s in r.allow
        )
        return _CallRules(denies, plain, allows)

    def _enabled(self, name: str) -> bool:
        """What the last override that sets `enabled` for this tool says (True if none does)."""
        for pattern, override in reversed(self.overrides):
            if override.enabled is not None and pattern.match(name):
                return override.enabled
        return True

    def applied(self, name: str) -> Applied | None:
        """The overrides (beyond `enabled`) of the tool exposed by the catalog as `name`, merged."""
        if name in self._applied:
            return self._applied[name]
        applied = Applied.merge([o for pattern, o in self.overrides if pattern.match(name)])
        if len(self._applied) < 100_000:
            self._applied[name] = applied
        return applied

    def pages(self, index: Index, kind: ListKind, page_size: int) -> list[bytes]:
        cache = self._cache(index)
        key = (kind, page_size)
        pages = cache.pages.get(key)
        if pages is None:
            items = [self._present(kind, item) for item in self._visible_items(index, kind)]
            if kind == "tools" and self.capabilities:
                items += self._capability_tools(index)
            size = page_size or max(len(items), 1)
            pages = [orjson.dumps(items[i : i + size]) for i in range(0, max(len(items), 1), size)]
            cache.pages[key] = pages
        return pages

    def visible(self, index: Index, kind: Kind) -> dict[str, Target]:
        """The names this agent may use, as it sees them (renamed tools under their new name),
        and their targets: calls resolve here, and "did you mean" draws only from these."""
        cache = self._cache(index)
        table = cache.visible.get(kind)
        if table is None:
            source = {"tools": index.tools, "prompts": index.prompts, "resources": index.resources}[kind]
            table = {name: t for name, t in source.items() if self.allows(kind, t.server, name)}
            if kind == "tools" and self.overrides:
                table = self._renamed(cache, table)
            cache.visible[kind] = table
        return table

    def _renamed(self, cache: _Pages, table: dict[str, Target]) -> dict[str, Target]:
        """Apply `name` overrides. Two tools that would share a name are both withheld and the
        collision reported (as the index does for servers sharing a name)."""
        claims: dict[str, list[str]] = {}
        for name in table:
            applied = self.applied(name)
            claims.setdefault(applied.name if applied and applied.name else name, []).append(name)
        renamed: dict[str, Target] = {}
        for shown, originals in claims.items():
            if len(originals) == 1:
                renamed[shown] = table[originals[0]]
                cache.original[shown] = originals[0]
            else:
                cache.withheld.update(originals)
                collision = Collision(shown, tuple(sorted(originals)))
                if collision not in cache.collisions:
                    cache.collisions.append(collision)
                    log.warning(
                        "override gives two tools one name; both withheld",
                        extra={"exposed": shown, "tools": list(collision.tools)},
                    )
        return renamed

    def capability(
        self, index: Index, name: str
    ) -> tuple[CapabilitySpec, list[tuple[ProviderSpec, Target]]] | None:
        """The capability exposed as `name` and the providers this view may use, if any (a tool
        of the catalog visible under that name wins: the capability is then not exposed)."""
        spec = self.capabilities.get(name)
        if spec is None or not self._holds_capability(name) or name in self.visible(index, "tools"):
            return None
        usable = [
            (provider, target)
            for provider in spec.providers
            if (target := index.tools.get(provider.tool)) is not None
            and self.allows("tools", target.server, provider.tool)
        ]
        return (spec, usable) if usable else None

    def _holds_capability(self, name: str) -> bool:
        return True

    def _capability_tools(self, index: Index) -> list[dict[str, Any]]:
        """The capabilities this view exposes, as tool definitions: the capability's own schema
        or its first usable provider's, and its description or that provider's."""
        out = []
        definitions = {str(item["name"]): item for item in index.items("tools")}
        for name in self.capabilities:
            found = self.capability(index, name)
            if found is None:
                continue
            spec, usable = found
            first = definitions.get(usable[0][0].tool, {})
            tool: dict[str, Any] = {
                "name": name,
                "description": spec.description or first.get("description") or f"{name} (capability)",
                "inputSchema": spec.input_schema or first.get("inputSchema") or {"type": "object"},
            }
            if spec.title is not None:
                tool["title"] = spec.title
            out.append(tool)
        return out

    def collisions(self, index: Index) -> list[Collision]:
        """Names that overrides give to more than one tool in this view (both are withheld)."""
        self.visible(index, "tools")
        return list(self._cache(index).collisions)

    def catalog_name(self, index: Index, exposed: str) -> str:
        """The catalog's name of a tool this view shows as `exposed` (an override may rename)."""
        return self._cache(index).original.get(exposed, exposed) if self.overrides else exposed

    def arguments(self, index: Index, exposed: str, arguments: Any) -> Any:
        """A call's arguments as the backend gets them (overrides' hidden and default values); the
        same object when no override changes them. Raises RPCError for a hidden one sent."""
        if not self.overrides:
            return arguments
        cache = self._cache(index)
        applied = self.applied(cache.original.get(exposed, exposed))
        if applied is None or not applied.changes_arguments:
            return arguments
        return applied.arguments(exposed, arguments)

    def _cache(self, index: Index) -> _Pages:
        if self._pages.generation != index.generation or index.generation == 0:
            self._pages = _Pages(index.generation)
        return self._pages

    def _visible_items(self, index: Index, kind: ListKind) -> list[dict[str, Any]]:
        policy_kind = KIND_OF_LIST[kind]
        withheld: set[str] = set()
        if kind == "tools" and self.overrides:
            self.visible(index, "tools")  # renames decided first: colliding ones are withheld
            withheld = self._cache(index).withheld
        out = []
        for item in index.items(kind):
            owner = index.owner(kind, item)
            name = exposed_name(kind, item)
            if owner is not None and name not in withheld and self.allows(policy_kind, owner, name):
                out.append(item)
        return out

    def _present(self, kind: ListKind, item: dict[str, Any]) -> dict[str, Any]:
        if kind != "tools" or not self.overrides:
            return item
        applied = self.applied(item["name"])
        return item if applied is None else applied.present(item)

    def present_tool(self, item: dict[str, Any]) -> dict[str, Any]:
        """A tool's definition as this view lists it (with any description override)."""
        return self._present("tools", item)

    def filter_content(self, index: Index, content: Any) -> Any:
        """Drop resource links and embedded resources this view may not read."""
        if not isinstance(content, list):
            return content
        kept = [block for block in content if self._block_visible(index, block)]
        return content if len(kept) == len(content) else kept

    def _block_visible(self, index: Index, block: Any) -> bool:
        if not isinstance(block, dict):
            return True
        uri = block.get("uri") if block.get("type") == "resource_link" else None
        if block.get("type") == "resource" and isinstance(block.get("resource"), dict):
            uri = block["resource"].get("uri")
        if not isinstance(uri, str):
            return True
        target = index.resolve_uri(uri)
        return target is not None and self.allows("resources", target.server, uri)


class OpenView(View):
    """No policy configured: everything is visible, at no cost."""

    open = True

    def __init__(self) -> None:
        self.overrides = []
        self.key = None
        self.tools_mode = None
        self.pinned = ()
        self.conditional = False
        self.rego = None
        self.capabilities = {}
        self.budgets = ()
        self.groups = frozenset()

    def present_tool(self, item: dict[str, Any]) -> dict[str, Any]:
        return item

    def allows(self, kind: Kind, server: str, name: str) -> bool:
        return True

    def pages(self, index: Index, kind: ListKind, page_size: int) -> list[bytes]:
        return index.pages(kind, page_size)

    def visible(self, index: Index, kind: Kind) -> dict[str, Target]:
        return {"tools": index.tools, "prompts": index.prompts, "resources": index.resources}[kind]

    def filter_content(self, index: Index, content: Any) -> Any:
        return content


OPEN = OpenView()


class NamespaceView(View):
    """An agent's View narrowed to one namespace (`catalog/namespaces.py`): an item is visible when
    the agent's view allows it and the namespace holds it, so a namespace never widens what the
    agent may see. Decisions and pages are cached like a View's; it lives as long as its base."""

    def __init__(
        self, base: View, namespace: Namespace, overrides: list[tuple[re.Pattern[str], Override]]
    ) -> None:
        self.base, self.namespace = base, namespace
        self.namespace_name = namespace.name
        self.overrides = overrides  # global ones and this namespace's, in document order
        self.conditional = base.conditional
        self.rego = base.rego
        self.capabilities = base.capabilities
        self.budgets = base.budgets
        self.groups = base.groups
        self._applied = {}
        self._decisions = {}
        self._pages = _Pages(-1)
        self.key = (base.key, namespace.name)
        # The namespace's discovery mode comes before the agent's own (a client's `?tools=` before both).
        self.tools_mode = namespace.spec.tools_mode or base.tools_mode
        self.pinned = tuple(sorted({*base.pinned, *namespace.spec.pinned}))

    def allows(self, kind: Kind, server: str, name: str) -> bool:
        key = (kind, server, name)
        decision = self._decisions.get(key)
        if decision is None:
            decision = (
                self.namespace.holds(kind, server, name)
                and self.base.allows(kind, server, name)
                and (kind != "tools" or self._enabled(name))
            )
            if len(self._decisions) < 100_000:
                self._decisions[key] = decision
        return decision

    def check_call(self, facts: CallFacts) -> str | None:
        return self.base.check_call(facts)

    async def check_call_within_budget(self, facts: CallFacts) -> str | None:
        return await self.base.check_call_within_budget(facts)

    def _holds_capability(self, name: str) -> bool:
        """A capability is in the namespace if its `tools` globs take its name (or it has none);
        its providers must be in the namespace too (`allows`)."""
        pattern = self.namespace.items["tools"]
        return pattern is None or pattern.match(name) is not None


def exposed_name(kind: ListKind, item: dict[str, Any]) -> str:
    key = {"tools": "name", "prompts": "name", "resources": "uri", "resourceTemplates": "uriTemplate"}[kind]
    return str(item[key])
