"""The Guard: holds the policy in force and hands out each agent's view (`views.py`); a new
document is validated and compiled before one reference assignment swaps it in, so a request sees
the old policy or the new one, never a mix, and an invalid one leaves the last valid in force."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from router.catalog.index import Index
from router.errors import ConfigError
from router.guard.agent import Agent
from router.guard.policy import Policy
from router.guard.policy_document import parse_policy
from router.guard.rego import RegoWorkers
from router.guard.views import MAX_VIEWS, OPEN, NamespaceView, View, overrides_for


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
