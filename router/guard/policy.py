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

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass

from router.catalog.namespaces import Namespace
from router.guard.agent import Agent
from router.guard.budgets import Budget
from router.guard.conditions import Compiler, Condition
from router.guard.policy_document import Kind, PolicyDocument, Rules, Selector
from router.guard.rego import RegoDecision, RegoWorkers

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
