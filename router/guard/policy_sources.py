"""Where the policy comes from: a file, a Consul KV key, or an etcd key.

Each source yields the raw policy bytes whenever they change (None when the key or file is
gone); `follow()` validates and installs them in the Guard. An invalid update is logged with the
exact field and fix, counted, and ignored: the last valid policy stays in force. A deleted key
also keeps the last policy (deleting a policy must not open everything up).

The Consul and etcd sources are one class over `router.kv`, the store client classes the
registry (`catalog/sources/`) uses too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Protocol

import anyio

from router.errors import ConfigError
from router.guard.guard import Guard
from router.guard.policy import Policy
from router.kv.base import KeyValueStore, StoreUnavailable
from router.observe.metrics import Metrics

log = logging.getLogger("toolmesh.guard")


class PolicySource(Protocol):
    name: str

    def updates(self) -> AsyncIterator[bytes | None]:
        """The policy bytes at start and after every change; None if there is none."""
        ...


class FilePolicySource:
    def __init__(self, path: Path, interval: float) -> None:
        self.path, self.interval = path, interval
        self.name = f"file {path}"

    async def updates(self) -> AsyncIterator[bytes | None]:
        stamp: tuple[float, int] | None = None
        first = True
        while True:
            current, data = await anyio.to_thread.run_sync(self._read)
            if first or current != stamp:
                stamp, first = current, False
                yield data
            await anyio.sleep(self.interval)

    def _read(self) -> tuple[tuple[float, int] | None, bytes | None]:
        try:
            stat = self.path.stat()
            return (stat.st_mtime, stat.st_size), self.path.read_bytes()
        except OSError:
            return None, None


class KeyPolicySource:
    """One key in Consul KV or etcd, through a `router.kv` store client (as the registry's): its value
    at start, then every change (a Consul blocking query, an etcd watch). A store that cannot be
    reached is retried with backoff; a value that did not change is not yielded again."""

    def __init__(self, store: KeyValueStore, key: str) -> None:
        self.store, self.key = store, key
        self.name = f"{store.kind} {key}"

    async def updates(self) -> AsyncIterator[bytes | None]:
        last: bytes | object | None = _UNSET
        delay = 0.5
        while True:
            try:
                async with self.store as store, aclosing(store.watch_key(self.key)) as values:
                    async for value in values:
                        delay = 0.5
                        if value != last:
                            last = value
                            yield value
            except StoreUnavailable as exc:
                log.warning(
                    "policy watch failed; retrying",
                    extra={"source": self.name, "key": self.key, "reason": str(exc)},
                )
            await anyio.sleep(delay)
            delay = min(delay * 2, 10.0)


_UNSET = object()


async def follow(
    source: PolicySource,
    guard: Guard,
    metrics: Metrics,
    on_applied: Callable[[Policy | None, Policy], None] | None = None,
) -> None:
    """Install every valid update from `source`; keep the last valid policy otherwise.
    `on_applied(old, new)` hears each swap (clients of a namespace that changed are told)."""
    async for data in source.updates():
        if data is None:
            log.warning("policy missing; keeping the policy in force", extra={"source": source.name})
            continue
        old = guard.policy
        try:
            policy = guard.install(data, f"({source.name})")
        except ConfigError as exc:
            metrics.policy_reloads.labels("rejected").inc()
            log.error("policy rejected; the previous policy stays in force", extra={"reason": str(exc)})
            continue
        guard.loaded = True
        metrics.policy_reloads.labels("applied").inc()
        metrics.policy_generation.set(policy.generation)
        log.info("policy applied", extra={"source": source.name, "generation": policy.generation})
        if on_applied is not None:
            on_applied(old, policy)
