"""etcd as a registry: each instance's record under the registrar's lease, and prefix watches.

The registrar puts `<prefix>instances/<server>/<instance>` with a lease of `ttl` seconds and
refreshes it (one keepalive) every heartbeat while its server answers the MCP probe; when the
probe fails it deletes the key, and when the registrar dies the lease expires and etcd deletes
it. The router follows the prefix through `router.kv.etcd.EtcdKV.changes` (read once, then watch
from the next revision, bursts taken together), the client class the policy source uses too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

from router.catalog.record import (
    DEFAULT_ETCD_PREFIX,
    BackendRecord,
    RecordError,
    approval_key,
    definitions_hash,
    definitions_key,
    etcd_instance_key,
    etcd_instance_prefix,
    from_json,
    to_json,
)
from router.catalog.sources.registry import Snapshot, StoreRegistry
from router.kv.etcd import EtcdKV

log = logging.getLogger("toolmesh.catalog")


class EtcdRegistry(StoreRegistry):
    kind = "etcd"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_ETCD_PREFIX,
        ttl: float = 10.0,
        request_timeout: float = 5.0,
        coalesce: float = 0.02,
    ) -> None:
        self.prefix = prefix
        self.ttl = max(1, round(ttl))
        self.kv: EtcdKV = EtcdKV(url, request_timeout=request_timeout, coalesce=coalesce)
        self._lease: Any = None

    # -- writing ------------------------------------------------------------------------------

    async def register(self, record: BackendRecord, definitions: bytes) -> None:
        if definitions:  # under their own hash (see ConsulRegistry.register)
            await self.kv.put(definitions_key(definitions_hash(definitions), self.prefix), definitions)
        if self._lease is None:
            self._lease = await self.kv.call("lease grant", self.kv.client.lease(self.ttl))
        await self.kv.put(etcd_instance_key(self.prefix, record), to_json(record), lease=self._lease)

    async def heartbeat(self, record: BackendRecord, passing: bool, note: str) -> bool:
        if self._lease is None:
            return False
        if not passing:  # etcd has no health status: a failing instance is taken out
            await self.deregister(record)
            return False
        reply = await self.kv.call("lease keepalive", self._lease.refresh())
        if reply is None or reply.TTL <= 0:
            self._lease = None  # expired (we were stalled, or etcd lost it): register again
            return False
        return True

    async def deregister(self, record: BackendRecord) -> None:
        lease, self._lease = self._lease, None
        await self.kv.delete(etcd_instance_key(self.prefix, record))
        if lease is not None:
            await self.kv.call("lease revoke", lease.revoke())

    async def approved(self, server: str) -> str | None:
        value = await self.kv.get(approval_key(server, self.prefix))
        return value.decode() if value is not None else None

    async def approve(self, server: str, digest: str) -> None:
        await self.kv.put(approval_key(server, self.prefix), digest.encode())

    # -- watching -----------------------------------------------------------------------------

    async def watch(self) -> AsyncGenerator[Snapshot, None]:
        records: dict[bytes, BackendRecord] = {}
        prefix = etcd_instance_prefix(self.prefix)
        async with contextlib.aclosing(self.kv.changes(prefix, prefix=True)) as changes:
            async for batch in changes:
                for key, value in batch:
                    self._apply(records, key, value)
                yield Snapshot(list(records.values()))

    def _apply(self, records: dict[bytes, BackendRecord], key: bytes, value: bytes | None) -> None:
        if value is None:
            records.pop(key, None)
            return
        try:
            records[key] = from_json(value, key.decode(errors="replace"))
        except RecordError as exc:
            log.warning("registry entry ignored", extra={"source": self.kind, "reason": str(exc)})
