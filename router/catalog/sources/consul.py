"""Consul as a registry: agent service registration with a TTL check, and health watches.

The router follows one blocking query, `GET /v1/health/service/<service>?index=N&wait=W`, and
serves the instances whose checks all pass; an instance whose TTL check turns critical leaves
rotation on the very wake-up that reports it (Consul's own reaper removes it only after
`DeregisterCriticalServiceAfter`, at least a minute). Such instances are reported apart
(`Snapshot.critical`), so one the router already runs stays connected and comes back at once
when its check passes again. The client, its timeouts and the blocking
query loop (index rules, rate limit) are `router.kv.consul.ConsulKV`, the client class the
policy source uses too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any
from urllib.parse import urlsplit

from router.catalog.record import (
    CHECK_PASSING_NOTE,
    DEFAULT_SERVICE,
    BackendRecord,
    RecordError,
    approval_key,
    consul_service_id,
    definitions_hash,
    definitions_key,
    from_consul,
    to_consul_meta,
)
from router.catalog.sources.registry import RegistryUnavailable, Snapshot, StoreRegistry
from router.kv.consul import ConsulKV, consul_module

log = logging.getLogger("toolmesh.catalog")

KV_VALUE_LIMIT = 512 * 1024
PASSING = "passing"


class ConsulRegistry(StoreRegistry):
    kind = "consul"

    def __init__(
        self,
        url: str,
        *,
        service: str = DEFAULT_SERVICE,
        ttl: float = 10.0,
        deregister_after: float = 60.0,
        wait: float = 55.0,
        request_timeout: float = 5.0,
        min_interval: float = 0.05,
    ) -> None:
        self.service = service
        self.ttl, self.deregister_after = ttl, deregister_after
        self.kv: ConsulKV = ConsulKV(
            url, wait=wait, request_timeout=request_timeout, min_interval=min_interval
        )

    # -- writing ------------------------------------------------------------------------------

    def _check_id(self, record: BackendRecord) -> str:
        return f"service:{consul_service_id(self.service, record)}"

    async def register(self, record: BackendRecord, definitions: bytes) -> None:
        assert record.url is not None
        parts = urlsplit(record.url)
        # Stored under their own hash: for a quarantined record that is `pending_hash`, so an
        # operator can read what they are asked to approve.
        if definitions and len(definitions) <= KV_VALUE_LIMIT:
            key = definitions_key(definitions_hash(definitions))
            await self.kv.put(key, definitions)
        elif definitions:
            log.warning(
                "definitions too large for Consul KV; only their hash is registered",
                extra={"server": record.server, "bytes": len(definitions)},
            )
        check = {
            "TTL": f"{self.ttl:g}s",
            "Status": PASSING,
            "Notes": "toolmesh registrar: passing while the server answers an MCP probe",
            "DeregisterCriticalServiceAfter": f"{self.deregister_after:g}s",
        }
        await self.kv.call(
            "service register",
            self.kv.client.agent.service.register(
                self.service,
                service_id=consul_service_id(self.service, record),
                address=parts.hostname,
                port=parts.port or (443 if parts.scheme == "https" else 80),
                tags=["toolmesh", *record.tags],
                meta=to_consul_meta(record),
                check=check,
            ),
        )

    async def heartbeat(self, record: BackendRecord, passing: bool, note: str) -> bool:
        consul = consul_module()
        check = self.kv.client.agent.check
        call = check.ttl_pass if passing else check.ttl_fail
        try:
            await self.kv.call("TTL check update", call(self._check_id(record), note or CHECK_PASSING_NOTE))
        except RegistryUnavailable as exc:
            # Consul answers 500 'CheckID ... does not have associated TTL' for a check it lost.
            if "does not have associated TTL" in str(exc) or isinstance(exc.__context__, consul.NotFound):
                return False
            raise
        return True

    async def deregister(self, record: BackendRecord) -> None:
        await self.kv.call(
            "service deregister",
            self.kv.client.agent.service.deregister(consul_service_id(self.service, record)),
        )

    async def approved(self, server: str) -> str | None:
        value = await self.kv.get(approval_key(server))
        return value.decode() if value is not None else None

    async def approve(self, server: str, digest: str) -> None:
        await self.kv.put(approval_key(server), digest.encode())

    # -- watching -----------------------------------------------------------------------------

    async def watch(self) -> AsyncGenerator[Snapshot, None]:
        """Snapshots: the passing instances, and those with a failing check apart (`critical`)."""

        def query(index: int | None, wait: str | None) -> Any:
            return self.kv.client.health.service(self.service, index=index, wait=wait)

        async with aclosing(self.kv.blocking("health query", query)) as answers:
            async for entries in answers:
                yield self._snapshot(entries)

    def _snapshot(self, entries: list[dict[str, Any]]) -> Snapshot:
        """Instances whose checks all pass, and apart those with a check that does not."""
        passing: list[BackendRecord] = []
        failing: list[BackendRecord] = []
        for entry in entries:
            service = entry.get("Service") or {}
            checks = entry.get("Checks") or ()
            try:
                record = from_consul(service, (entry.get("Node") or {}).get("Address", ""))
            except RecordError as exc:
                log.warning("registry entry ignored", extra={"source": self.kind, "reason": str(exc)})
                continue
            healthy = all(check.get("Status") == PASSING for check in checks)
            (passing if healthy else failing).append(record)
        return Snapshot(passing, tuple(failing))
