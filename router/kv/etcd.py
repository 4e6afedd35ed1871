"""etcd's v3 API through aetcd: reads, writes, leases, and watches that lose no change.

A watch first reads the key (or prefix) and then watches from the revision after that read, so
no change between the two is missed. Events that arrive while the caller is busy are taken
together: each batch the caller sees is one burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, Awaitable
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.abc

from router.kv.base import StoreUnavailable

T = TypeVar("T")

Change = tuple[bytes, bytes | None]
"""A key and its new value; None when it was deleted."""


class EtcdKV:
    """An aetcd client with timeouts and translated errors; `client` for the rest of the API (the
    registry's leases go through it, via `call`). `url` may also be a bare `host:port`."""

    kind = "etcd"

    def __init__(self, url: str, *, request_timeout: float = 5.0, coalesce: float = 0.02) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 2379
        self.request_timeout = request_timeout
        self.coalesce = coalesce
        self.client: Any = None
        self._tasks: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> Self:
        # gRPC's fork support must be off before grpc is first imported: with it on, a child
        # forked while gRPC's threads run (uvloop's spawn of a stdio backend, say) sometimes died
        # of SIGSEGV between fork and exec (4 of 100 spawns next to a starting watch), and the
        # backend's first connect failed with "its stdin is closed". We never use gRPC in a child.
        os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
        import aetcd

        # gRPC's own deadline too (float: rounded, a timeout under half a second was 0, and every
        # watch failed at once); the scope in `call` is what callers see time out.
        self.client = aetcd.Client(host=self.host, port=self.port, timeout=self.request_timeout)
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._tasks is not None:
            self._tasks.cancel_scope.cancel()
            await self._tasks.__aexit__(None, None, None)
            self._tasks = None
        if self.client is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await _scope_cancellable(self.client.close())
            self.client = None

    async def call(self, what: str, call: Awaitable[T]) -> T:
        """One API call with a timeout, its failures translated into StoreUnavailable."""
        import aetcd.exceptions

        try:
            with anyio.fail_after(self.request_timeout):
                return await _scope_cancellable(call)
        except TimeoutError:
            raise StoreUnavailable(f"etcd at {self.url}: no answer to {what}") from None
        except (aetcd.exceptions.ClientError, OSError) as exc:
            raise StoreUnavailable(f"etcd at {self.url}: {what}: {exc or type(exc).__name__}") from None

    async def get(self, key: str) -> bytes | None:
        entry = await self.call(f"get {key}", self.client.get(key.encode()))
        return entry.value if entry is not None else None

    async def put(self, key: str, value: bytes, lease: Any = None) -> None:
        await self.call(f"put {key}", self.client.put(key.encode(), value, lease=lease))

    async def delete(self, key: str) -> None:
        await self.call(f"delete {key}", self.client.delete(key.encode()))

    async def changes(self, key: str, *, prefix: bool = False) -> AsyncGenerator[list[Change], None]:
        """Every key under `key` (or `key` alone) now, as one batch, then each burst of changes."""
        from aetcd.utils import prefix_range_end

        start = key.encode()
        end = prefix_range_end(start) if prefix else start + b"\0"  # [key, key\0) is the key alone
        listing = await self.call("range read", self.client.get_range(start, end))
        yield [(kv.key, kv.value) for kv in listing]
        watch = await self.call(
            "watch", self.client.watch(start, range_end=end, start_revision=listing.header.revision + 1)
        )
        send, receive = anyio.create_memory_object_stream[Any](1000)
        assert self._tasks is not None, "use the client as an async context manager"
        self._tasks.start_soon(self._pump, watch, send)
        try:
            async with receive:
                while True:
                    batch = [await receive.receive()]
                    with anyio.move_on_after(self.coalesce):
                        while True:  # a burst of events becomes one batch
                            batch.append(await receive.receive())
                    changes: list[Change] = []
                    for item in batch:
                        if isinstance(item, BaseException):
                            raise StoreUnavailable(f"etcd at {self.url}: watch failed: {item}")
                        changes.append((item.kv.key, None if item.kind == "DELETE" else item.kv.value))
                    yield changes
        except anyio.EndOfStream:
            raise StoreUnavailable(f"etcd at {self.url}: the watch ended") from None
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await _scope_cancellable(watch.cancel())

    async def _pump(self, watch: Any, send: anyio.abc.ObjectSendStream[Any]) -> None:
        """Move events from the client's watch into our stream; a failure goes in as a value.

        It runs in the client's own task group, not inside `changes()`: a generator that holds
        a task group cannot be closed cleanly while it is suspended at a yield."""
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            async with send:
                try:
                    async for event in watch:
                        await send.send(event)
                except Exception as exc:
                    await send.send(exc)

    async def watch_key(self, key: str) -> AsyncGenerator[bytes | None, None]:
        async with contextlib.aclosing(self.changes(key)) as changes:
            async for batch in changes:
                yield batch[-1][1] if batch else None


async def _scope_cancellable(call: Awaitable[T]) -> T:
    """Await gRPC work so that a cancel scope that times it out recognises the cancellation.

    grpc.aio answers a cancelled call by raising a fresh CancelledError that carries no cancel
    scope's message, so anyio takes it for someone else's and lets it through the scope that
    asked: a `fail_after` around a hung request killed its caller instead of raising TimeoutError
    (and so StoreUnavailable), and a registry watch died rather than retrying. Awaited through
    `asyncio.shield`, the cancellation this task sees is the scope's own; the call, in a task of
    its own, is cancelled behind it, and waited for (a cancelled call ends at once), so that no
    gRPC work outlives its caller: left running, one finished on the poller thread after its
    event loop had closed, and that loop's "Event loop is closed" failed whatever ran next.
    """
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except BaseException:
        task.cancel()
        with anyio.CancelScope(shield=True), anyio.move_on_after(1):
            await asyncio.wait({task})
        if task.done() and not task.cancelled():
            task.exception()  # collected: the caller's own exception is the one that matters
        raise
