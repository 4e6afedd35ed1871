"""The replica's runtime: its background services, started and stopped in one place, and the
ASGI lifespan that runs them.

Every background service is an async context manager (`router/lifecycle.py`); `Runtime` enters
them in the order given on one `AsyncExitStack` when the lifespan starts and leaves them in the
reverse order when it ends. `app.py` gives the order: shared state first (the NATS link last of
it), then the in-process services, then the catalog feed that starts the backends; a final
step, entered last and so run first on the way out, stops the backends (children are killed)
and closes the identity checks before anything they use goes away.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, aclosing, asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup

from router.catalog.record import Catalog
from router.catalog.sources.base import CatalogSource
from router.guard.identity import Authenticator
from router.guard.ratelimit import MemoryRateStore, RateLimiter, RateStore
from router.lifecycle import Service
from router.observe.metrics import Metrics
from router.server.replies import Receive, Send
from router.state.sessions import SessionStore
from router.upstream.pool import BackendPool

log = logging.getLogger("toolmesh.router")


class Runtime:
    def __init__(self, services: Sequence[AbstractAsyncContextManager[Any]]) -> None:
        self.services = tuple(services)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run every service for as long as the context is open."""
        async with AsyncExitStack() as stack:
            for service in self.services:
                await stack.enter_async_context(service)
            yield

    async def lifespan(self, receive: Receive, send: Send) -> None:
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


class CatalogFeed(Service):
    """Follows every catalog source and applies what they say to the pool (the backends run in
    this service's task group); a static file and a registry together are served merged."""

    def __init__(self, sources: Sequence[CatalogSource], pool: BackendPool, limiter: RateLimiter) -> None:
        self.sources = tuple(sources)
        self.pool = pool
        self.limiter = limiter
        self._catalogs: dict[str, Catalog] = {}

    async def start(self, tg: TaskGroup) -> None:
        for source in self.sources:
            tg.start_soon(self._follow, source, tg)
        if not self.sources:
            self.pool.catalog_loaded.set()

    async def _follow(self, source: CatalogSource, tg: TaskGroup) -> None:
        async with aclosing(source.snapshots()) as snapshots:
            async for catalog in snapshots:
                self._catalogs[source.name] = catalog
                limits = [rule for each in self._catalogs.values() for rule in each.limits]
                self.limiter.configure(limits)
                if len(self._catalogs) == 1:
                    await self.pool.apply(catalog, tg)
                else:
                    merged = Catalog()
                    for each in self._catalogs.values():
                        merged = merged.merged(each)
                    await self.pool.apply(merged, tg)
                # Ready once every source has spoken, not the first: a static file (say, rate
                # limits only) answers at once, and a replica ready before the registry's servers
                # were applied would answer "unknown tool" to the calls the balancer sends it.
                if len(self._catalogs) == len(self.sources):
                    self.pool.catalog_loaded.set()


class Sweeper(Service):
    """Forgets idle sessions (and, in memory, idle rate-limit buckets) twice per idle timeout."""

    def __init__(
        self, sessions: SessionStore, rate_store: RateStore, idle_timeout: float, metrics: Metrics
    ) -> None:
        self.sessions = sessions
        self.rate_store = rate_store
        self.idle_timeout = idle_timeout
        self.metrics = metrics
        # Read when scraped: the sessions this replica holds, those it created and those it took
        # from the shared store on a first request alike (a gauge set only on create and delete
        # showed 0 on a replica that served only sessions created elsewhere).
        metrics.sessions.set_function(lambda: float(len(sessions)))

    async def start(self, tg: TaskGroup) -> None:
        tg.start_soon(self._sweep)

    async def _sweep(self) -> None:
        while True:
            await anyio.sleep(min(30.0, self.idle_timeout / 2))
            self.sessions.sweep(self.idle_timeout)
            if isinstance(self.rate_store, MemoryRateStore):
                self.rate_store.forget_idle()


class KeyRefresh(Service):
    """Re-reads the API key file every second (loaded once before serving)."""

    def __init__(self, auth: Authenticator) -> None:
        self.auth = auth

    async def start(self, tg: TaskGroup) -> None:
        await self.auth.refresh_keys()
        tg.start_soon(self._refresh)

    async def _refresh(self) -> None:
        while True:
            await anyio.sleep(1.0)
            await self.auth.refresh_keys()


class StartupGate(Service):
    """Entered after every other service: start-up (and so uvicorn's bind of the port, which
    comes after it) waits until the replica is ready, for at most `wait` seconds.

    A replica restarted behind a balancer that still counts it healthy (its checks run every few
    seconds) gets requests as soon as its port accepts them; accepted before the catalog is in,
    a call was answered "unknown tool". Refused connections the balancer retries elsewhere. A
    replica whose registry is unreachable listens after `wait` anyway, /readyz saying 503."""

    def __init__(self, ready: Callable[[], bool], wait: float) -> None:
        self.ready = ready
        self.wait = wait

    async def start(self, tg: TaskGroup) -> None:
        with anyio.move_on_after(self.wait):
            # polled, at start only: readiness is two parts' state (catalog and policy), not one event
            while not self.ready():  # noqa: ASYNC110
                await anyio.sleep(0.02)
        if not self.ready():
            log.warning(
                "not ready after the start-up wait; listening anyway, /readyz answers 503 until ready",
                extra={"startup_wait": self.wait},
            )


class Backends(Service):
    """Entered last: on the way out, stops every backend (children are killed) and closes the
    identity checks first, before the services they depend on stop."""

    def __init__(self, pool: BackendPool, auth: Authenticator) -> None:
        self.pool = pool
        self.auth = auth

    async def stop(self) -> None:
        await self.pool.stop_all()
        await self.auth.close()
