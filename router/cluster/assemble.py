"""The one entry point of `router/cluster/`: shared state over NATS, built from the replica's
in-process parts (see `router/seams.py` `SHARED_STATE`).

Every service is entered before the link (`NatsLink` tells the services that `watch` it when
it comes up, and the first "up" must reach all of them), so the link stops first: the
connection is drained and closed before the services that used it stop.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from router.cluster.attempts import NatsCallRecords
from router.cluster.budgets import NatsBudgetStore
from router.cluster.bus import NatsBus, RemoteCancels
from router.cluster.catalog import CatalogSync
from router.cluster.events import SharedEvents
from router.cluster.hints import NatsHints
from router.cluster.identity_keys import NatsIdentityKeys
from router.cluster.link import NatsLink
from router.cluster.parked import ParkedLink
from router.cluster.ratelimit import NatsRateStore
from router.cluster.sessions import NatsSessionStore
from router.cluster.updates import SharedInterests, SharedUpdates
from router.cluster.usage import SharedUsage
from router.observe.metrics import Metrics
from router.seams import Host, SharedState
from router.server.events import EventStore
from router.settings import RouterSettings
from router.state.sessions import SessionIds


def assemble(
    settings: RouterSettings,
    host: Host,
    *,
    ids: SessionIds,
    events: EventStore,
    replica: str,
    metrics: Metrics,
) -> SharedState:
    """Shared state through one NATS link; `replica` names this replica in parked calls and
    event ids, `events` are the stream logs this replica keeps (and serves to the others)."""
    assert settings.nats is not None
    link = NatsLink(settings.nats, prefix=settings.nats_prefix)

    async def ended_elsewhere(session_id: str) -> None:
        await bus.session_ended(session_id)  # the bus is built on the store, right below

    # Every end of a session here (DELETE on this replica, a delete seen by the watch, this
    # replica's idle sweep, or its drop from the bounded cache) releases what this replica held
    # for it; records that change on
    # another replica (resources/subscribe there) may need new upstream subscriptions here.
    sessions = NatsSessionStore(
        link,
        ids,
        settings.session_idle_timeout,
        capacity=settings.session_cache,
        on_delete=lambda record: host.session_ended(record.id, subscribed=bool(record.subscriptions)),
        on_ended=[ended_elsewhere],
        on_record_changed=host.sync_subscriptions,
    )
    bus = NatsBus(sessions, link)
    rate_store = NatsRateStore(
        link,
        max_batch=settings.ratelimit_max_batch,
        lease_ttl=settings.ratelimit_lease_ttl,
        on_degraded=lambda degraded, replicas: _ratelimit_degraded(metrics, degraded, replicas),
    )
    budget_store = NatsBudgetStore(
        link,
        replicas=lambda: rate_store.replicas,  # the rate store counts the replicas by heartbeat
        max_batch=settings.budget_max_batch,
        lease_idle=settings.budget_lease_idle,
        on_warning=host.budget_warning,
    )
    hints = NatsHints(link)
    parked = ParkedLink(link, replica, settings.request_timeout, host.resume_here)
    shared_events = SharedEvents(link, events)
    updates = SharedUpdates(link, replica, host.deliver_update)
    interests = SharedInterests(link, replica, host.sync_subscriptions)
    catalog = CatalogSync(link, host.refresh_servers)
    # An entry outlives the longest call it guards (a retry comes when its replica dies).
    records = NatsCallRecords(link, ttl=max(600.0, 2 * settings.request_timeout))
    usage = SharedUsage(
        link,
        replica,
        settings.usage_retention,
        flush_interval=settings.usage_flush_interval,
        spool_dir=settings.usage_spool_dir,
    )
    _gauges(metrics.registry, link, sessions)
    return SharedState(
        sessions=sessions,
        bus=bus,
        rate_store=rate_store,
        budget_store=budget_store,
        hints=hints,
        forward_parked=parked.forward,
        remote_events=shared_events,
        updates=updates,
        interests=interests,
        index_listeners=(catalog.on_index_change,),
        publisher=link,
        link=link,
        records=records if settings.attempt_records else None,
        usage=usage,
        identity_keys=NatsIdentityKeys(link),
        services=(
            sessions,
            bus,
            RemoteCancels(link, host.cancel),
            parked,
            shared_events,
            updates,
            interests,
            catalog,
            rate_store,
            hints,
            records,
            link,
            usage,  # after the link: left before it, so a stopping replica publishes its outbox
            budget_store,  # after the link too: a stopping replica gives its unused slices back
        ),
    )


def _ratelimit_degraded(metrics: Metrics, degraded: bool, replicas: int) -> None:
    metrics.ratelimit_degraded.set(1 if degraded else 0)
    metrics.ratelimit_replicas.set(replicas)


def _gauges(registry: CollectorRegistry, link: NatsLink, sessions: NatsSessionStore) -> None:
    connected = Gauge(
        "toolmesh_nats_connected",
        "1 while this replica is connected to NATS; 0 means degraded (local state only).",
        registry=registry,
    )
    connected.set_function(lambda: 1.0 if link.connected else 0.0)
    unsynced = Gauge(
        "toolmesh_sessions_unsynced",
        "Sessions kept only on this replica until NATS is back.",
        registry=registry,
    )
    unsynced.set_function(lambda: float(sessions.unsynced))
    evicted = Gauge(
        "toolmesh_sessions_evicted",
        "Sessions this replica dropped from its cache (session_cache) since it started; their "
        "records stay in NATS and are fetched again on their next request here.",
        registry=registry,
    )
    evicted.set_function(lambda: float(sessions.evicted))
