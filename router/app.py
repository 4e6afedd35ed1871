"""Assembles the router: the ASGI app with /mcp, /v1/tools, /healthz, /readyz, /metrics and /admin/,
and its runtime.

The runtime's background work (watching the catalog, supervising backends, rebuilding the index,
sweeping idle sessions) runs in one task group that lives as long as the ASGI lifespan, and is
shut down in order: stop accepting, stop backends (children are killed), then return.
"""

from __future__ import annotations

import gc
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import aclosing, asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup
from prometheus_client import make_asgi_app

from router.catalog.index import LIST_KINDS, Index
from router.catalog.naming import NamingPolicy
from router.catalog.record import BackendRecord, Catalog
from router.catalog.server_rules import LimitRule
from router.catalog.sources.base import CatalogSource
from router.catalog.sources.static import StaticFileSource
from router.guard.agent import Agent
from router.guard.policy import Guard
from router.guard.policy_sources import (
    follow,
)
from router.guard.ratelimit import MemoryRateStore, RateLimiter, RateStore
from router.observe.audit import AuditLog, Publisher
from router.observe.calls import CallObserver
from router.observe.metrics import Metrics
from router.relay.asking import Asker
from router.relay.cursors import CursorCodec
from router.relay.dispatch import Dispatcher
from router.relay.parking import Parking, StateCodec
from router.server.events import EventStore
from router.server.http import McpEndpoint
from router.server.operator import readiness, serve_admin
from router.server.replies import decoded_headers, send_json
from router.server.security import OriginPolicy
from router.server.tools_http import ToolsEndpoint
from router.settings import RouterSettings
from router.state.bus import ClientBus, LocalBus, MayRead, NatsBus
from router.state.listeners import ListenStreams
from router.state.sessions import MemorySessionStore, SessionIds, SessionStore
from router.upstream.backend import Backend
from router.upstream.base import Message
from router.upstream.breaker import STATE_VALUE, BreakerBoard, BreakerState
from router.upstream.caller import CallSettings
from router.upstream.pool import BackendPool
from router.wiring import audit_sinks_from, authenticator_from, policy_sources_from, registry_sources_from

if TYPE_CHECKING:
    from router.state.nats_link import NatsLink
    from router.state.updates import SharedInterests, SharedUpdates

log = logging.getLogger("toolmesh.router")

LIST_CHANGED = {
    "tools": "notifications/tools/list_changed",
    "prompts": "notifications/prompts/list_changed",
    "resources": "notifications/resources/list_changed",
    "resourceTemplates": "notifications/resources/list_changed",
}


class Router:
    """One router replica: its parts, wired together, and the ASGI callable that serves them."""

    def __init__(
        self,
        settings: RouterSettings,
        sources: list[CatalogSource] | None = None,
        *,
        publisher: Publisher | None = None,
    ) -> None:
        """`publisher` overrides where the `nats` audit sink publishes (default: the NATS link)."""
        self.settings = settings
        self.metrics = Metrics(agent_label=settings.metrics_agent_label)
        self.auth = authenticator_from(settings)
        self.guard = Guard()
        self.policy_sources = policy_sources_from(settings)
        if self.policy_sources:  # fail closed until the configured policy has loaded
            self.guard.install(b'{"default": "deny"}', "(built-in: deny until the policy loads)")
        # Extra sections of /admin/ (breakers, rate limits, NATS...): name -> callable returning JSON.
        self.admin_sections: dict[str, Any] = {}
        naming = NamingPolicy(settings.prefix, settings.separator, settings.max_name_length)
        self.board = BreakerBoard()
        self.board.listeners.append(self._on_breaker)
        calls = CallSettings(
            max_concurrency=settings.max_concurrency,
            max_queue=settings.max_queue,
            queue_timeout=settings.queue_timeout,
            max_attempts=settings.max_attempts,
            breaker_failures=settings.breaker_failures,
            breaker_reset=settings.breaker_reset,
        )
        self.pool = BackendPool(naming, self._make_backend, calls, self.board)
        self.pool.listeners.append(self._on_index_change)
        self.rate_store: RateStore = MemoryRateStore()
        self.limiter = RateLimiter(self.rate_store, self._on_rate_limited)
        self._limits: dict[str, tuple[LimitRule, ...]] = {}
        self._rate_runner: Callable[[], Coroutine[Any, Any, None]] | None = None
        key = (
            settings.cluster_key.get_secret_value().encode()
            if settings.cluster_key
            else secrets.token_bytes(32)
        )
        self.nats, self.sessions, self.bus = self._shared_state(key)
        self.listen_streams = ListenStreams()
        self.parking = Parking(StateCodec(key), settings.request_timeout)
        self.dispatcher = Dispatcher(
            self.pool,
            CursorCodec(key),
            settings.page_size,
            settings.list_ttl_ms,
            forward_identity=settings.forward_identity,
            asker=Asker(self.bus, settings.request_timeout),
            parking=self.parking,
            on_subscriptions=self._sync_subscriptions,
        )
        self.audit = AuditLog(
            audit_sinks_from(settings, publisher or self.nats),
            arguments=settings.audit_arguments,
            redact=settings.audit_redact,
            on_drop=self.metrics.audit_dropped.inc,
        )
        self.dispatcher.limiter = self.limiter
        self._parked_link: Any = None
        if self.nats is not None:
            self._share_resilience(self.nats)
            from router.state.parked_link import ParkedLink

            self._parked_link = ParkedLink(
                self.nats, self.dispatcher, self.parking.replica, settings.request_timeout
            )
            assert self.dispatcher.bridge is not None  # shared state always parks
            self.dispatcher.bridge.forward_parked = self._parked_link.forward
            self.nats.listeners.append(self._parked_link.start)
        events, self._events = self._event_stores()
        self.endpoint = McpEndpoint(
            self.dispatcher,
            self.sessions,
            OriginPolicy(settings.host, settings.allowed_hosts, settings.allowed_origins),
            self.metrics,
            max_body_bytes=settings.max_body_bytes,
            max_sessions=settings.max_sessions,
            idle_timeout=settings.session_idle_timeout,
            bus=self.bus,
            auth=self.auth,
            guard=self.guard,
            observer=CallObserver(self.metrics, self.audit, lambda: self.pool.index),
            trace=settings.trace_propagation,
            listen_streams=self.listen_streams,
            events=events,
            shared_events=self._events,
            retry_ms=settings.sse_retry_ms,
            resumable_streams=settings.resumable_streams,
        )
        self._updates: SharedUpdates | None = None
        self._interests: SharedInterests | None = None
        if self.nats is not None:
            self._share_relay(self.nats)
        self.tools_endpoint = ToolsEndpoint(
            self.endpoint.admission, self.endpoint.calls, max_body_bytes=settings.max_body_bytes
        )
        if sources is None:
            sources = (
                [StaticFileSource(settings.config, settings.catalog_poll_interval)] if settings.config else []
            )
            sources += registry_sources_from(settings, self.metrics)
        self.sources = sources
        self._tg: TaskGroup | None = None
        self._catalogs: dict[str, Catalog] = {}
        self.metrics_app = make_asgi_app(registry=self.metrics.registry)

    def _shared_state(self, key: bytes) -> tuple[NatsLink | None, SessionStore, ClientBus]:
        """In-memory sessions and delivery, or (with `nats`) the shared ones; see state/."""
        ids = SessionIds(key)
        if not self.settings.nats:
            store = MemorySessionStore(ids)
            store.on_delete = lambda record: self._session_ended(record.id)
            return None, store, LocalBus(store)
        from prometheus_client import Gauge

        from router.state.catalog_sync import CatalogSync
        from router.state.nats_link import NatsLink
        from router.state.shared_sessions import NatsSessionStore

        link = NatsLink(self.settings.nats, prefix=self.settings.nats_prefix)
        sync = CatalogSync(link, self.pool)
        link.listeners.append(sync.start)
        self.pool.listeners.append(sync.on_index_change)
        shared = NatsSessionStore(link, ids, self.settings.session_idle_timeout)
        nats_bus = NatsBus(shared, link)
        shared.on_ended.append(nats_bus.session_ended)
        link.listeners.append(nats_bus.start)
        # Every end of a session here (DELETE on this replica, a delete seen by the watch, or this
        # replica's idle sweep) releases what this replica held for it; records that change on
        # another replica (resources/subscribe there) may need new upstream subscriptions here.
        shared.on_delete = lambda record: self._session_ended(record.id)
        shared.on_record_changed = self._sync_subscriptions
        connected = Gauge(
            "toolmesh_nats_connected",
            "1 while this replica is connected to NATS; 0 means degraded (local state only).",
            registry=self.metrics.registry,
        )
        connected.set_function(lambda: 1.0 if link.connected else 0.0)
        unsynced = Gauge(
            "toolmesh_sessions_unsynced",
            "Sessions kept only on this replica until NATS is back.",
            registry=self.metrics.registry,
        )
        unsynced.set_function(lambda: float(shared.unsynced))
        return link, shared, nats_bus

    def _make_backend(self, record: BackendRecord, on_change: Any) -> Backend:
        s = self.settings
        return Backend(
            record,
            request_timeout=s.request_timeout,
            connect_timeout=s.connect_timeout,
            reconnect_min=s.reconnect_min,
            reconnect_max=s.reconnect_max,
            protocol=s.upstream_protocol,
            on_change=on_change,
            on_notification=self._on_backend_notification,
            stdio_variants=s.stdio_variants,
            stdio_variant_idle=s.stdio_variant_idle,
        )

    # -- lifecycle ----------------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the background work for as long as the context is open."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            if self.nats is not None:
                await tg.start(self.nats.run)
                tg.start_soon(self.sessions.run)  # type: ignore[attr-defined]
                tg.start_soon(self._parked_link.run)
                tg.start_soon(self._events.run)
                tg.start_soon(self._interests.run)  # type: ignore[union-attr]
            if self._rate_runner is not None:
                tg.start_soon(self._rate_runner)
            tg.start_soon(self.pool.run_rebuilder)
            tg.start_soon(self._sweep_sessions)
            tg.start_soon(self.parking.run)
            await tg.start(self.dispatcher.run)
            for source in self.sources:
                tg.start_soon(self._follow, source, tg)
            if not self.sources:
                self.pool.catalog_loaded.set()
            for policy_source in self.policy_sources:
                tg.start_soon(follow, policy_source, self.guard, self.metrics)
            if self.auth.keys is not None:
                await self.auth.refresh_keys()
                tg.start_soon(self._refresh_keys)
            if self.audit.enabled:
                tg.start_soon(self.audit.run)
            try:
                yield
            finally:
                with anyio.CancelScope(shield=True):
                    await self.pool.stop_all()
                    await self.auth.close()
                tg.cancel_scope.cancel()

    def _event_stores(self) -> tuple[EventStore, Any]:
        """The event logs of polled streams kept here, and with replicas the service that resumes
        streams another replica keeps (and serves this one's to them)."""
        settings = self.settings
        events = EventStore(
            settings.event_store_streams,
            settings.event_store_events,
            replica=self.parking.replica if self.nats is not None else "",
        )
        if self.nats is None:
            return events, None
        from router.state.events_link import SharedEvents

        shared = SharedEvents(self.nats, events)
        self.nats.listeners.append(shared.start)
        return events, shared

    def _share_relay(self, link: NatsLink) -> None:
        """What crosses replicas besides sessions: cancellations and resource updates."""
        from router.state.updates import SharedInterests, SharedUpdates

        if isinstance(self.bus, NatsBus):  # a cancel POSTed to another replica ends the call here
            self.bus.on_cancel = self.endpoint.cancel
        self._updates = SharedUpdates(link, self.parking.replica, self._deliver_update)
        link.listeners.append(self._updates.start)
        self._interests = SharedInterests(link, self.parking.replica, self._sync_subscriptions)
        link.listeners.append(self._interests.start)

    def _share_resilience(self, link: NatsLink) -> None:
        """Rate-limit buckets in NATS KV and breaker hints on NATS, through the router's one link."""
        from router.guard.ratelimit_nats import NatsRateStore
        from router.upstream.hints_nats import NatsHints

        store = NatsRateStore(
            link,
            max_batch=self.settings.ratelimit_max_batch,
            lease_ttl=self.settings.ratelimit_lease_ttl,
            on_degraded=self._on_ratelimit_degraded,
        )
        hints = NatsHints(link)
        link.listeners += [store.on_link, hints.on_link]
        self.board.use(hints)
        self.rate_store = self.limiter.store = store
        self._rate_runner = store.run

    def _on_ratelimit_degraded(self, degraded: bool, replicas: int) -> None:
        self.metrics.ratelimit_degraded.set(1 if degraded else 0)
        self.metrics.ratelimit_replicas.set(replicas)

    def _on_rate_limited(self, server: str) -> None:
        self.metrics.ratelimit_rejected.labels(server).inc()

    def _on_breaker(self, server: str, instance: str, state: BreakerState, retry_in: float) -> None:
        self.metrics.breaker_state.labels(server, instance).set(STATE_VALUE[state])
        self.metrics.breaker_transitions.labels(server, state).inc()

    async def _follow(self, source: CatalogSource, tg: TaskGroup) -> None:
        async with aclosing(source.snapshots()) as snapshots:
            async for catalog in snapshots:
                self._limits[source.name] = catalog.limits
                self.limiter.configure([rule for rules in self._limits.values() for rule in rules])
                self._catalogs[source.name] = catalog
                if len(self._catalogs) == 1:
                    await self.pool.apply(catalog, tg)
                else:  # a static file and a registry together: serve both
                    merged = Catalog()
                    for each in self._catalogs.values():
                        merged = merged.merged(each)
                    await self.pool.apply(merged, tg)

    async def _refresh_keys(self) -> None:
        while True:
            await anyio.sleep(1.0)
            await self.auth.refresh_keys()

    async def _sweep_sessions(self) -> None:
        while True:
            await anyio.sleep(min(30.0, self.settings.session_idle_timeout / 2))
            if self.sessions.sweep(self.settings.session_idle_timeout):
                self.metrics.sessions.set(len(self.sessions))
            if isinstance(self.rate_store, MemoryRateStore):
                self.rate_store.forget_idle()

    async def _on_backend_notification(self, backend: Backend, message: Message) -> None:
        """A backend's own notification: resource updates go to the clients subscribed to them."""
        if message.get("method") != "notifications/resources/updated":
            return
        params = message.get("params") or {}
        uri = params.get("uri")
        if isinstance(uri, str):
            exposed = self.pool.naming.expose_uri(backend.server, uri)
            update = {
                "jsonrpc": "2.0",
                "method": "notifications/resources/updated",
                "params": {"uri": exposed},
            }
            if self._updates is not None:  # the stream may be on another replica, which may not hear it
                await self._updates.heard(update)
            else:
                self._deliver_update(update)

    def _deliver_update(self, update: Message) -> int:
        """Hand a resource update (heard here or by another replica) to the streams here that
        asked for it and, under a policy, whose agent may still read it."""
        return self.endpoint.broadcast(update, self._may_read(update["params"]["uri"]))

    def _may_read(self, uri: str) -> MayRead | None:
        """Under a policy, who may hear updates of `uri`: the agents whose view lets them read it
        now. Subscriptions were checked when made; this keeps a narrowed policy true for them."""
        guard = self.guard
        if guard.policy is None:
            return None
        target = self.pool.index.resolve_uri(uri)
        server = target.server if target is not None else None

        def may_read(agent: str, groups: frozenset[str]) -> bool:
            # A URI the catalog no longer resolves cannot be read either.
            return server is not None and guard.view(Agent(agent, groups)).allows("resources", server, uri)

        return may_read

    def _session_ended(self, session_id: str) -> None:
        """Release what a legacy session held: its subscriptions and its own upstream sessions."""
        self._sync_subscriptions()
        if self._tg is not None:
            self._tg.start_soon(self.dispatcher.forget_client, session_id)

    def _sync_subscriptions(self) -> None:
        """Make every backend hold the upstream subscriptions its clients' subscriptions need."""
        wanted: dict[str, set[str]] = {}
        interests = self.listen_streams.interests()
        if self._interests is not None:  # other replicas' listen streams: see state/updates.py
            self._interests.set_local(frozenset(interests))
            interests |= self._interests.remote()
        for session in self.sessions.all():
            interests.update(session.record.subscriptions)
        for uri in interests:
            target = self.pool.index.resolve_uri(uri)
            if target is not None:
                wanted.setdefault(target.server, set()).add(target.name)
        for (server, _), backend in self.pool.backends.items():
            backend.set_subscriptions(frozenset(wanted.get(server, ())))

    async def _on_index_change(self, old: Index, new: Index) -> None:
        """Tell clients what changed, once per kind, and refresh the catalog gauges."""
        sent: set[str] = set()
        for kind in LIST_KINDS:
            self.metrics.catalog_items.labels(kind).set(len(new.items(kind)))
            notification = LIST_CHANGED[kind]
            announced = notification in self.pool.announced  # a backend said so: pass it on
            if notification not in sent and (announced or old.items(kind) != new.items(kind)):
                sent.add(notification)
                self.endpoint.broadcast({"jsonrpc": "2.0", "method": notification})
        self.metrics.catalog_conflicts.set(len(new.conflicts))
        self.metrics.catalog_servers.set(len(new.servers))
        self._sync_subscriptions()  # a backend that (re)connected needs its subscriptions again
        for (server, instance), backend in self.pool.backends.items():
            self.metrics.backend_up.labels(server, instance).set(1 if backend.state == "ready" else 0)
            guard = self.pool.instances[(server, instance)]
            self.metrics.breaker_state.labels(server, instance).set(STATE_VALUE[guard.breaker.state])

    # -- HTTP ---------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path in {"/mcp", "/mcp/"}:
                await self.endpoint(scope, receive, send)
            elif path == "/healthz":
                await send_json(send, 200, {"status": "ok"})
            elif path == "/readyz":
                ready, detail = readiness(self)
                await send_json(send, 200 if ready else 503, detail)
            elif path == "/metrics":
                await self.metrics_app(scope, receive, send)
            elif path.startswith("/.well-known/oauth-protected-resource"):
                headers = decoded_headers(scope)
                await send_json(send, 200, self.auth.protected_resource_metadata(headers))
            elif path.startswith("/v1/tools"):
                await self.tools_endpoint(scope, receive, send)
            elif path in {"/admin", "/admin/"}:
                await serve_admin(self, scope, send)
            else:
                error = f"no such path {path}; MCP is served at /mcp, plain HTTP tool calls at /v1/tools"
                await send_json(send, 404, {"error": error})
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        started = False
        try:
            async with self.running():
                # What start-up built (modules, settings, the first catalog) lives as long as the
                # process: keep it out of the collector's full passes, which otherwise walk all of
                # it and stall requests for milliseconds (a p99 cost on the hot path).
                gc.freeze()
                await send({"type": "lifespan.startup.complete"})
                started = True
                message = await receive()
        except Exception as exc:
            log.exception("router failed")
            failed = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            await send({"type": failed, "message": repr(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})
