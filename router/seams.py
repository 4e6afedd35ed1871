"""Which implementation serves each seam: one table per seam, named "module:attr" and imported
late (as uvicorn's `config.py` does), so an implementation's dependencies (nats, the Consul and
etcd clients) load only when a replica is configured to use it.

The shared-state seams (where sessions live, how messages reach a client, where rate-limit
buckets and breaker hints live, where parked calls and stream events are found) change together:
one NATS link serves them all (budgets too), and half of them shared with the other half local would be a
replica that agrees with its peers about sessions but not about their streams. So one table,
`SHARED_STATE`, picks them as a row: `memory` (one replica) or `nats` (the `router/cluster/`
package). Either builder gets the in-process parts it needs and returns a `SharedState`: the
parts the replica is built on, and the background services to run.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from router.guard.backend_tokens import KeyShare
from router.guard.budgets import BudgetStore, BudgetWarning
from router.guard.ratelimit import RateStore
from router.observe.audit import Publisher
from router.observe.usage import Usage
from router.relay.attempts import CallRecords
from router.relay.context import CallContext
from router.relay.era_bridge import ForwardParked
from router.server.events import RemoteEvents
from router.state.bus import ClientBus
from router.state.sessions import SessionStore
from router.upstream.base import Message
from router.upstream.breaker import HintBus
from router.upstream.pool import IndexListener

SHARED_STATE = {
    "memory": "router.wiring:memory_state",
    "nats": "router.cluster.assemble:assemble",
}
REGISTRIES = {
    "consul": "router.catalog.sources.consul:ConsulRegistry",
    "etcd": "router.catalog.sources.etcd:EtcdRegistry",
}
KV_STORES = {
    "consul": "router.kv.consul:ConsulKV",
    "etcd": "router.kv.etcd:EtcdKV",
}
AUDIT_SINKS = {
    "stdout": "router.observe.audit:StreamSink",
    "file": "router.observe.audit:FileSink",
    "nats": "router.cluster.audit:NatsSink",
}


def load(table: Mapping[str, str], name: str) -> Any:
    """The implementation `name` of a seam's table, imported now."""
    try:
        module, _, attr = table[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown implementation {name!r}; known: {', '.join(sorted(table))}") from None
    return getattr(importlib.import_module(module), attr)


class Host(Protocol):
    """What shared state calls back into the replica it serves (`app.Router`)."""

    def session_ended(self, session_id: str, *, subscribed: bool = True) -> None:
        """A session ended (here or elsewhere), or this replica let it go: release what this
        replica held for it (`subscribed`: it had resource subscriptions to withdraw)."""

    def sync_subscriptions(self) -> None:
        """Make the upstream subscriptions match what every client wants now."""

    def deliver_update(self, update: Message) -> int:
        """Hand a resource update to the streams here that asked for it; how many took it."""

    def cancel(self, session_id: str, request_id: Any) -> bool:
        """Cancel a call running here; True if there was one."""

    async def resume_here(self, server: str, params: dict[str, Any], ctx: CallContext) -> Message:
        """Resume a call parked on this replica with a retry that reached another."""

    def refresh_servers(self, servers: set[str]) -> int:
        """Refetch those servers' lists here; how many backends were asked."""

    def budget_warning(self, warning: BudgetWarning) -> None:
        """A budget reached its warning fraction (told once per window): log, metric, audit."""


class LinkStatus(Protocol):
    """Whether shared state is reachable now (for /readyz, /admin/ and the metrics)."""

    @property
    def connected(self) -> bool: ...


class Updates(Protocol):
    """Resource updates this replica's upstream heard, to deliver everywhere (cluster/updates.py)."""

    async def heard(self, message: Message) -> None: ...


class Interests(Protocol):
    """The resource URIs the listen streams of every replica want (cluster/updates.py)."""

    def set_local(self, uris: frozenset[str]) -> None: ...
    def remote(self) -> set[str]: ...


@dataclass(frozen=True, slots=True)
class SharedState:
    """The parts a replica is built on that other replicas may share, and what runs them."""

    sessions: SessionStore
    bus: ClientBus
    rate_store: RateStore
    budget_store: BudgetStore
    hints: HintBus | None = None
    forward_parked: ForwardParked | None = None
    remote_events: RemoteEvents | None = None
    updates: Updates | None = None
    interests: Interests | None = None
    index_listeners: Sequence[IndexListener] = ()
    publisher: Publisher | None = None
    link: LinkStatus | None = None
    records: CallRecords | None = None  # attempt records (router/relay/attempts.py)
    usage: Usage | None = None  # usage totals summed across replicas (router/cluster/usage.py)
    identity_keys: KeyShare | None = None  # backend identity keys (router/cluster/identity_keys.py)
    # Entered in this order before serving, left in the reverse order (see router/lifecycle.py).
    services: Sequence[AbstractAsyncContextManager[Any]] = field(default_factory=tuple)
