"""Assembles the router: the ASGI app with /mcp, /healthz, /readyz and /metrics, and its runtime.

The runtime's background work (watching the catalog, supervising backends, rebuilding the index,
sweeping idle sessions) runs in one task group that lives as long as the ASGI lifespan, and is
shut down in order: stop accepting, stop backends (children are killed), then return.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from anyio.abc import TaskGroup
from prometheus_client import make_asgi_app

from router.catalog.index import LIST_KINDS, Index
from router.catalog.naming import NamingPolicy
from router.catalog.record import BackendRecord
from router.catalog.sources.base import CatalogSource
from router.catalog.sources.static import StaticFileSource
from router.observe.metrics import Metrics
from router.relay.cursors import CursorCodec
from router.relay.dispatch import Dispatcher
from router.server.http import McpEndpoint
from router.server.security import OriginPolicy
from router.settings import RouterSettings
from router.state.bus import ClientBus, LocalBus
from router.state.sessions import MemorySessionStore, SessionIds, SessionStore
from router.upstream.backend import Backend
from router.upstream.pool import BackendPool

if TYPE_CHECKING:
    from router.state.nats_link import NatsLink

log = logging.getLogger("toolmesh.router")

LIST_CHANGED = {
    "tools": "notifications/tools/list_changed",
    "prompts": "notifications/prompts/list_changed",
    "resources": "notifications/resources/list_changed",
    "resourceTemplates": "notifications/resources/list_changed",
}


class Router:
    """One router replica: its parts, wired together, and the ASGI callable that serves them."""

    def __init__(self, settings: RouterSettings, sources: list[CatalogSource] | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        naming = NamingPolicy(settings.prefix, settings.separator, settings.max_name_length)
        self.pool = BackendPool(naming, self._make_backend)
        self.pool.listeners.append(self._on_index_change)
        key = (
            settings.cluster_key.get_secret_value().encode()
            if settings.cluster_key
            else secrets.token_bytes(32)
        )
        self.dispatcher = Dispatcher(self.pool, CursorCodec(key), settings.page_size, settings.list_ttl_ms)
        self.nats, self.sessions, bus = self._shared_state(key)
        policy = OriginPolicy(settings.host, settings.allowed_hosts, settings.allowed_origins)
        self.endpoint = McpEndpoint(
            self.dispatcher,
            self.sessions,
            policy,
            self.metrics,
            max_body_bytes=settings.max_body_bytes,
            max_sessions=settings.max_sessions,
            bus=bus,
        )
        if sources is None:
            sources = (
                [StaticFileSource(settings.config, settings.catalog_poll_interval)] if settings.config else []
            )
        self.sources = sources
        self.metrics_app = make_asgi_app(registry=self.metrics.registry)

    def _shared_state(self, key: bytes) -> tuple[NatsLink | None, SessionStore, ClientBus]:
        """In-memory sessions and delivery, or (with `nats`) the shared ones; see state/."""
        ids = SessionIds(key)
        if not self.settings.nats:
            store = MemorySessionStore(ids)
            return None, store, LocalBus(store)
        from prometheus_client import Gauge

        from router.state.bus import NatsBus
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
        )

    # -- lifecycle ----------------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the background work for as long as the context is open."""
        async with anyio.create_task_group() as tg:
            if self.nats is not None:
                await tg.start(self.nats.run)
                tg.start_soon(self.sessions.run)  # type: ignore[attr-defined]
            tg.start_soon(self.pool.run_rebuilder)
            tg.start_soon(self._sweep_sessions)
            for source in self.sources:
                tg.start_soon(self._follow, source, tg)
            if not self.sources:
                self.pool.catalog_loaded.set()
            try:
                yield
            finally:
                with anyio.CancelScope(shield=True):
                    await self.pool.stop_all()
                tg.cancel_scope.cancel()

    async def _follow(self, source: CatalogSource, tg: TaskGroup) -> None:
        async for catalog in source.snapshots():
            await self.pool.apply(catalog, tg)

    async def _sweep_sessions(self) -> None:
        while True:
            await anyio.sleep(min(30.0, self.settings.session_idle_timeout / 2))
            if self.sessions.sweep(self.settings.session_idle_timeout):
                self.metrics.sessions.set(len(self.sessions))

    async def _on_index_change(self, old: Index, new: Index) -> None:
        """Tell clients what changed, once per kind, and refresh the catalog gauges."""
        sent: set[str] = set()
        for kind in LIST_KINDS:
            self.metrics.catalog_items.labels(kind).set(len(new.items(kind)))
            notification = LIST_CHANGED[kind]
            if notification not in sent and old.items(kind) != new.items(kind):
                sent.add(notification)
                self.endpoint.broadcast({"jsonrpc": "2.0", "method": notification})
        self.metrics.catalog_conflicts.set(len(new.conflicts))
        for (server, instance), backend in self.pool.backends.items():
            self.metrics.backend_up.labels(server, instance).set(1 if backend.state == "ready" else 0)

    # -- HTTP ---------------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        ready = self.pool.catalog_loaded.is_set()
        backends = {
            f"{server}/{instance}" if server != instance else server: {
                "state": backend.state,
                **({"error": backend.last_error} if backend.last_error and backend.state != "ready" else {}),
            }
            for (server, instance), backend in sorted(self.pool.backends.items())
        }
        degraded = self.nats is not None and not self.nats.connected
        detail: dict[str, Any] = {
            "status": ("degraded" if degraded else "ready") if ready else "loading",
            "catalog": {source.name: "ok" if source.healthy else "stale" for source in self.sources},
            "backends": backends,
        }
        if self.nats is not None:
            # Degraded still answers 200: the replica serves its own sessions; the LB keeps it.
            detail["nats"] = "connected" if self.nats.connected else "disconnected"
        conflicts = self.pool.index.conflicts
        if conflicts:
            detail["conflicts"] = [{"kind": c.kind, "name": c.name, "servers": c.servers} for c in conflicts]
        return ready, detail

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path in {"/mcp", "/mcp/"}:
                await self.endpoint(scope, receive, send)
            elif path == "/healthz":
                await _json(send, 200, {"status": "ok"})
            elif path == "/readyz":
                ready, detail = self.readiness()
                await _json(send, 200 if ready else 503, detail)
            elif path == "/metrics":
                await self.metrics_app(scope, receive, send)
            else:
                await _json(send, 404, {"error": f"no such path {path}; MCP is served at /mcp"})
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        started = False
        try:
            async with self.running():
                await send({"type": "lifespan.startup.complete"})
                started = True
                message = await receive()
        except Exception as exc:
            log.exception("router failed")
            failed = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            await send({"type": failed, "message": repr(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})


async def _json(send: Any, status: int, payload: dict[str, Any]) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": orjson.dumps(payload)})
