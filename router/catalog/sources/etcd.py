"""etcd as a registry: each instance's record under the registrar's lease, and prefix watches.

The registrar puts `<prefix>instances/<server>/<instance>` with a lease of `ttl` seconds and
refreshes it (one keepalive) every heartbeat while its server answers the MCP probe; when the
probe fails it deletes the key, and when the registrar dies the lease expires and etcd deletes
it. The router reads the prefix once, then watches it from the next revision, so no change
between the read and the watch is lost; events that arrive while the router is busy are taken
together (one snapshot per burst).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.abc

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
from router.catalog.sources.registry import RegistryUnavailable

log = logging.getLogger("toolmesh.catalog")

T = TypeVar("T")


class EtcdRegistry:
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
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 2379
        self.prefix = prefix
        self.ttl = max(1, round(ttl))
        self.request_timeout = request_timeout
        self.coalesce = coalesce
        self._client: Any = None
        self._lease: Any = None
        self._tasks: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> Self:
        import aetcd

        self._client = aetcd.Client(host=self.host, port=self.port, timeout=round(self.request_timeout))
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._tasks is not None:
            self._tasks.cancel_scope.cancel()
            await self._tasks.__aexit__(None, None, None)
            self._tasks = None
        if self._client is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await self._client.close()
            self._client = None

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        import aetcd.exceptions

        try:
            with anyio.fail_after(self.request_timeout):
                return await call
        except TimeoutError:
            raise RegistryUnavailable(f"etcd at {self.url}: no answer to {what}") from None
        except (aetcd.exceptions.ClientError, OSError) as exc:
            raise RegistryUnavailable(f"etcd at {self.url}: {what}: {exc or type(exc).__name__}") from None

    # -- writing ------------------------------------------------------------------------------

    async def register(self, record: BackendRecord, definitions: bytes) -> None:
        if definitions:  # under their own hash (see ConsulRegistry.register)
            key = definitions_key(definitions_hash(definitions), self.prefix).encode()
            await self._call("put definitions", self._client.put(key, definitions))
        if self._lease is None:
            self._lease = await self._call("lease grant", self._client.lease(self.ttl))
        key = etcd_instance_key(self.prefix, record).encode()
        await self._call("put record", self._client.put(key, to_json(record), lease=self._lease))

    async def heartbeat(self, record: BackendRecord, passing: bool, note: str) -> bool:
        if self._lease is None:
            return False
        if not passing:  # etcd has no health status: a failing instance is taken out
            await self.deregister(record)
            return False
        reply = await self._call("lease keepalive", self._lease.refresh())
        if reply is None or reply.TTL <= 0:
            self._lease = None  # expired (we were stalled, or etcd lost it): register again
            return False
        return True

    async def deregister(self, record: BackendRecord) -> None:
        lease, self._lease = self._lease, None
        await self._call(
            "delete record", self._client.delete(etcd_instance_key(self.prefix, record).encode())
        )
        if lease is not None:
            await self._call("lease revoke", lease.revoke())

    async def approved(self, server: str) -> str | None:
        entry = await self._call("get approval", self._client.get(approval_key(server, self.prefix).encode()))
        return entry.value.decode() if entry is not None else None

    async def approve(self, server: str, digest: str) -> None:
        await self._call(
            "put approval", self._client.put(approval_key(server, self.prefix).encode(), digest.encode())
        )

    # -- watching -----------------------------------------------------------------------------

    async def watch(self) -> AsyncGenerator[list[BackendRecord], None]:
        prefix = etcd_instance_prefix(self.prefix).encode()
        listing = await self._call("range read", self._client.get_prefix(prefix))
        records: dict[bytes, BackendRecord] = {}
        for kv in listing:
            self._apply(records, kv.key, kv.value)
        yield list(records.values())
        watch = await self._call(
            "watch", self._client.watch_prefix(prefix, start_revision=listing.header.revision + 1)
        )
        send, receive = anyio.create_memory_object_stream[Any](1000)
        assert self._tasks is not None, "use the registry as an async context manager"
        self._tasks.start_soon(self._pump, watch, send)
        try:
            async with receive:
                while True:
                    batch = [await receive.receive()]
                    with anyio.move_on_after(self.coalesce):
                        while True:  # a burst of events becomes one snapshot
                            batch.append(await receive.receive())
                    for item in batch:
                        if isinstance(item, BaseException):
                            raise RegistryUnavailable(f"etcd at {self.url}: watch failed: {item}")
                        value = None if item.kind == "DELETE" else item.kv.value
                        self._apply(records, item.kv.key, value)
                    yield list(records.values())
        except anyio.EndOfStream:
            raise RegistryUnavailable(f"etcd at {self.url}: the watch ended") from None
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await watch.cancel()

    async def _pump(self, watch: Any, send: anyio.abc.ObjectSendStream[Any]) -> None:
        """Move events from the client's watch into our stream; a failure goes in as a value.

        It runs in the registry's own task group, not inside `watch()`: a generator that holds
        a task group cannot be closed cleanly while it is suspended at a yield."""
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            async with send:
                try:
                    async for event in watch:
                        await send.send(event)
                except Exception as exc:
                    await send.send(exc)

    def _apply(self, records: dict[bytes, BackendRecord], key: bytes, value: bytes | None) -> None:
        if value is None:
            records.pop(key, None)
            return
        try:
            records[key] = from_json(value, key.decode(errors="replace"))
        except RecordError as exc:
            log.warning("registry entry ignored", extra={"source": self.kind, "reason": str(exc)})
