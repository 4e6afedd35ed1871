"""What a service registry is to toolmesh, and the catalog source that follows one.

One small interface, `Registry`, with one module per implementation (`consul.py`, `etcd.py`),
each over the shared store client of `router.kv`.
The registrar writes through it (register, heartbeat, deregister, approvals); the router reads
through it (`watch`). Record layout and key names are in `router.catalog.record`, so the two
sides share them.

Failure model: an implementation raises `RegistryUnavailable` (its library's errors translated
at the boundary) when the registry cannot be reached or answers with an error. `RegistrySource`
turns that into "keep the last catalog, report stale, reconnect with backoff".
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import NamedTuple, Protocol, Self

import anyio

from router.catalog.record import BackendRecord, Catalog
from router.kv.base import KeyValueStore, StoreUnavailable

log = logging.getLogger("toolmesh.catalog")


RegistryUnavailable = StoreUnavailable
"""The registry could not be reached, or refused the request; `str()` says why. The registries
talk to their stores through `router.kv`, whose failure this is."""


class Registry(Protocol):
    """A place backends register into and routers watch."""

    kind: str
    """"consul" or "etcd": the source name in /readyz and metrics."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def register(self, record: BackendRecord, definitions: bytes) -> None:
        """Write the record (passing health) and the canonical definitions under their hash."""

    async def heartbeat(self, record: BackendRecord, passing: bool, note: str) -> bool:
        """Report health; False if the registry no longer holds the record (the caller registers
        it again once the server passes). Consul keeps a failing record with a critical check;
        etcd, which has no health status, drops it."""
        ...

    async def deregister(self, record: BackendRecord) -> None:
        """Remove the record now."""

    async def approved(self, server: str) -> str | None:
        """The definitions hash an operator approved for `server`, if any."""
        ...

    async def approve(self, server: str, digest: str) -> None:
        """Approve `digest` as the definitions of `server`."""

    def watch(self) -> AsyncGenerator[Snapshot, None]:
        """Yield a snapshot of the records now, then again whenever they may have changed.

        Close it with `contextlib.aclosing` in the task that iterates it (it may hold a task
        group); raises RegistryUnavailable when the registry goes away."""
        ...


class StoreRegistry:
    """What both registries share: one `router.kv` store client, open while the registry is entered."""

    kv: KeyValueStore

    async def __aenter__(self) -> Self:
        await self.kv.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kv.__aexit__(*exc)


class Snapshot(NamedTuple):
    """What a watch yields: the passing instances and, apart, those the registry still holds with
    a failing check (Consul; etcd drops them). The router keeps a failing instance it already
    runs connected but out of rotation, so it is back at once when its check passes again."""

    passing: list[BackendRecord]
    critical: tuple[BackendRecord, ...] = ()


class RegistrySource:
    """A CatalogSource over a Registry: snapshots as instances come, fail health and go.

    A registry that cannot be reached leaves the last catalog in force (nothing is yielded) and
    flips `healthy` to False; the watch is retried with exponential backoff and jitter.
    """

    def __init__(
        self,
        make_registry: Callable[[], Registry],
        kind: str,
        *,
        backoff_min: float = 0.2,
        backoff_max: float = 10.0,
        on_health: Callable[[bool], None] | None = None,
    ) -> None:
        self.name = kind
        self._make_registry = make_registry
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self._healthy: bool | None = None  # unknown until the first attempt
        self._on_health = on_health

    @property
    def healthy(self) -> bool:
        return bool(self._healthy)

    async def approve(self, server: str, digest: str) -> None:
        """Approve `digest` as `server`'s definitions in this registry (what `toolmesh approve`
        does; the console asks it of the router's own sources)."""
        async with self._make_registry() as registry:
            await registry.approve(server, digest)

    def _set_health(self, healthy: bool, reason: str = "") -> None:
        if healthy != self._healthy:
            if healthy:
                log.info("registry reachable", extra={"source": self.name})
            else:
                log.warning(
                    "registry unreachable; serving the last known catalog",
                    extra={"source": self.name, "reason": reason},
                )
        self._healthy = healthy
        if self._on_health is not None:
            self._on_health(healthy)

    async def snapshots(self) -> AsyncGenerator[Catalog, None]:
        delay = self.backoff_min
        last: Catalog | None = None
        while True:
            try:
                async with self._make_registry() as registry, aclosing(registry.watch()) as watch:
                    async for passing, critical in watch:
                        self._set_health(True)
                        delay = self.backoff_min
                        catalog = Catalog.of([*passing, *critical], [r.key for r in critical])
                        if catalog != last:
                            last = catalog
                            yield catalog
            except RegistryUnavailable as exc:
                self._set_health(False, str(exc))
            except Exception as exc:  # a bug or a library surprise must not stop discovery
                log.exception("registry watch failed", extra={"source": self.name})
                self._set_health(False, repr(exc))
            await anyio.sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(delay * 2, self.backoff_max)
