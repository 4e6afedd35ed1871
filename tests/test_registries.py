"""The Registry contract, run against both implementations: Consul (the double) and etcd (real).

In-process, through the same classes the registrar and the router use, so a difference between
the two shows up here rather than end to end.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing

import anyio
import pytest

from router.catalog.record import BackendRecord, canonical_definitions, definitions_hash
from router.catalog.sources.consul import ConsulRegistry
from router.catalog.sources.etcd import EtcdRegistry
from router.catalog.sources.registry import Registry, RegistrySource, RegistryUnavailable
from router.up.processes import free_port
from tests.support.registries import RunningRegistry, registry_server

pytestmark = pytest.mark.anyio
DEFINITIONS = canonical_definitions({"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]})


@pytest.fixture(scope="module", params=["consul", "etcd"])
def running(request: pytest.FixtureRequest) -> Iterator[RunningRegistry]:
    with registry_server(request.param) as registry:
        yield registry


def make(kind: str, url: str) -> Registry:
    return ConsulRegistry(url, ttl=30, wait=5) if kind == "consul" else EtcdRegistry(url, ttl=30)


@pytest.fixture
async def registry(running: RunningRegistry) -> AsyncIterator[Registry]:
    async with make(running.kind, running.url) as client:
        yield client


def a_record(server: str, instance: str = "i1") -> BackendRecord:
    return BackendRecord.model_validate(
        {
            "server": server, "instance_id": instance, "transport": "http",
            "url": "http://127.0.0.1:9/mcp", "definitions_hash": definitions_hash(DEFINITIONS),
            "eras": ["2026-07-28"], "capabilities": ["tools"],
        }
    )  # fmt: skip


def unique(prefix: str) -> str:
    return f"{prefix}{time.monotonic_ns() % 10**9}"


async def next_matching(
    watch: AsyncIterator[list[BackendRecord]], server: str, count: int
) -> list[BackendRecord]:
    """Read snapshots until `server` has `count` instances in one; fail after 10 s."""
    with anyio.fail_after(10):
        async for snapshot in watch:
            mine = [r for r in snapshot.passing if r.server == server]
            if len(mine) == count:
                return mine
    raise AssertionError("the watch ended")


async def test_register_watch_heartbeat_deregister(running: RunningRegistry, registry: Registry) -> None:
    server = unique("contract")
    first, second = a_record(server, "i1"), a_record(server, "i2")
    async with make(running.kind, running.url) as watcher, aclosing(watcher.watch()) as watch:
        await next_matching(watch, server, 0)
        await registry.register(first, DEFINITIONS)
        [seen] = await next_matching(watch, server, 1)
        assert seen.model_dump(exclude={"tags"}) == first.model_dump(exclude={"tags"})
        async with make(running.kind, running.url) as other:  # a second registrar, same name
            await other.register(second, DEFINITIONS)
            assert {r.instance_id for r in await next_matching(watch, server, 2)} == {"i1", "i2"}
            await other.deregister(second)
        await next_matching(watch, server, 1)
        assert await registry.heartbeat(first, True, "fine") is True
        still = await registry.heartbeat(first, False, "probe failed")
        assert still is (running.kind == "consul"), "Consul keeps a critical record; etcd drops it"
        await next_matching(watch, server, 0)  # a failing instance is not served by either
        if still:
            assert await registry.heartbeat(first, True, "fine again") is True
            await next_matching(watch, server, 1)
            await registry.deregister(first)
            await next_matching(watch, server, 0)
        assert await registry.heartbeat(first, True, "after leaving") is False


async def test_approvals(registry: Registry) -> None:
    server = unique("approved")
    assert await registry.approved(server) is None
    await registry.approve(server, "ab" * 32)
    assert await registry.approved(server) == "ab" * 32


@pytest.mark.parametrize("kind", ["consul", "etcd"])
async def test_unreachable_registry_raises_registry_unavailable(kind: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = (
        ConsulRegistry(url, request_timeout=2) if kind == "consul" else EtcdRegistry(url, request_timeout=2)
    )
    async with client:
        with pytest.raises(RegistryUnavailable, match=url):
            await client.register(a_record("nobody"), DEFINITIONS)
        with pytest.raises(RegistryUnavailable, match=url):
            async with aclosing(client.watch()) as watch:
                await watch.__anext__()


@pytest.mark.parametrize("kind", ["consul", "etcd"])
async def test_source_reports_stale_and_keeps_trying(kind: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    attempts: list[bool] = []
    source = RegistrySource(
        lambda: (
            ConsulRegistry(url, request_timeout=1)
            if kind == "consul"
            else EtcdRegistry(url, request_timeout=1)
        ),
        kind,
        backoff_min=0.05,
        backoff_max=0.1,
        on_health=attempts.append,
    )
    with anyio.move_on_after(3):
        async with aclosing(source.snapshots()) as snapshots:
            async for _ in snapshots:
                raise AssertionError("nothing to yield from an unreachable registry")
    assert not source.healthy
    assert len(attempts) >= 2 and not any(attempts), "it retried, reporting unhealthy each time"
