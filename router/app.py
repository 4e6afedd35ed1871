"""Assembles one router replica: builds its parts, each given what it needs, in dependency order.

What each part is lives in its own module; here is only how they fit. Settings become parts in
`wiring.py` (implementations named in the tables of `seams.py`), the state replicas share comes
from `router/cluster/` when `--nats` is set, what clients hear of changes is `changes.py`, which
path goes where is `routes.py`, and the background services start and stop in `runtime.py`, in
the order given at the end of `__init__`.
"""

from __future__ import annotations

import secrets
from typing import Any

from router import wiring
from router.catalog.index import Index
from router.catalog.naming import NamingPolicy
from router.catalog.search.live import LiveSearch
from router.catalog.sources.base import CatalogSource
from router.changes import Changes
from router.guard.budget_report import BudgetGauges
from router.guard.budgets import Budget, Budgets, BudgetWarning
from router.guard.credential_keys import KeyedSecrets
from router.guard.guard import Guard
from router.guard.policy_sources import follow
from router.guard.ratelimit import RateLimiter
from router.guard.rego import RegoWorkers
from router.lifecycle import Task
from router.observe.metrics import Metrics
from router.observe.usage import Usage, UsageCounters, UsageLedger
from router.relay.asking import Asker
from router.relay.context import CallContext
from router.relay.cursors import CursorCodec
from router.relay.dispatch import Dispatcher
from router.relay.meta_tools import ToolSearch
from router.relay.output_limit import OutputLimits
from router.relay.parking import Parking, StateCodec
from router.routes import Routes
from router.runtime import Backends, CatalogFeed, KeyRefresh, Runtime, StartupGate, Sweeper
from router.server.bookkeeping import CallObserver
from router.server.events import EventStore
from router.server.operator import Replica
from router.server.replies import Receive, Send
from router.settings import RouterSettings
from router.state.listeners import ListenStreams
from router.state.sessions import SessionIds
from router.upstream.backend import Backend
from router.upstream.base import Message
from router.upstream.breaker import BreakerBoard
from router.upstream.pool import BackendPool


class Router:
    """One router replica: its parts, wired together, and the ASGI callable that serves them."""

    def __init__(self, settings: RouterSettings, sources: list[CatalogSource] | None = None) -> None:
        s = self.settings = settings
        self.metrics = Metrics(agent_label=s.metrics_agent_label)
        self.auth = wiring.authenticator_from(s)
        self.rego_workers = RegoWorkers()  # where the policy's Rego decisions run (guard/rego.py)
        self.guard = Guard(self.metrics.policy_decision_failed, self.rego_workers)
        self.policy_sources = wiring.policy_sources_from(s)
        if self.policy_sources:  # fail closed until the configured policy has loaded
            self.guard.install(b'{"default": "deny"}', "(built-in: deny until the policy loads)")
        key = s.cluster_key.get_secret_value().encode() if s.cluster_key else secrets.token_bytes(32)
        self.parking = Parking(StateCodec(key), s.request_timeout)
        replica = self.parking.replica
        events = EventStore(s.event_store_streams, s.event_store_events, replica=replica if s.nats else "")
        shared = self.shared = wiring.shared_state_from(
            s, self, ids=SessionIds(key), events=events, replica=replica, metrics=self.metrics
        )
        self.sessions = shared.sessions
        self.board = BreakerBoard(shared.hints, listeners=[self.metrics.breaker_changed])
        naming = NamingPolicy(s.prefix, s.separator, s.max_name_length)
        self.signer = wiring.backend_signer_from(s, shared)
        make_backend = wiring.backend_factory(s, self._on_backend_notification, self.signer)
        listeners = [self._on_index_change, *shared.index_listeners]
        self.pool = BackendPool(naming, make_backend, wiring.call_settings_from(s), self.board, listeners)
        self.limiter = RateLimiter(shared.rate_store, self.metrics.rate_limited)
        self.listen_streams = ListenStreams()
        self.tool_search = ToolSearch(
            wiring.tools_settings_from(s),
            self.pool.caller.serving,
            LiveSearch(meanings=wiring.meanings_from(s)),
        )
        self.secrets = KeyedSecrets(wiring.kv_store, s.credential_key_ttl)
        self.dispatcher = Dispatcher(
            self.pool,
            CursorCodec(key),
            s.page_size,
            s.list_ttl_ms,
            forward_identity=s.forward_identity,
            asker=Asker(shared.bus, s.request_timeout),
            parking=self.parking,
            on_subscriptions=self.sync_subscriptions,
            limiter=self.limiter,
            forward_parked=shared.forward_parked,
            records=shared.records,
            output_limits=OutputLimits(s.max_result_bytes, s.result_over_limit),
            tool_search=self.tool_search,
            signer=self.signer,
            secrets=self.secrets,
            budgets=Budgets(shared.budget_store, on_exceeded=self.metrics.over_budget),
        )
        gauges = (self._budgets_in_force, shared.budget_store, self.metrics.registry)
        BudgetGauges(*gauges, agent_label=s.metrics_agent_label)
        self.audit, self.recent = wiring.audit_from(s, shared.publisher, self.metrics)
        self.usage: Usage = shared.usage or UsageLedger(s.usage_retention)
        UsageCounters(self.usage, self.metrics.registry, agent_label=self.metrics.agent_label)
        spans = wiring.otel_spans_from(s)
        observer = self.observer = CallObserver(self.metrics, self.audit, self.usage, spans)
        self.endpoint = wiring.endpoint_from(
            s,
            self.dispatcher,
            self.sessions,
            shared,
            self.metrics,
            self.auth,
            self.guard,
            observer,
            events,
            listen_streams=self.listen_streams,
        )
        self.changes = Changes(
            self.pool, self.endpoint, self.dispatcher, self.guard, self.sessions, self.listen_streams,
            self.metrics, updates=shared.updates, interests=shared.interests, tool_search=self.tool_search,
        )  # fmt: skip
        self.sources = sources if sources is not None else wiring.catalog_sources_from(s, self.metrics)
        view = Replica(
            self.pool, self.guard, self.policy_sources, self.sources, self.sessions, shared.rate_store,
            self.auth, self.metrics, frozenset(s.admin_groups), nats=shared.link,
            capabilities=self.dispatcher.capability_calls, budget_store=shared.budget_store,
        )  # fmt: skip
        self.runtime = Runtime(
            [
                *shared.services,
                self.signer,  # keys before the first backend connects
                self.pool,
                self.changes,
                Sweeper(self.sessions, shared.rate_store, s.session_idle_timeout, self.metrics),
                self.parking,
                self.dispatcher,
                self.rego_workers,  # before the policy: a policy with `rego` starts its workers
                *(
                    Task(follow, source, self.guard, self.metrics, self.changes.on_policy_change)
                    for source in self.policy_sources
                ),
                *([KeyRefresh(self.auth)] if self.auth.keys is not None else []),
                self.audit,
                *([spans] if spans is not None else []),
                CatalogFeed(self.sources, self.pool, self.limiter),
                Backends(self.pool, self.auth),
                StartupGate(view.ready, s.startup_wait),
            ]
        )
        self.routes = Routes.serving(
            s,
            self.endpoint,
            view,
            self.runtime.lifespan,
            search=self.tool_search,
            audit=self.audit,
            recent=self.recent,
            usage=self.usage,
            signer=self.signer,
        )

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await self.routes(scope, receive, send)

    # -- late-bound: parts built before `changes`, the endpoint or the dispatcher call these --

    async def _on_index_change(self, old: Index, new: Index) -> None:
        await self.changes.on_index_change(old, new)

    async def _on_backend_notification(self, backend: Backend, message: Message) -> None:
        await self.changes.on_backend_notification(backend, message)

    def _budgets_in_force(self) -> tuple[Budget, ...]:
        return self.guard.policy.budgets if self.guard.policy is not None else ()

    # -- seams.Host: what shared state calls back into -------------------------------------

    def session_ended(self, session_id: str, *, subscribed: bool = True) -> None:
        self.changes.session_ended(session_id, subscribed=subscribed)

    def sync_subscriptions(self) -> None:
        self.changes.sync_subscriptions()

    def deliver_update(self, update: Message) -> int:
        return self.changes.deliver_update(update)

    def cancel(self, session_id: str, request_id: Any) -> bool:
        return self.endpoint.cancel(session_id, request_id)

    async def resume_here(self, server: str, params: dict[str, Any], ctx: CallContext) -> Message:
        return await self.dispatcher.resume_here(server, params, ctx)

    def refresh_servers(self, servers: set[str]) -> int:
        return self.changes.refresh_servers(servers)

    def budget_warning(self, warning: BudgetWarning) -> None:
        self.observer.budget_warning(warning)
