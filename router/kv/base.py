"""What a key-value store is to toolmesh: get, put, delete and watch a key, in Consul or etcd.

Failure model: an implementation raises `StoreUnavailable` (its library's errors translated at
the boundary, the message naming the store, its address and the operation) when the store cannot
be reached, does not answer in time, or refuses the request. Callers decide what that means:
the registry source keeps the last catalog, a policy source keeps the last policy.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol, Self


class StoreUnavailable(Exception):
    """The store could not be reached, or refused the request; `str()` says why."""


class KeyValueStore(Protocol):
    """A client of one store, used as an async context manager (it owns a connection)."""

    kind: str
    """"consul" or "etcd"."""

    url: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def get(self, key: str) -> bytes | None:
        """The value under `key`, None if there is none."""
        ...

    async def put(self, key: str, value: bytes) -> None:
        """Set `key` to `value`."""

    async def delete(self, key: str) -> None:
        """Remove `key`; nothing happens if it is not there."""

    def watch_key(self, key: str) -> AsyncGenerator[bytes | None, None]:
        """The value under `key` now (None if none), then again whenever it may have changed.

        A value may repeat (a wake-up means "maybe changed"); callers that care compare. Raises
        StoreUnavailable when the store goes away; close it with `contextlib.aclosing`."""
        ...
