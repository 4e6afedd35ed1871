"""Which instance of a server takes the next call, and how many calls one instance may hold.

Power of two choices over least outstanding requests: sample two eligible instances, take the
one with fewer calls in flight. It needs no shared state, avoids the herd that pure
least-outstanding causes when many callers see the same counts, and costs O(1) per call.

Eligible means ready, breaker letting calls through, not marked critical by the registry and not
already tried by this call. Instances another replica hinted as open are used only when nothing
else is left. A legacy session that already used an instance keeps using it while it is
eligible (affinity), so backends that keep per-connection state see one client on one instance.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import anyio

from router.errors import BackendBusy
from router.upstream.backend import Backend
from router.upstream.breaker import BreakerBoard, InstanceBreaker


class Slots:
    """A concurrency limit with a bounded queue and a queue timeout, for one instance."""

    def __init__(self, server: str, limit: int, queue: int, queue_timeout: float) -> None:
        self.server, self.limit, self.queue, self.queue_timeout = server, limit, queue, queue_timeout
        self._semaphore = anyio.Semaphore(limit)
        self.waiting = 0

    async def acquire(self) -> None:
        try:
            self._semaphore.acquire_nowait()
            return
        except anyio.WouldBlock:
            pass
        if self.waiting >= self.queue:
            raise BackendBusy(
                self.server, f"{self.limit} calls in flight and {self.waiting} waiting (the queue is full)"
            )
        self.waiting += 1
        try:
            with anyio.fail_after(self.queue_timeout):
                await self._semaphore.acquire()
        except TimeoutError:
            raise BackendBusy(
                self.server, f"no free slot within {self.queue_timeout:g} s ({self.limit} calls in flight)"
            ) from None
        finally:
            self.waiting -= 1

    def release(self) -> None:
        self._semaphore.release()


@dataclass(eq=False, slots=True)
class Instance:
    """What the router keeps per instance besides its connection."""

    backend: Backend
    breaker: InstanceBreaker
    slots: Slots
    outstanding: int = 0
    critical: bool = field(default=False)

    @property
    def instance_id(self) -> str:
        return self.backend.record.instance_id


def critical(instance: Instance) -> bool:
    """The registry's verdict (a failing health check, `Catalog.critical`), set by the pool."""
    return instance.critical


def eligible(instance: Instance) -> bool:
    return instance.backend.state == "ready" and instance.breaker.available() and not critical(instance)


def choose(
    instances: Sequence[Instance],
    board: BreakerBoard,
    tried: Collection[Instance] = (),
    preferred: str | None = None,
) -> Instance | None:
    """The instance for the next attempt, or None if no instance may take it."""
    if len(instances) == 1 and not tried:  # the common case: one instance, no choice to make
        only = instances[0]
        return only if eligible(only) else None
    pool = [i for i in instances if i not in tried and eligible(i)]
    if preferred is not None:
        for instance in pool:
            if instance.instance_id == preferred:
                return instance
    fresh = [i for i in pool if not board.hinted_open(i.backend.server, i.instance_id)]
    pool = fresh or pool
    if len(pool) <= 1:
        return pool[0] if pool else None
    first, second = random.sample(pool, 2)
    return first if first.outstanding <= second.outstanding else second
