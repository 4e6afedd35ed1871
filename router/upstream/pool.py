"""Every backend instance the catalog names, kept running, and the index built from them.

The pool applies catalog snapshots as diffs (start what is new, stop what is gone, leave the
rest connected), picks a ready instance for each call, and rebuilds the aggregated index when any
instance's definitions or state change. Rebuilds are coalesced: a burst of changes costs one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from router.catalog.index import Definitions, Index
from router.catalog.naming import NamingPolicy
from router.catalog.record import BackendRecord, Catalog
from router.errors import BackendUnavailable
from router.upstream.backend import Backend

log = logging.getLogger("toolmesh.upstream")

IndexListener = Callable[[Index, Index], Awaitable[None]]


class BackendPool:
    def __init__(
        self,
        naming: NamingPolicy,
        make_backend: Callable[[BackendRecord, Callable[[Backend], None]], Backend],
    ) -> None:
        self.naming = naming
        self._make_backend = make_backend
        self.backends: dict[tuple[str, str], Backend] = {}
        self._by_server: dict[str, list[Backend]] = {}
        self._scopes: dict[tuple[str, str], anyio.CancelScope] = {}
        self.index = Index(naming, {})
        self._generation = 0
        self._rebuild_wanted = anyio.Event()
        self.listeners: list[IndexListener] = []
        self.catalog_loaded = anyio.Event()

    # -- catalog ------------------------------------------------------------------------------

    async def apply(self, catalog: Catalog, task_group: TaskGroup) -> None:
        """Make the running backends match `catalog`; wait for new ones' first connect attempt."""
        wanted = {record.key: record for record in catalog.records()}
        for key in [key for key, backend in self.backends.items() if wanted.get(key) != backend.record]:
            self._stop(key)
        started = [
            self._start(record, task_group) for key, record in wanted.items() if key not in self.backends
        ]
        with anyio.move_on_after(max((b.connect_timeout for b in started), default=0) + 1):
            for backend in started:
                await backend.first_attempt.wait()
        await self.rebuild()
        self.catalog_loaded.set()

    def _start(self, record: BackendRecord, task_group: TaskGroup) -> Backend:
        backend = self._make_backend(record, self._on_backend_change)
        scope = anyio.CancelScope()
        self.backends[record.key], self._scopes[record.key] = backend, scope
        self._by_server.setdefault(record.server, []).append(backend)

        async def supervise() -> None:
            with scope:
                await backend.run()

        task_group.start_soon(supervise)
        log.info("backend added", extra={"server": record.server, "instance": record.instance_id})
        return backend

    def _stop(self, key: tuple[str, str]) -> None:
        backend = self.backends.pop(key)
        siblings = self._by_server[key[0]]
        siblings.remove(backend)
        if not siblings:
            del self._by_server[key[0]]
        self._scopes.pop(key).cancel()
        log.info("backend removed", extra={"server": key[0], "instance": key[1]})
        self._rebuild_wanted.set()

    async def stop_all(self) -> None:
        for key in list(self.backends):
            self._stop(key)

    # -- routing ------------------------------------------------------------------------------

    def pick(self, server: str) -> Backend:
        """A ready instance of `server`; fails fast, naming the server, if there is none."""
        candidates = self._by_server.get(server, ())
        for backend in candidates:
            if backend.state == "ready":
                return backend
        if not candidates:
            raise BackendUnavailable(server, "it is not in the catalog")
        raise BackendUnavailable(server, candidates[0]._down_reason())

    # -- index --------------------------------------------------------------------------------

    def _on_backend_change(self, backend: Backend) -> None:
        self._rebuild_wanted.set()

    async def run_rebuilder(self) -> None:
        """Rebuild the index whenever asked, at most once per wake-up."""
        while True:
            await self._rebuild_wanted.wait()
            await anyio.lowlevel.checkpoint()  # let a burst of changes land first
            self._rebuild_wanted = anyio.Event()
            await self.rebuild()

    async def rebuild(self) -> None:
        """Build a new index from what the backends know now and tell the listeners."""
        old = self.index
        self._generation += 1
        self.index = Index(self.naming, self._server_definitions(), self._generation)
        for listener in self.listeners:
            try:
                await listener(old, self.index)
            except Exception:  # a listener's bug must not stop the catalog from updating
                log.exception("index listener failed")

    def _server_definitions(self) -> dict[str, Definitions]:
        """One definitions set per server, from a ready instance (instances are interchangeable)."""
        result: dict[str, Definitions] = {}
        for (server, _), backend in sorted(self.backends.items()):
            if backend.definitions is not None and (server not in result or backend.state == "ready"):
                result[server] = backend.definitions
        return result
