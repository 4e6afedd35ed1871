"""Where the policy comes from: a file, a Consul KV key, or an etcd key.

Each source yields the raw policy bytes whenever they change (None when the key or file is
gone); `follow()` validates and installs them in the Guard. An invalid update is logged with the
exact field and fix, counted, and ignored: the last valid policy stays in force. A deleted key
also keeps the last policy (deleting a policy must not open everything up).

These are small on purpose and separate from the catalog sources in `catalog/sources/`; both
watch a key, and may share a watcher later.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import anyio

from router.errors import ConfigError
from router.guard.policy import Guard
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


class ConsulPolicySource:
    """Blocking queries on one KV key: an update arrives as soon as the key changes."""

    def __init__(self, url: str, key: str, wait: str = "30s") -> None:
        self.url, self.key, self.wait = url, key, wait
        self.name = f"consul {key}"

    async def updates(self) -> AsyncIterator[bytes | None]:
        import consul
        import consul.aio

        parts = urlsplit(self.url)
        client = consul.aio.Consul(
            host=parts.hostname or "127.0.0.1", port=parts.port or 8500, scheme=parts.scheme or "http"
        )
        index: str | None = None
        last: bytes | None = b"\x00unset"
        delay = 0.5
        try:
            while True:
                try:
                    index, entry = await client.kv.get(self.key, index=index, wait=self.wait)
                    delay = 0.5
                except (consul.ConsulException, OSError, TimeoutError, consul.Timeout) as exc:
                    log.warning(
                        "consul policy watch failed; retrying", extra={"key": self.key, "reason": str(exc)}
                    )
                    await anyio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                value = entry.get("Value") if isinstance(entry, dict) else None
                if value != last:
                    last = value
                    yield value
        finally:
            with anyio.CancelScope(shield=True):
                await client.http._session.close()


class EtcdPolicySource:
    """The key's value at start, then every change through an etcd watch."""

    def __init__(self, endpoint: str, key: str) -> None:
        host, _, port = endpoint.rpartition(":")
        self.host, self.port, self.key = host or "127.0.0.1", int(port or 2379), key
        self.name = f"etcd {key}"

    async def updates(self) -> AsyncIterator[bytes | None]:
        import aetcd

        delay = 0.5
        while True:
            try:
                async with aetcd.Client(host=self.host, port=self.port) as client:
                    got = await client.get(self.key.encode())
                    yield got.value if got is not None else None
                    revision = (got.mod_revision + 1) if got is not None else None
                    watch = await client.watch(self.key.encode(), start_revision=revision)
                    delay = 0.5
                    async for event in watch:
                        deleted = event.kind == aetcd.EventKind.DELETE
                        yield None if deleted else event.kv.value
            except (aetcd.exceptions.ClientError, OSError) as exc:
                log.warning("etcd policy watch failed; retrying", extra={"key": self.key, "reason": str(exc)})
            await anyio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def follow(source: PolicySource, guard: Guard, metrics: Metrics) -> None:
    """Install every valid update from `source`; keep the last valid policy otherwise."""
    async for data in source.updates():
        if data is None:
            log.warning("policy missing; keeping the policy in force", extra={"source": source.name})
            continue
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
