"""Who may see and use what: allow/deny rules per agent and group, and tool overrides.

A policy document (JSON, from a file, Consul KV or etcd) looks like this:

    {"default": "deny",
     "everyone": {"allow": {"servers": ["docs"]}},
     "groups": {"ops": {"members": ["alice"], "allow": {"servers": ["*"]}, "deny": {"tools": ["*__crash"]}}},
     "agents": {"bob": {"groups": ["ops"], "allow": {"resources": ["toolmesh://files/*"]}}},
     "overrides": [{"tool": "db__query", "description": "Read-only SQL.", "groups": ["analysts"]},
                   {"tool": "db__drop", "enabled": false}]}

An item (a tool, prompt, resource or template, under the name the agent sees) is visible when no
deny rule that applies to the agent matches it, and an allow rule matches it or the default is
`allow`. `servers` match the item's server; `tools`, `prompts` and `resources` are globs over
exposed names and URIs. Rules apply from `everyone`, from each group the agent is in (its token's
groups, plus `members` and `agents.<id>.groups`), and from the agent's own entry.

Speed: the rules an agent is subject to are its *scope*; a `View` is compiled once per scope and
policy generation, remembers each decision, and keeps the filtered, serialized list pages per index
generation, so a list request costs a dict lookup like it does without policy. Without any policy
the `OPEN` view allows everything at no cost.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from router.catalog.capabilities import CapabilitySpec, ProviderSpec, valid_name
from router.catalog.index import Index, ListKind, Target
from router.catalog.namespaces import NAME_PATTERN, Namespace, NamespaceSpec
from router.catalog.overrides import Applied, Override
from router.errors import ConfigError
from router.guard.agent import Agent
from router.guard.budgets import BUDGET_NAME, Budget, BudgetSpec
from router.guard.conditions import CallFacts, Compiler, Condition, activation
from router.guard.rego import RegoDecision, RegoWorkers

log = logging.getLogger("toolmesh.guard")

Kind = Literal["tools", "prompts", "resources"]
KIND_OF_LIST: dict[ListKind, Kind] = {
    "tools": "tools",
    "prompts": "prompts",
    "resources": "resources",
    "resourceTemplates": "resources",
}
MAX_VIEWS = 4096


# -- the document -------------------------------------------------------------------------------


class Selector(BaseModel):
    """What a rule covers: whole servers, or items by glob over exposed names/URIs."""

    model_config = ConfigDict(extra="forbid")

    servers: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)
    resources: list[str] = Field(default_factory=list)
    when: str | None = None  # a CEL condition on the call (guard/conditions.py): tools only

    @model_validator(mode="after")
    def _conditions_cover_tools(self) -> Selector:
        if self.when is not None:
            if not self.when.strip():
                raise ValueError("`when` is empty; write a CEL expression or leave `when` out")
            if self.prompts or self.resources:
                raise ValueError(
                    "a rule with `when` applies to tool calls only; move `prompts`/`resources` "
                    "to a rule without `when`"
                )
        return self


def _one_or_many(value: Any) -> Any:
    """`allow`/`deny` take one rule (an object) or several (a list of objects)."""
    return [value] if isinstance(value, dict) else value


ToolsMode = Literal["all", "search", "auto"]


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow: list[Selector] = Field(default_factory=list)
    deny: list[Selector] = Field(default_factory=list)

    # How `tools/list` is served (docs/tool-search.md): the agent's own entry wins over its
    # groups' (in name order), which win over `everyone`'s; unset falls back to the setting.
    tools_mode: ToolsMode | None = None
    pinned: list[str] = Field(default_factory=list, description="Globs of tools kept listed in search mode.")

    @field_validator("allow", "deny", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        return _one_or_many(value)


class GroupRules(Rules):
    members: list[str] = Field(default_factory=list)


class AgentRules(Rules):
    groups: list[str] = Field(default_factory=list)


class RegoSpec(BaseModel):
    """An external decision on every tool call, in Rego (guard/rego.py)."""

    model_config = ConfigDict(extra="forbid")

    module: str = Field(min_length=1)  # a .rego file's path, or the module's source
    query: str = Field(default="data.toolmesh.allow", pattern=r"^data(\.[A-Za-z_][A-Za-z0-9_]*)+$")
    # A deadline on the decision as the call sees it (a worker process's round trip included).
    budget_ms: float = Field(default=100.0, gt=0, le=1000)


class PolicyDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    default: Literal["allow", "deny"] = "deny"
    everyone: Rules = Field(default_factory=Rules)
    groups: dict[str, GroupRules] = Field(default_factory=dict)
    agents: dict[str, AgentRules] = Field(default_factory=dict)
    overrides: list[Override] = Field(default_factory=list)
    namespaces: dict[str, NamespaceSpec] = Field(default_factory=dict)
    capabilities: dict[str, CapabilitySpec] = Field(default_factory=dict)
    rego: RegoSpec | None = None
    budgets: dict[str, BudgetSpec] = Field(default_factory=dict)  # guard/budgets.py

    @model_validator(mode="after")
    def _known_groups(self) -> PolicyDocument:
        for name, budget in self.budgets.items():
            if not re.match(BUDGET_NAME, name):
                raise ValueError(
                    f"budgets.{name!r} is not a usable name: it names the budget in errors and metrics; "
                    "use letters, digits, '_', '-' (at most 64, starting with a letter or digit)"
                )
            if budget.group is not None and budget.group not in self.groups:
                raise ValueError(
                    f"budgets.{name}.group names unknown group {budget.group!r}{_close(budget.group, self.groups)}"
                )
        for name in self.capabilities:
            if not valid_name(name):
                raise ValueError(
                    f"capabilities.{name!r} is not a valid tool name: use 1-128 letters, digits, '_', '-', '.', '/'"
                )
        for name in self.namespaces:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(
                    f"namespaces.{name!r} is not a usable name: it is a path segment of /mcp/{{name}}; "
                    "use letters, digits, '_', '.', '-' (at most 64, starting with a letter or digit)"
                )
        for agent, rules in self.agents.items():
            for group in rules.groups:
                if group not in self.groups:
                    raise ValueError(
                        f"agents.{agent}.groups names unknown group {group!r}{_close(group, self.groups)}"
                    )
        return self


def _close(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return (
        f"; did you mean {close[0]!r}?"
        if close
        else f"; define it under `groups` (known: {', '.join(choices) or 'none'})"
    )


def parse_policy(data: bytes, source: str) -> PolicyDocument:
    """Parse and validate, or raise ConfigError naming the exact field and the fix."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"policy {source}", f"not valid JSON: {exc}", "fix the JSON syntax") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"policy {source}", "must be a JSON object", 'e.g. {"default": "deny", "groups": {}}'
        )
    try:
        return PolicyDocument.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _where(first["loc"], raw)
        fix = "see docs/security.md for the policy format"
        if first["type"] == "extra_forbidden":
            options = _fields_at(first["loc"][:-1])
            close = difflib.get_close_matches(str(first["loc"][-1]), options, n=1)
            fix = f"did you mean {close[0]!r}?" if close else f"known fields here: {', '.join(options)}"
        raise ConfigError(f"policy {source}, field '{where}'", first["msg"], fix) from None


def _where(location: tuple[int | str, ...], raw: Any) -> str:
    """A field's place as the document's author wrote it: `groups.ops.allow.1.when`, or
    `groups.ops.allow.when` where `allow` is one rule (an object, not a list)."""
    out, node = "", raw
    for part in location:
        if isinstance(part, int) and isinstance(node, dict):  # one rule, read as a list of one
            continue
        out += f".{part}" if out else str(part)
        node = _child(node, part)
    return out or "document"


def _child(node: Any, part: int | str) -> Any:
    if isinstance(node, dict):
        return node.get(str(part))
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _fields_at(location: tuple[int | str, ...]) -> list[str]:
    """The fields the model at `location` in the document accepts."""
    model: type[BaseModel]
    if not location:
        model = PolicyDocument
    elif location[-1] in ("allow", "deny") or (len(location) > 1 and location[-2] in ("allow", "deny")):
        model = Selector
    elif location[0] == "overrides":
        model = Override
    elif location[0] == "budgets":
        model = BudgetSpec
    elif location[0] == "namespaces":
        model = NamespaceSpec
    elif location[0] == "capabilities":
        model = ProviderSpec if "providers" in location else CapabilitySpec
    elif location[0] == "groups":
        model = GroupRules
    elif location[0] == "agents":
        model = AgentRules
    else:
        model = Rules
    return list(model.model_fields)


# -- compiled -----------------------------------------------------------------------------------


def _globs(patterns: list[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns))


@dataclass(frozen=True, slots=True)
class _CompiledSelector:
    servers: re.Pattern[str] | None
    items: dict[Kind, re.Pattern[str] | None]
    condition: Condition | None = None  # applies to tool calls only, when it holds

    @classmethod
    def of(cls, selector: Selector, condition: Condition | None) -> _CompiledSelector:
        return cls(
            _globs(selector.servers),
            {"tools": _globs(selector.tools), "prompts": _globs(selector.prompts),
             "resources": _globs(selector.resources)},
            condition,
        )  # fmt: skip

    def matches(self, kind: Kind, server: str, name: str) -> bool:
        if self.servers is not None and self.servers.match(server):
            return True
        pattern = self.items[kind]
        return pattern is not None and pattern.match(name) is not None


@dataclass(frozen=True, slots=True)
class _CompiledRules:
    allow: tuple[_CompiledSelector, ...]
    deny: tuple[_CompiledSelector, ...]

    @classmethod
    def of(cls, where: str, rules: Rules, compiler: Callable[[str, str], Condition]) -> _CompiledRules:
        def each(side: str, selectors: list[Selector]) -> tuple[_CompiledSelector, ...]:
            return tuple(
                _CompiledSelector.of(
                    selector,
                    None if selector.when is None else compiler(f"{where}.{side}.{i}", selector.when),
                )
                for i, selector in enumerate(selectors)
            )

        return cls(each("allow", rules.allow), each("deny", rules.deny))

    @property
    def conditional(self) -> bool:
        return any(s.condition is not None for s in (*self.allow, *self.deny))


class Policy:
    """A validated document, compiled; immutable. `generation` increases with every swap.
    Raises ConfigError (naming the rule and the position) for a `when` that does not compile."""

    def __init__(
        self,
        document: PolicyDocument,
        generation: int,
        source: str,
        on_decision_failure: Callable[[str], None] | None = None,
        rego_workers: RegoWorkers | None = None,
    ) -> None:
        self.document, self.generation, self.source = document, generation, source
        compiler = _compiler(document, source)
        rego = document.rego
        self.rego = (
            None
            if rego is None
            else RegoDecision(
                source, rego.module, rego.query, rego.budget_ms, on_decision_failure, rego_workers
            )
        )
        self.everyone = _CompiledRules.of("everyone", document.everyone, compiler)
        self.groups = {
            name: _CompiledRules.of(f"groups.{name}", rules, compiler)
            for name, rules in document.groups.items()
        }
        self.agents = {
            name: _CompiledRules.of(f"agents.{name}", rules, compiler)
            for name, rules in document.agents.items()
        }
        self.members: dict[str, set[str]] = {}
        for group, group_rules in document.groups.items():
            for member in group_rules.members:
                self.members.setdefault(member, set()).add(group)
        for agent, agent_rules in document.agents.items():
            self.members.setdefault(agent, set()).update(agent_rules.groups)
        override_groups = {group for override in document.overrides for group in override.groups}
        self.relevant_groups = frozenset(document.groups) | override_groups
        self.namespaces = {name: Namespace.of(name, spec) for name, spec in document.namespaces.items()}
        self.budgets = tuple(Budget(name, spec) for name, spec in document.budgets.items())
        # Agents named by a budget get a scope of their own, so their View carries it.
        self.budget_agents = frozenset(b.agent for b in self.budgets if b.agent not in (None, "*"))

    def scope_of(self, agent: Agent) -> tuple[str, frozenset[str]]:
        """What decides this agent's view; agents with equal scopes share one View."""
        groups = (agent.groups | self.members.get(agent.id, set())) & self.relevant_groups
        named = agent.id in self.agents or agent.id in self.budget_agents
        return (agent.id if named else "", frozenset(groups))


def _compiler(document: PolicyDocument, source: str) -> Callable[[str, str], Condition]:
    """CEL is loaded only for a document that has a `when` somewhere."""
    scopes = [document.everyone, *document.groups.values(), *document.agents.values()]
    if not any(s.when is not None for rules in scopes for s in (*rules.allow, *rules.deny)):
        return _no_conditions
    return Compiler(source).compile


def _no_conditions(rule: str, expression: str) -> Condition:
    raise AssertionError("no `when` in this document")


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


class Guard:
    """Holds the policy in force and hands out views; `install` swaps atomically."""

    def __init__(
        self,
        on_decision_failure: Callable[[str], None] | None = None,
        rego_workers: RegoWorkers | None = None,
    ) -> None:
        self.policy: Policy | None = None
        self.on_decision_failure = on_decision_failure  # a Rego decision that failed: "error" or "timeout"
        self.rego_workers = rego_workers  # where Rego decisions run (none: on the caller's thread)
        self.generation = 0
        self.last_error: str | None = None
        self.loaded = False  # set by the policy source once a valid policy was installed
        self._views: OrderedDict[tuple[int, tuple[str, frozenset[str]]], View] = OrderedDict()
        self._by_agent: dict[Agent, View] = {}  # the same agent's next request: one lookup
        self._in_namespace: dict[tuple[View, str], View] = {}

    def view(self, agent: Agent) -> View:
        policy = self.policy
        if policy is None:
            return OPEN
        view = self._by_agent.get(agent)
        if view is not None:
            return view
        key = (policy.generation, policy.scope_of(agent))
        view = self._views.get(key)
        if view is None:
            view = View(policy, key[1])
            self._views[key] = view
            if len(self._views) > MAX_VIEWS:
                self._views.popitem(last=False)
        if len(self._by_agent) >= MAX_VIEWS:
            self._by_agent.clear()
        self._by_agent[agent] = view
        return view

    def namespace_view(self, agent: Agent, name: str) -> View | None:
        """The agent's view inside namespace `name`; None if there is no such namespace for this
        agent (unknown, or limited to other agents and groups: the two are not told apart)."""
        policy = self.policy
        namespace = policy.namespaces.get(name) if policy is not None else None
        if policy is None or namespace is None:
            return None
        if not namespace.admits(agent.id, agent.groups | policy.members.get(agent.id, set())):
            return None
        base = self.view(agent)
        key = (base, name)  # agents of one scope share the base view, so its pages too
        view = self._in_namespace.get(key)
        if view is None:
            view = NamespaceView(base, namespace, overrides_for(policy, policy.scope_of(agent)[1], name))
            if len(self._in_namespace) >= MAX_VIEWS:
                self._in_namespace.clear()
            self._in_namespace[key] = view
        return view

    def overrides_report(self, index: Index) -> dict[str, Any]:
        """For operators: how many overrides, and the names they give to more than one tool, at
        `/mcp` and in each namespace, as an agent in every group of the policy would see them."""
        policy = self.policy
        if policy is None:
            return {"count": 0, "collisions": []}
        groups = frozenset(policy.relevant_groups)
        base = View(policy, ("", groups))
        views: list[tuple[str | None, View]] = [(None, base)]
        for name, namespace in sorted(policy.namespaces.items()):
            views.append((name, NamespaceView(base, namespace, overrides_for(policy, groups, name))))
        collisions = [
            {"name": c.name, "tools": list(c.tools), "namespace": where}
            for where, view in views
            for c in view.collisions(index)
        ]
        return {"count": len(policy.document.overrides), "collisions": collisions}

    def install(self, data: bytes, source: str) -> Policy:
        """Validate and swap in; on ConfigError the policy in force stays and the error is kept."""
        try:
            document = parse_policy(data, source)
            # compiles the `when`s and the Rego module
            policy = Policy(
                document, self.generation + 1, source, self.on_decision_failure, self.rego_workers
            )
        except ConfigError as exc:
            self.last_error = str(exc)
            raise
        if policy.rego is not None:
            policy.rego.activate()  # its workers start now, before the first call needs one
        old = self.policy
        self.generation += 1
        self._by_agent = {}  # before the swap: no request may pair the new policy with an old view
        self._in_namespace = {}
        self.policy = policy  # one reference assignment: requests see the old or the new, never a mix
        self._views.clear()
        self.last_error = None
        if old is not None and old.rego is not None:
            old.rego.close()
        return policy
