"""Every backend instance the catalog names, kept running, and the index built from them.

The pool applies catalog snapshots as diffs (start what is new, stop what is gone, leave the
rest connected), keeps each instance's breaker and concurrency slots beside it, hands calls to
the caller (balancing, timeouts, retries: router.upstream.caller), and rebuilds the aggregated
index when any instance's definitions or state change. Rebuilds are coalesced: a burst of
changes costs one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from router.catalog.index import Definitions, Index
from router.catalog.naming import NamingPolicy
from router.catalog.record import BackendRecord, Catalog
from router.catalog.server_rules import ServerPolicy
from router.lifecycle import Service
from router.upstream.backend import Backend
from router.upstream.balancer import Instance, Slots, choose
from router.upstream.breaker import BreakerBoard, InstanceBreaker
from router.upstream.caller import Caller, CallSettings

log = logging.getLogger("toolmesh.upstream")

IndexListener = Callable[[Index, Index], Awaitable[None]]


class BackendPool(Service):
    """The backends of the catalog, and the index built from them; a service that rebuilds the
    index in the background whenever a backend changes."""

    def __init__(
        self,
        naming: NamingPolicy,
        make_backend: Callable[[BackendRecord, Callable[[Backend], None]], Backend],
        calls: CallSettings | None = None,
        board: BreakerBoard | None = None,
        listeners: Sequence[IndexListener] = (),
    ) -> None:
        """`listeners` are told of every new index (old, new), in order."""
        self.naming = naming
        self._make_backend = make_backend
        self.withheld: tuple[BackendRecord, ...] = ()  # quarantined instances, never started
        self.calls = calls or CallSettings()
        self.board = board or BreakerBoard()
        self.backends: dict[tuple[str, str], Backend] = {}
        self.instances: dict[tuple[str, str], Instance] = {}
        self._by_server: dict[str, list[Instance]] = {}
        self.caller = Caller(self._by_server, self.board, self.calls)
        self._scopes: dict[tuple[str, str], anyio.CancelScope] = {}
        self.index = Index(naming, {})
        self._generation = 0
        self._rebuild_wanted = anyio.Event()
        self.listeners = tuple(listeners)
        # list_changed notifications backends sent since the previous rebuild (for the listeners)
        self.announced: frozenset[str] = frozenset()
        self.catalog_loaded = anyio.Event()  # set by the catalog feed once every source has spoken

    # -- catalog ------------------------------------------------------------------------------

    async def apply(self, catalog: Catalog, task_group: TaskGroup) -> None:
        """Make the running backends match `catalog`; wait for new ones' first connect attempt."""
        self.withheld = catalog.withheld
        critical = catalog.critical
        # A failing instance already running stays connected (out of rotation); a new one waits.
        wanted = {
            record.key: record
            for record in catalog.records()
            if record.key not in critical or record.key in self.backends
        }
        for key in [key for key, backend in self.backends.items() if wanted.get(key) != backend.record]:
            self._stop(key)
        started = [
            self._start(record, task_group) for key, record in wanted.items() if key not in self.backends
        ]
        for key, instance in self.instances.items():
            if instance.critical != (key in critical):
                instance.critical = key in critical
                self.caller.forget(key[0])
                log.info(
                    "instance out of rotation: the registry reports it failing"
                    if instance.critical
                    else "instance back in rotation: its health check passes",
                    extra={"server": key[0], "instance": key[1]},
                )
        with anyio.move_on_after(max((b.connect_timeout for b in started), default=0) + 1):
            for backend in started:
                await backend.first_attempt.wait()
        await self.rebuild()

    def _start(self, record: BackendRecord, task_group: TaskGroup) -> Backend:
        backend = self._make_backend(record, self._on_backend_change)
        scope = anyio.CancelScope()
        self.backends[record.key], self._scopes[record.key] = backend, scope
        instance = Instance(backend, self._breaker(record), self._slots(record))
        self.instances[record.key] = instance
        self._by_server.setdefault(record.server, []).append(instance)
        self.caller.forget(record.server)

        async def supervise() -> None:
            with scope:
                await backend.run()

        task_group.start_soon(supervise)
        log.info("backend added", extra={"server": record.server, "instance": record.instance_id})
        return backend

    def _stop(self, key: tuple[str, str]) -> None:
        del self.backends[key]
        siblings = self._by_server[key[0]]
        siblings.remove(self.instances.pop(key))
        if not siblings:
            del self._by_server[key[0]]
        self.caller.forget(key[0])
        self._scopes.pop(key).cancel()
        log.info("backend removed", extra={"server": key[0], "instance": key[1]})
        self._rebuild_wanted.set()

    async def stop_all(self) -> None:
        for key in list(self.backends):
            self._stop(key)

    # -- routing ------------------------------------------------------------------------------

    def _breaker(self, record: BackendRecord) -> InstanceBreaker:
        return InstanceBreaker(
            record.server,
            record.instance_id,
            self.board,
            fail_max=self.calls.breaker_failures,
            reset_timeout=self.calls.breaker_reset,
        )

    def _slots(self, record: BackendRecord) -> Slots:
        policy = record.policy
        return Slots(
            record.server,
            policy.max_concurrency or self.calls.max_concurrency,
            self.calls.max_queue if policy.max_queue is None else policy.max_queue,
            self.calls.queue_timeout,
        )

    def pick(self, server: str) -> Backend:
        """An eligible instance of `server` (see balancer); fails fast, naming the server, if none."""
        instance = choose(self._by_server.get(server, ()), self.board)
        if instance is None:
            raise self.caller.none_available(server, ())
        return instance.backend

    def policy_of(self, server: str) -> ServerPolicy | None:
        """The call policy of `server` (from any of its instances: a server has one entry)."""
        instances = self._by_server.get(server)
        return instances[0].backend.record.policy if instances else None

    async def forget_client(self, session_id: str) -> None:
        """A client's session ended: every backend closes what it lent that client."""
        for backend in list(self.backends.values()):
            await backend.forget_client(session_id)

    # -- index --------------------------------------------------------------------------------

    def _on_backend_change(self, backend: Backend) -> None:
        self.caller.forget(backend.server)
        self._rebuild_wanted.set()

    async def start(self, tg: TaskGroup) -> None:
        tg.start_soon(self._rebuild_when_asked)

    async def _rebuild_when_asked(self) -> None:
        """Rebuild the index whenever asked, at most once per wake-up."""
        while True:
            await self._rebuild_wanted.wait()
            await anyio.lowlevel.checkpoint()  # let a burst of changes land first
            self._rebuild_wanted = anyio.Event()
            await self.rebuild()

    async def rebuild(self) -> None:
        """Build a new index from what the backends know now and tell the listeners."""
        old = self.index
        self.announced = frozenset(m for backend in self.backends.values() for m in backend.take_announced())
        self._generation += 1
        self.index = Index(self.naming, self._server_definitions(), self._generation)
        for listener in self.listeners:
            try:
                await listener(old, self.index)
            except Exception:  # a listener's bug must not stop the catalog from updating
                log.exception("index listener failed")

    def _server_definitions(self) -> dict[str, Definitions]:
        """One definitions set per server, from a ready instance (instances are interchangeable).
        Instances the registry reports failing count for nothing: a server with only those is
        not offered."""
        result: dict[str, Definitions] = {}
        for key, backend in sorted(self.backends.items()):
            if self.instances[key].critical or backend.definitions is None:
                continue
            if key[0] not in result or backend.state == "ready":
                result[key[0]] = backend.definitions
        return result
