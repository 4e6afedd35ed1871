"""What operators see of a replica: `/readyz` (is it ready, and why each backend is or is not
serving) and `/admin/` (catalog, instances, sessions, policy; read-only, never a secret).

Functions over `Replica`, plain data that `app.py` fills in with the parts an operator looks at:
this module knows those parts, not the `Router` that assembles them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from router.catalog.index import LIST_KINDS
from router.catalog.sources.base import CatalogSource
from router.guard.agent import Agent, AuthError
from router.guard.budget_report import report as budget_report
from router.guard.budgets import BudgetStore
from router.guard.guard import Guard
from router.guard.identity import Authenticator
from router.guard.policy_document import KIND_OF_LIST
from router.guard.policy_sources import PolicySource
from router.guard.ratelimit import RateStore
from router.guard.views import exposed_name
from router.observe.metrics import Metrics
from router.relay.capabilities import Capabilities
from router.server.replies import Scope, Send, decoded_headers, send_json, send_problem
from router.state.sessions import SessionStore
from router.upstream.pool import BackendPool


class Connected(Protocol):
    """The NATS link, as far as an operator sees it."""

    @property
    def connected(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Replica:
    """What an operator sees of a replica: its parts, read when a page is asked for."""

    pool: BackendPool
    guard: Guard
    policy_sources: Sequence[PolicySource]
    sources: Sequence[CatalogSource]
    sessions: SessionStore
    rate_store: RateStore
    auth: Authenticator
    metrics: Metrics
    admin_groups: frozenset[str]
    nats: Connected | None = None
    capabilities: Capabilities | None = None  # the dispatcher's: which provider serves and why
    budget_store: BudgetStore | None = None

    def ready(self) -> bool:
        """Ready to serve: the catalog (every source's first word, each new backend's first
        connect) and the policy, if there is one, are loaded."""
        return self.pool.catalog_loaded.is_set() and (self.guard.loaded or not self.policy_sources)


def readiness(router: Replica) -> tuple[bool, dict[str, Any]]:
    """`/readyz`: ready once the catalog (and policy, if any) is loaded; each backend's state."""
    ready, status = _status(router)
    backends = {
        f"{server}/{instance}" if server != instance else server: {
            "state": backend.state,
            **({"error": backend.last_error} if backend.last_error and backend.state != "ready" else {}),
            **({"refused": list(refused)} if (refused := backend.listing.refused) else {}),
            **({"eras": eras} if (eras := backend.eras_in_use()) else {}),
            **_breaker_detail(router, server, instance),
        }
        for (server, instance), backend in sorted(router.pool.backends.items())
    }
    detail: dict[str, Any] = {
        "status": status,
        "catalog": _sources(router),
        "backends": backends,
        "ratelimit": _ratelimit_detail(router),
    }
    if router.budget_store is not None:
        store = router.budget_store
        degraded = bool(getattr(store, "degraded", False))
        detail["budgets"] = {"store": store.name, "shared": store.name != "memory" and not degraded}
    if router.nats is not None:
        # Degraded still answers 200: the replica serves its own sessions; the LB keeps it.
        detail["nats"] = "connected" if router.nats.connected else "disconnected"
    conflicts = _conflicts(router)
    if conflicts:
        detail["conflicts"] = conflicts
    if router.policy_sources:
        detail["policy"] = "ok" if router.guard.loaded else "loading"
    return ready, detail


def admin_document(router: Replica) -> dict[str, Any]:
    """What `/admin/` shows an operator: read-only, no secrets (no headers, env or tokens)."""
    index = router.pool.index
    policy = router.guard.policy
    document: dict[str, Any] = {
        "catalog": {
            "generation": index.generation,
            "servers": sorted(index.servers),
            "items": {kind: len(index.items(kind)) for kind in LIST_KINDS},
            "conflicts": _conflicts(router),
            "repairs": {
                name: dict(defs.repairs) for name, defs in sorted(index.servers.items()) if defs.repairs
            },
            "sources": _sources(router),
        },
        "instances": [
            _instance(router, server, instance) for server, instance in sorted(router.pool.backends)
        ],
        "health": _status(router)[1],
        "sessions": len(router.sessions),
        "policy": {
            "source": policy.source if policy else None,
            "generation": router.guard.generation,
            "last_error": router.guard.last_error,
            "namespaces": _namespaces(router),
            "overrides": router.guard.overrides_report(index),
            "capabilities": _capabilities(router),
        },
    }
    if policy is not None and policy.budgets and router.budget_store is not None:
        document["budgets"] = budget_report(policy.budgets, router.budget_store)
    return document


def _namespaces(router: Replica) -> dict[str, Any]:
    """Each namespace's declaration and how many items of the catalog it holds now (before any
    agent's policy narrows it)."""
    policy, index = router.guard.policy, router.pool.index
    if policy is None:
        return {}
    shown: dict[str, Any] = {}
    for name, namespace in sorted(policy.namespaces.items()):
        held = {
            kind: sum(
                1
                for item in index.items(kind)
                if (owner := index.owner(kind, item)) is not None
                and namespace.holds(KIND_OF_LIST[kind], owner, exposed_name(kind, item))
            )
            for kind in LIST_KINDS
        }
        shown[name] = {
            **namespace.spec.model_dump(exclude_defaults=True),
            "endpoint": f"/mcp/{name}",
            "items": held,
        }
    return shown


def _capabilities(router: Replica) -> dict[str, Any]:
    """Each capability: its strategy, its providers (with what this replica measured of them and
    whether the catalog has them now), and which provider served it last and why."""
    policy, index = router.guard.policy, router.pool.index
    if policy is None or not policy.document.capabilities:
        return {}
    report = router.capabilities.report() if router.capabilities is not None else {}
    measured, serving = report.get("providers", {}), report.get("serving", {})
    return {
        name: {
            "strategy": spec.strategy,
            "providers": [
                {"tool": p.tool, "in_catalog": p.tool in index.tools, **measured.get(p.tool, {})}
                for p in spec.providers
            ],
            "serving": serving.get(name),
        }
        for name, spec in sorted(policy.document.capabilities.items())
    }


def _instance(router: Replica, server: str, instance: str) -> dict[str, Any]:
    backend, guard = router.pool.backends[(server, instance)], router.pool.instances[(server, instance)]
    return {
        "server": server,
        "instance": instance,
        "transport": backend.record.transport,
        "address": backend.record.describe(),
        "state": backend.state,
        "error": backend.last_error if backend.state != "ready" else None,
        "refused": list(backend.listing.refused),  # lists left out: the backend answered them with errors
        "breaker": guard.breaker.state,
        "critical": guard.critical,
        "eras": backend.eras_in_use(),
    }


def _status(router: Replica) -> tuple[bool, str]:
    ready = router.ready()
    degraded = router.nats is not None and not router.nats.connected
    return ready, ("degraded" if degraded else "ready") if ready else "loading"


def _sources(router: Replica) -> dict[str, str]:
    return {source.name: "ok" if source.healthy else "stale" for source in router.sources}


def _conflicts(router: Replica) -> list[dict[str, Any]]:
    return [{"kind": c.kind, "name": c.name, "servers": c.servers} for c in router.pool.index.conflicts]


def _breaker_detail(router: Replica, server: str, instance: str) -> dict[str, Any]:
    """Why an instance may be out of rotation: its breaker, or the registry's health check."""
    guard = router.pool.instances.get((server, instance))
    if guard is None:
        return {}
    detail: dict[str, Any] = {"critical": True} if guard.critical else {}
    if guard.breaker.state != "closed":
        detail.update(breaker=guard.breaker.state, retry_in=round(guard.breaker.retry_in(), 3))
    return detail


def _ratelimit_detail(router: Replica) -> dict[str, Any]:
    store = router.rate_store
    detail: dict[str, Any] = {
        "store": store.name,
        "shared": store.name != "memory" and not store.degraded,
    }
    replicas = getattr(store, "replicas", None)
    if replicas is not None:
        detail["replicas"] = replicas
    if store.degraded:
        detail["note"] = f"NATS unreachable: each replica enforces 1/{replicas} of every limit"
    return detail


async def serve_admin(router: Replica, scope: Scope, send: Send) -> None:
    """Admin credentials: an authenticated agent in one of `admin_groups`; never anonymous."""
    headers = decoded_headers(scope)
    scheme = scope.get("scheme", "http")
    try:
        agent: Agent = await router.auth.authenticate(headers, scope.get("client"))
    except AuthError as exc:
        router.metrics.auth_failures.labels(exc.reason).inc()
        challenge = [(b"www-authenticate", router.auth.challenge(scheme, headers, exc))]
        await send_problem(send, 401, exc.description, challenge)
        return
    if agent.anonymous:
        challenge = [(b"www-authenticate", router.auth.challenge(scheme, headers, AuthError("missing", "")))]
        await send_problem(send, 401, "admin credentials required", challenge)
        return
    if agent.groups.isdisjoint(router.admin_groups):
        await send_problem(send, 403, f"agent {agent.id!r} is not in an admin group")
        return
    await send_json(send, 200, admin_document(router))
