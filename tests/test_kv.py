"""The key-value client layer (`router.kv`) the registry and the policy sources share, run against
both stores: the Consul double and a real etcd. Same contract, so a difference shows up here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing

import anyio
import pytest

from router.kv.base import KeyValueStore, StoreUnavailable
from router.kv.consul import ConsulKV
from router.kv.etcd import EtcdKV
from router.up.processes import free_port
from tests.support.procs import REPO_ROOT
from tests.support.registries import RunningRegistry, registry_server

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", params=["consul", "etcd"])
def running(request: pytest.FixtureRequest) -> Iterator[RunningRegistry]:
    with registry_server(request.param) as registry:
        yield registry


def store(kind: str, url: str, request_timeout: float = 5.0) -> KeyValueStore:
    if kind == "consul":
        return ConsulKV(url, wait=5, request_timeout=request_timeout)
    return EtcdKV(url, request_timeout=request_timeout)


def unique_key() -> str:
    return f"toolmesh-test/kv/k{time.monotonic_ns()}"


async def read_until(
    values: AsyncIterator[bytes | None], wanted: bytes | None, allowed: set[bytes | None]
) -> None:
    """Read the watch until it yields `wanted`; every value on the way must be in `allowed`."""
    with anyio.fail_after(10):
        async for value in values:
            assert value in allowed | {wanted}, f"the watch yielded {value!r}"
            if value == wanted:
                return
    raise AssertionError("the watch ended")


async def test_get_put_delete(running: RunningRegistry) -> None:
    key = unique_key()
    async with store(running.kind, running.url) as kv:
        assert await kv.get(key) is None
        await kv.put(key, b"one")
        assert await kv.get(key) == b"one"
        await kv.delete(key)
        assert await kv.get(key) is None
        await kv.delete(key)  # deleting what is not there is no error


async def test_watch_key_sees_each_change_of_that_key_and_nothing_else(running: RunningRegistry) -> None:
    """A reader is waiting on the watch all along, so each change arrives on its own (a watch may
    fold changes that wait together into the latest): a sibling key's change would show. A value
    may repeat (Consul wakes a watch on a missing key for any write), so repeats are collapsed."""
    key = unique_key()
    seen: list[bytes | None] = []

    def changes() -> list[bytes | None]:
        return [value for n, value in enumerate(seen) if n == 0 or value != seen[n - 1]]

    async def until_seen(count: int) -> None:
        with anyio.fail_after(10):
            while len(changes()) < count:
                await anyio.sleep(0.02)

    async with (
        store(running.kind, running.url) as kv,
        store(running.kind, running.url) as writer,
        aclosing(kv.watch_key(key)) as values,
        anyio.create_task_group() as tg,
    ):

        async def collect() -> None:
            async for value in values:
                seen.append(value)

        tg.start_soon(collect)
        await until_seen(1)  # no such key yet
        await writer.put(f"{key}-sibling", b"a longer key with the same start")
        await anyio.sleep(0.3)
        for count, value in enumerate((b"v1", b"v2"), start=2):
            await writer.put(key, value)
            await until_seen(count)
            await anyio.sleep(0.3)
        await writer.delete(key)
        await until_seen(4)
        tg.cancel_scope.cancel()
    assert changes() == [None, b"v1", b"v2", None]


@pytest.mark.parametrize(
    ("kind", "address"),
    [
        ("consul", "http://127.0.0.1:{port}"),
        ("etcd", "http://127.0.0.1:{port}"),
        ("etcd", "127.0.0.1:{port}"),
    ],
)
async def test_an_unreachable_store_raises_store_unavailable_naming_it(kind: str, address: str) -> None:
    url = address.format(port=free_port())
    async with store(kind, url, request_timeout=2) as kv:
        with pytest.raises(StoreUnavailable, match=url):
            await kv.get("toolmesh-test/kv/nothing")
        with pytest.raises(StoreUnavailable, match=url):
            async with aclosing(kv.watch_key("toolmesh-test/kv/nothing")) as values:
                await values.__anext__()


@pytest.fixture
def silent_store() -> Iterator[str]:
    """The address of a store that accepts connections and never answers (a hung etcd)."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


async def test_a_hung_etcd_call_ends_in_the_callers_own_scope(silent_store: str) -> None:
    """gRPC answers a cancelled call with a CancelledError of its own, which anyio does not take
    for its scope's: a deadline around a hung request killed the caller (a registry watch died,
    CI saw it) instead of ending in the scope that set it."""
    async with EtcdKV(silent_store, request_timeout=30) as kv:
        for _ in range(3):
            with anyio.move_on_after(0.3) as scope:
                await kv.get("toolmesh-test/kv/nothing")
            assert scope.cancelled_caught
    async with EtcdKV(silent_store, request_timeout=0.3) as kv:
        with anyio.fail_after(5):
            for _ in range(3):
                with pytest.raises(StoreUnavailable, match=silent_store):
                    await kv.get("toolmesh-test/kv/nothing")


def test_children_spawned_beside_an_etcd_client_live(running: RunningRegistry) -> None:
    """A stdio backend is forked while gRPC's threads run (a router or registrar watching etcd).
    With gRPC's fork support on, about 3 % of such children died of SIGSEGV between fork and
    exec, and the backend's first connect failed ("its stdin is closed"); 200 spawns see it."""
    if running.kind != "etcd":
        pytest.skip("only the etcd client runs threads of its own")
    env = {key: value for key, value in os.environ.items() if key != "GRPC_ENABLE_FORK_SUPPORT"}
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.spawn_beside_etcd", running.url, "200"],
        check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "killed by a signal 0:" in result.stdout, result.stdout
