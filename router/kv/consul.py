"""Consul's HTTP API through py-consul's asyncio client: KV reads and writes, and blocking queries.

A blocking query (`?index=N&wait=W`) returns when what it asks about may have changed, or after
`wait`. Index rules from Consul's documentation: a wake-up means "maybe changed"; an index that
goes backwards, or is not positive, resets to 0; the loop is rate-limited (`min_interval`) so a
misbehaving agent cannot spin it. The KV watch and the registry's health watch share that loop.

py-consul's asyncio client must be created inside the running loop; it has no default timeout,
so every call here carries one (a blocking query gets its wait plus a margin).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import aiohttp
import anyio

from router.kv.base import StoreUnavailable

T = TypeVar("T")

Blocking = Callable[[int | None, str | None], Awaitable[tuple[Any, T]]]
"""One blocking query: called with (index or None, wait or None), answers (index, result)."""


def consul_module() -> Any:
    """py-consul, imported on first use (a router without Consul never loads it)."""
    import consul
    import consul.aio

    return consul


class ConsulKV:
    """A py-consul asyncio client with timeouts and translated errors; `client` for the rest of
    the API (the registry registers services and updates checks through it, via `call`)."""

    kind = "consul"

    def __init__(
        self, url: str, *, wait: float = 55.0, request_timeout: float = 5.0, min_interval: float = 0.05
    ) -> None:
        parts = urlsplit(url)
        self.url = url
        self.scheme = parts.scheme or "http"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 8500
        self.wait, self.request_timeout, self.min_interval = wait, request_timeout, min_interval
        self.client: Any = None

    async def __aenter__(self) -> Self:
        consul = consul_module()
        with warnings.catch_warnings():
            # py-consul 1.8 passes arguments aiohttp deprecated; not ours to fix, not an error.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.client = consul.aio.Consul(host=self.host, port=self.port, scheme=self.scheme)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.client is not None:
            with anyio.CancelScope(shield=True):
                await self.client.close()
            self.client = None

    async def call(self, what: str, call: Awaitable[T], timeout: float | None = None) -> T:
        """One API call with a timeout, its failures translated into StoreUnavailable."""
        consul = consul_module()
        try:
            with anyio.fail_after(timeout or self.request_timeout):
                return await call
        except TimeoutError:
            raise StoreUnavailable(f"Consul at {self.url}: no answer to {what}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise StoreUnavailable(f"Consul at {self.url}: {what}: {exc}") from None
        except consul.ConsulException as exc:
            raise StoreUnavailable(f"Consul at {self.url}: {what} refused: {exc}") from None

    async def get(self, key: str) -> bytes | None:
        _, entry = await self.call("KV get", self.client.kv.get(key))
        return _value(entry)

    async def put(self, key: str, value: bytes) -> None:
        await self.call("KV put", self.client.kv.put(key, value))

    async def delete(self, key: str) -> None:
        await self.call("KV delete", self.client.kv.delete(key))

    async def blocking(self, what: str, query: Blocking[T]) -> AsyncGenerator[T, None]:
        """The query's result now, then after every wake-up, following Consul's index rules."""
        index = 0
        last_start = 0.0
        while True:
            pause = last_start + self.min_interval - time.monotonic()
            if pause > 0:
                await anyio.sleep(pause)
            last_start = time.monotonic()
            answer = query(index or None, f"{self.wait:g}s" if index else None)
            new_index, result = await self.call(
                what, answer, self.wait + self.wait / 16 + self.request_timeout
            )
            new_index = int(new_index or 0)
            index = new_index if new_index > index else (0 if new_index < index or new_index <= 0 else index)
            yield result

    async def watch_key(self, key: str) -> AsyncGenerator[bytes | None, None]:
        def query(index: int | None, wait: str | None) -> Awaitable[tuple[Any, Any]]:
            return self.client.kv.get(key, index=index, wait=wait)  # type: ignore[no-any-return]

        async with aclosing(self.blocking("KV watch", query)) as answers:
            async for entry in answers:
                yield _value(entry)


def _value(entry: Any) -> bytes | None:
    """A KV entry's value; None for a missing key (or a key that holds no value)."""
    value = entry.get("Value") if isinstance(entry, dict) else None
    return value if isinstance(value, bytes) or value is None else str(value).encode()
