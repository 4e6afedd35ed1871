"""Consul as a registry: agent service registration with a TTL check, and health watches.

The router follows one blocking query, `GET /v1/health/service/<service>?index=N&wait=W`, and
keeps the instances whose checks all pass, so an instance whose TTL check turns critical leaves
the catalog on the very wake-up that reports it (Consul's own reaper removes it only after
`DeregisterCriticalServiceAfter`, at least a minute). Index rules from Consul's documentation:
a wake-up means "maybe changed"; an index that goes backwards, or is not positive, resets to 0;
the loop is rate-limited so a misbehaving agent cannot spin it.

py-consul's asyncio client must be created inside the running loop; it has no default timeout,
so every call here carries one (a blocking query gets its wait plus a margin).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import AsyncGenerator, Awaitable
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import aiohttp
import anyio

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
from router.catalog.sources.registry import RegistryUnavailable

log = logging.getLogger("toolmesh.catalog")

T = TypeVar("T")
KV_VALUE_LIMIT = 512 * 1024
PASSING = "passing"


def _consul_module() -> Any:
    import consul
    import consul.aio

    return consul


class ConsulRegistry:
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
        parts = urlsplit(url)
        self.url = url
        self.scheme = parts.scheme or "http"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 8500
        self.service = service
        self.ttl, self.deregister_after = ttl, deregister_after
        self.wait, self.request_timeout, self.min_interval = wait, request_timeout, min_interval
        self._client: Any = None

    async def __aenter__(self) -> Self:
        consul = _consul_module()
        with warnings.catch_warnings():
            # py-consul 1.8 passes arguments aiohttp deprecated; not ours to fix, not an error.
            warnings.simplefilter("ignore", DeprecationWarning)
            self._client = consul.aio.Consul(host=self.host, port=self.port, scheme=self.scheme)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            with anyio.CancelScope(shield=True):
                await self._client.close()
            self._client = None

    async def _call(self, what: str, call: Awaitable[T], timeout: float | None = None) -> T:
        """One API call with a timeout, its failures translated into RegistryUnavailable."""
        consul = _consul_module()
        try:
            with anyio.fail_after(timeout or self.request_timeout):
                return await call
        except TimeoutError:
            raise RegistryUnavailable(f"Consul at {self.url}: no answer to {what}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise RegistryUnavailable(f"Consul at {self.url}: {what}: {exc}") from None
        except consul.ConsulException as exc:
            raise RegistryUnavailable(f"Consul at {self.url}: {what} refused: {exc}") from None

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
            await self._call("KV put", self._client.kv.put(key, definitions))
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
        await self._call(
            "service register",
            self._client.agent.service.register(
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
        consul = _consul_module()
        check = self._client.agent.check
        call = check.ttl_pass if passing else check.ttl_fail
        try:
            await self._call("TTL check update", call(self._check_id(record), note or CHECK_PASSING_NOTE))
        except RegistryUnavailable as exc:
            # Consul answers 500 'CheckID ... does not have associated TTL' for a check it lost.
            if "does not have associated TTL" in str(exc) or isinstance(exc.__cause__, consul.NotFound):
                return False
            raise
        return True

    async def deregister(self, record: BackendRecord) -> None:
        await self._call(
            "service deregister",
            self._client.agent.service.deregister(consul_service_id(self.service, record)),
        )

    async def approved(self, server: str) -> str | None:
        _, entry = await self._call("KV get", self._client.kv.get(approval_key(server)))
        if not entry or entry.get("Value") is None:
            return None
        value: bytes = entry["Value"]
        return value.decode()

    async def approve(self, server: str, digest: str) -> None:
        await self._call("KV put", self._client.kv.put(approval_key(server), digest))

    # -- watching -----------------------------------------------------------------------------

    async def watch(self) -> AsyncGenerator[list[BackendRecord], None]:
        index = 0
        last_start = 0.0
        while True:
            pause = last_start + self.min_interval - time.monotonic()
            if pause > 0:
                await anyio.sleep(pause)
            last_start = time.monotonic()
            query = self._client.health.service(
                self.service, index=index or None, wait=f"{self.wait:g}s" if index else None
            )
            new_index, entries = await self._call(
                "health query", query, self.wait + self.wait / 16 + self.request_timeout
            )
            new_index = int(new_index or 0)
            index = new_index if new_index > index else (0 if new_index < index or new_index <= 0 else index)
            yield self._healthy_records(entries)

    def _healthy_records(self, entries: list[dict[str, Any]]) -> list[BackendRecord]:
        records = []
        for entry in entries:
            service = entry.get("Service") or {}
            checks = entry.get("Checks") or ()
            if any(check.get("Status") != PASSING for check in checks):
                continue
            try:
                records.append(from_consul(service, (entry.get("Node") or {}).get("Address", "")))
            except RecordError as exc:
                log.warning("registry entry ignored", extra={"source": self.kind, "reason": str(exc)})
        return records
