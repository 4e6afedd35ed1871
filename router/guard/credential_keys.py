"""Backend credentials kept in Consul or etcd (a `credentials` rule's `key`), read when a call
needs one and cached for `ttl` seconds, so a rotated secret reaches calls within that time
without a catalog reload and the hot path rarely waits for the store.

A key that cannot be read (store down, key missing) fails the call as the backend being
unavailable, naming the key: the call never goes out with another credential instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

from router.catalog.server_rules import split_key
from router.errors import BackendUnavailable
from router.kv.base import KeyValueStore, StoreUnavailable

StoreFactory = Callable[[str, str], KeyValueStore]  # (kind, http://host:port) -> a store client


class KeyedSecrets:
    """Opens a store client per read (reads are rare: one per key and `ttl`), in the task that
    reads, so no client outlives the request that needed it."""

    def __init__(self, make_store: StoreFactory, ttl: float = 30.0) -> None:
        self.make_store, self.ttl = make_store, ttl
        self._values: dict[str, tuple[float, str]] = {}
        self._lock = anyio.Lock()

    async def get(self, server: str, url: str) -> str:
        cached = self._values.get(url)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        async with self._lock:
            cached = self._values.get(url)
            if cached is not None and time.monotonic() - cached[0] < self.ttl:
                return cached[1]
            kind, address, key = split_key(url)
            try:
                async with self.make_store(kind, address) as store:
                    value = await store.get(key)
            except StoreUnavailable as exc:
                raise BackendUnavailable(
                    server, f"its credential for this caller cannot be read: {exc}"
                ) from None
            if value is None:
                raise BackendUnavailable(
                    server, f"its credential for this caller is missing ({kind} key {key!r})"
                )
            secret = value.decode().strip()
            self._values[url] = (time.monotonic(), secret)
            return secret
