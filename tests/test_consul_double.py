"""Behaviour of the Consul double (tests/consul_double), driven through the real py-consul
asyncio client where it supports the call and through raw HTTP otherwise.

The double runs as a real subprocess on a free port, with a shortened reaper (every 0.2 s,
DeregisterCriticalServiceAfter clamped to at least 1 s) so reaping is observable quickly.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import consul
import consul.aio
import pytest

from router.up.processes import ManagedProcess, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
REAP_INTERVAL = 0.2
MIN_DEREGISTER_AFTER = 1.0

pytestmark = [
    pytest.mark.anyio,
    # py-consul 1.8 builds its aiohttp connector with deprecated arguments; aiohttp
    # attributes the warning to consul.aio, which pyproject's aiohttp filter does not cover.
    pytest.mark.filterwarnings("ignore:ssl_context is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:verify_ssl is deprecated:DeprecationWarning"),
]

_names = itertools.count(1)


def unique(prefix: str) -> str:
    """A fresh service name or key per test: all tests share one double."""
    return f"{prefix}-{os.getpid()}-{next(_names)}"


@dataclass(frozen=True)
class Double:
    """A running double: where it listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _leader_answers(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/v1/status/leader", timeout=1) as response:
        return bool(response.status == 200)


@pytest.fixture(scope="module")
def double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Double]:
    """Start ``python -m tests.consul_double`` on a free port; stop it by PID afterwards."""
    port = free_port()
    argv = [
        sys.executable, "-m", "tests.consul_double", "--host", "127.0.0.1", "--port", str(port),
        "--reap-interval", str(REAP_INTERVAL), "--min-deregister-after", str(MIN_DEREGISTER_AFTER),
    ]  # fmt: skip
    log_dir = tmp_path_factory.mktemp("consul-double")
    with ManagedProcess(argv, name="consul-double", log_dir=log_dir, cwd=REPO_ROOT) as process:
        running = Double("127.0.0.1", port)
        process.wait_until(lambda: _leader_answers(running.url), 15, "/v1/status/leader")
        yield running


@pytest.fixture
async def client(double: Double) -> AsyncIterator[consul.aio.Consul]:
    """The real py-consul asyncio client, created inside the running loop."""
    c = consul.aio.Consul(host=double.host, port=double.port)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def http(double: Double) -> AsyncIterator[aiohttp.ClientSession]:
    """Raw HTTP for what py-consul does not expose (headers, error bodies)."""
    async with aiohttp.ClientSession(base_url=double.url) as session:
        yield session


def ttl_check(ttl: str, status: str | None = None, deregister_after: str | None = None) -> dict[str, str]:
    check = {"TTL": ttl}
    if status is not None:
        check["Status"] = status
    if deregister_after is not None:
        check["DeregisterCriticalServiceAfter"] = deregister_after
    return check


async def health(client: consul.aio.Consul, name: str, **kwargs: Any) -> tuple[int, list[dict[str, Any]]]:
    index, nodes = await client.health.service(name, **kwargs)
    return int(index), nodes


async def instances(client: consul.aio.Consul, name: str) -> dict[str, dict[str, Any]]:
    """Service ID -> the `Service` of each registered instance of `name`, as health reports it."""
    _, nodes = await health(client, name)
    return {node["Service"]["ID"]: node["Service"] for node in nodes}


def service_check(entry: dict[str, Any]) -> dict[str, Any]:
    """The service's own check in a health entry (the node's serfHealth is there too)."""
    checks: list[dict[str, Any]] = [c for c in entry["Checks"] if c["ServiceID"]]
    assert len(checks) == 1, entry
    return checks[0]


# --------------------------------------------------------------------- registration


async def test_register_and_deregister(client: consul.aio.Consul, http: aiohttp.ClientSession) -> None:
    name = unique("svc")
    assert await client.agent.service.register(
        name,
        service_id=f"{name}-1",
        address="10.0.0.7",
        port=8080,
        tags=["mcp", "v1"],
        meta={"name": "github", "defs_hash": "abc123"},
        check=ttl_check("30s", status="passing"),
    )

    _, nodes = await health(client, name)
    (entry,) = nodes
    assert entry["Service"]["ID"] == f"{name}-1"
    assert entry["Service"]["Address"] == "10.0.0.7"
    assert entry["Service"]["Port"] == 8080
    assert entry["Service"]["Tags"] == ["mcp", "v1"]
    assert entry["Service"]["Meta"] == {"name": "github", "defs_hash": "abc123"}
    assert entry["Node"]["Address"] == "127.0.0.1"
    assert {c["CheckID"] for c in entry["Checks"]} == {"serfHealth", f"service:{name}-1"}

    _, by_tag = await health(client, name, tag="v1")
    assert [n["Service"]["ID"] for n in by_tag] == [f"{name}-1"]
    _, no_match = await health(client, name, tag="v2")
    assert no_match == []

    assert await client.agent.service.deregister(f"{name}-1")
    _, nodes = await health(client, name)
    assert nodes == []
    # Deregistering an unknown ID is a 404 (py-consul reports it as False).
    assert not await client.agent.service.deregister(f"{name}-1")
    async with http.put(f"/v1/agent/service/deregister/{name}-1") as response:
        assert response.status == 404
        assert "Unknown service ID" in await response.text()


async def test_register_without_meta_gives_null_meta_in_health(
    client: consul.aio.Consul, http: aiohttp.ClientSession
) -> None:
    name = unique("plain")
    await client.agent.service.register(name, port=1)  # ID defaults to the name
    _, nodes = await health(client, name)
    assert nodes[0]["Service"]["ID"] == name
    assert nodes[0]["Service"]["Meta"] is None
    assert nodes[0]["Service"]["Tags"] == []
    assert nodes[0]["Checks"][0]["CheckID"] == "serfHealth"
    await client.agent.service.deregister(name)


async def test_reregister_replaces_and_identical_reregister_does_not_bump(client: consul.aio.Consul) -> None:
    name = unique("rereg")
    await client.agent.service.register(name, service_id="r1", port=1, check=ttl_check("30s", "passing"))
    first, _ = await health(client, name)
    await client.agent.service.register(name, service_id="r1", port=1, check=ttl_check("30s", "passing"))
    same, _ = await health(client, name)
    assert same == first  # nothing changed, so no index moved

    await client.agent.service.register(name, service_id="r1", port=2, check=ttl_check("30s"))
    changed, nodes = await health(client, name)
    assert changed > first
    (entry,) = nodes
    assert entry["Service"]["Port"] == 2
    # Re-registration resets the check to its initial status (critical without Status).
    assert service_check(entry)["Status"] == "critical"
    await client.agent.service.deregister("r1")


@pytest.mark.parametrize(
    ("meta", "reason"),
    [
        ({f"k{i}": "v" for i in range(65)}, "Node metadata cannot contain more than 64 key/value pairs"),
        ({"k" * 129: "v"}, "Key is too long (limit: 128 characters)"),
        ({"bad.key": "v"}, "Key contains invalid characters"),
        ({"consul-version": "v"}, "Key prefix 'consul-' is reserved for internal use"),
        ({"k": "v" * 513}, "Value is too long (limit: 512 characters)"),
    ],
)
async def test_meta_limits_are_rejected(client: consul.aio.Consul, meta: dict[str, str], reason: str) -> None:
    name = unique("meta")
    with pytest.raises(consul.ConsulException) as raised:
        await client.agent.service.register(name, meta=meta)
    assert str(raised.value).startswith("400 Invalid Service Meta: ")
    assert reason in str(raised.value)
    assert await instances(client, name) == {}


async def test_meta_at_the_limits_is_accepted(client: consul.aio.Consul) -> None:
    name = unique("meta-ok")
    meta = {f"k{i}": "v" for i in range(63)} | {"k" * 128: "v" * 512}
    assert await client.agent.service.register(name, meta=meta)
    assert (await instances(client, name))[name]["Meta"] == meta
    await client.agent.service.deregister(name)


async def test_registration_errors(http: aiohttp.ClientSession) -> None:
    cases = [
        ({"Port": 1}, "Missing service name"),
        ({"Name": "x", "Address": "0.0.0.0"}, "Invalid service address"),
        ({"Name": "x", "Check": {"HTTP": "http://127.0.0.1/", "Interval": "10s"}}, "only runs TTL checks"),
        ({"Name": "x", "Check": {"TTL": "10s", "Status": "bogus"}}, "Status for checks must"),
        ({"Name": "x", "Check": {"TTL": "10"}}, "missing unit in duration"),
        ({"Name": "x", "Check": {"Notes": "no ttl"}}, "TTL must be > 0 for TTL checks"),
    ]
    for body, reason in cases:
        async with http.put("/v1/agent/service/register", json=body) as response:
            assert response.status == 400, body
            assert reason in await response.text(), body


async def test_default_check_ids(client: consul.aio.Consul, http: aiohttp.ClientSession) -> None:
    name = unique("ids")
    body = {
        "Name": name,
        "ID": f"{name}-a",
        "Checks": [{"TTL": "30s"}, {"TTL": "30s", "CheckID": "custom"}, {"TTL": "30s"}],
    }
    async with http.put("/v1/agent/service/register", json=body) as response:
        assert response.status == 200
    _, (entry,) = await health(client, name)
    assert {c["CheckID"] for c in entry["Checks"] if c["ServiceID"] == f"{name}-a"} == {
        f"service:{name}-a:1",
        "custom",
        f"service:{name}-a:3",
    }
    await client.agent.service.deregister(f"{name}-a")
    assert await instances(client, name) == {}


# ------------------------------------------------------------------------ TTL checks


async def test_ttl_pass_makes_check_passing(client: consul.aio.Consul) -> None:
    name = unique("ttl")
    await client.agent.service.register(name, service_id=f"{name}-1", check=ttl_check("30s"))
    _, nodes = await health(client, name)
    assert service_check(nodes[0])["Status"] == "critical"  # initial status without Status
    _, passing = await health(client, name, passing=True)
    assert passing == []

    assert await client.agent.check.ttl_pass(f"service:{name}-1", "all good")
    _, passing = await health(client, name, passing=True)
    (entry,) = passing
    assert service_check(entry)["Status"] == "passing"
    assert service_check(entry)["Output"] == "all good"

    assert await client.agent.check.ttl_fail(f"service:{name}-1", "down")
    _, passing = await health(client, name, passing=True)
    assert passing == []
    _, (entry,) = await health(client, name)
    assert service_check(entry)["Status"] == "critical"
    assert service_check(entry)["Output"] == "down"
    await client.agent.service.deregister(f"{name}-1")


async def test_a_heartbeat_for_an_unknown_check_names_it(http: aiohttp.ClientSession) -> None:
    """The registrar re-registers when it reads this answer (Consul lost the check)."""
    async with http.put("/v1/agent/check/pass/service:nope") as r:
        assert r.status == 500
        assert await r.text() == 'CheckID "service:nope" does not have associated TTL'


async def test_ttl_expiry_turns_check_critical(client: consul.aio.Consul) -> None:
    name = unique("expire")
    await client.agent.service.register(name, check=ttl_check("1s", status="passing"))
    await client.agent.check.ttl_pass(f"service:{name}", "heartbeat 1")
    _, passing = await health(client, name, passing=True)
    assert len(passing) == 1

    await asyncio.sleep(1.4)
    _, nodes = await health(client, name)
    check = service_check(nodes[0])
    assert check["Status"] == "critical"
    assert check["Output"] == "TTL expired (last output before timeout follows): heartbeat 1"
    _, passing = await health(client, name, passing=True)
    assert passing == []

    # A pass restarts the TTL and brings it back.
    await client.agent.check.ttl_pass(f"service:{name}")
    _, passing = await health(client, name, passing=True)
    assert len(passing) == 1
    await client.agent.service.deregister(name)


async def test_output_only_change_reaches_catalog_later(client: consul.aio.Consul) -> None:
    """Consul defers output-only changes (same status) by check_update_interval."""
    name = unique("output")
    await client.agent.service.register(name, check=ttl_check("30s", status="passing"))
    before, _ = await health(client, name)
    await client.agent.check.ttl_pass(f"service:{name}", "new output")
    after, nodes = await health(client, name)
    assert after == before
    assert service_check(nodes[0])["Output"] == ""
    await client.agent.service.deregister(name)


async def test_deregister_critical_service_after_reaps_service(client: consul.aio.Consul) -> None:
    name = unique("reap")
    # 0.1s is clamped up to the double's minimum (1 s here, one minute in Consul).
    await client.agent.service.register(
        name, service_id=f"{name}-dies", check=ttl_check("0.5s", status="passing", deregister_after="0.1s")
    )
    await client.agent.service.register(
        name, service_id=f"{name}-stays", check=ttl_check("0.5s", status="passing")
    )
    started = time.monotonic()

    await asyncio.sleep(1.1)  # TTL expired at ~0.5 s; critical for ~0.6 s < 1 s minimum
    assert f"{name}-dies" in await instances(client, name)

    while f"{name}-dies" in await instances(client, name):
        assert time.monotonic() - started < 5, "service was not reaped"
        await asyncio.sleep(0.1)
    assert time.monotonic() - started >= 0.5 + MIN_DEREGISTER_AFTER

    # A check without DeregisterCriticalServiceAfter is never reaped.
    _, nodes = await health(client, name)
    assert [n["Service"]["ID"] for n in nodes] == [f"{name}-stays"]
    # The registrar's heartbeat now fails the way it does against Consul.
    with pytest.raises(consul.ConsulException, match="does not have associated TTL"):
        await client.agent.check.ttl_pass(f"service:{name}-dies")
    await client.agent.service.deregister(f"{name}-stays")


# --------------------------------------------------------------------- health/index


async def test_health_passing_filter(client: consul.aio.Consul) -> None:
    name = unique("filter")
    await client.agent.service.register(name, service_id="ok", check=ttl_check("30s", status="passing"))
    await client.agent.service.register(name, service_id="bad", check=ttl_check("30s", status="critical"))
    await client.agent.service.register(name, service_id="warn", check=ttl_check("30s", status="warning"))
    all_index, everything = await health(client, name)
    passing_index, passing = await health(client, name, passing=True)
    assert sorted(n["Service"]["ID"] for n in everything) == ["bad", "ok", "warn"]
    assert [n["Service"]["ID"] for n in passing] == ["ok"]
    assert passing_index == all_index  # the filter never changes the index
    for sid in ("ok", "bad", "warn"):
        await client.agent.service.deregister(sid)


async def test_blocking_query_returns_promptly_on_change(client: consul.aio.Consul) -> None:
    name = unique("block")
    await client.agent.service.register(name, service_id="b1", check=ttl_check("30s", status="passing"))
    index, _ = await health(client, name, passing=True)

    async def register_later() -> None:
        await asyncio.sleep(0.3)
        await client.agent.service.register(name, service_id="b2", check=ttl_check("30s", status="passing"))

    started = time.monotonic()
    writer = asyncio.create_task(register_later())
    new_index, nodes = await health(client, name, passing=True, index=index, wait="10s")
    elapsed = time.monotonic() - started
    await writer
    assert 0.25 <= elapsed < 2.0
    assert new_index > index
    assert sorted(n["Service"]["ID"] for n in nodes) == ["b1", "b2"]

    # Deregistering the last instances wakes a watcher too.
    started = time.monotonic()
    watcher = asyncio.create_task(health(client, name, index=new_index, wait="10s"))
    await asyncio.sleep(0.2)
    await client.agent.service.deregister("b1")
    gone_index, nodes = await watcher
    assert gone_index > new_index
    assert [n["Service"]["ID"] for n in nodes] == ["b2"]
    assert time.monotonic() - started < 2.0
    await client.agent.service.deregister("b2")


async def test_blocking_query_waits_full_wait_and_ignores_heartbeats(client: consul.aio.Consul) -> None:
    name = unique("wait")
    await client.agent.service.register(name, check=ttl_check("30s", status="passing"))
    await client.agent.check.ttl_pass(f"service:{name}", "steady")
    index, _ = await health(client, name)

    async def heartbeats() -> None:
        for _ in range(6):  # same status, same output: no write, no wake-up
            await client.agent.check.ttl_pass(f"service:{name}", "steady")
            await asyncio.sleep(0.1)

    beats = asyncio.create_task(heartbeats())
    started = time.monotonic()
    same_index, _ = await health(client, name, index=index, wait="1s")
    elapsed = time.monotonic() - started
    await beats
    assert same_index == index
    assert 1.0 <= elapsed < 1.0 + 1.0 / 16 + 0.4  # wait plus at most wait/16 jitter
    await client.agent.service.deregister(name)


async def test_x_consul_index_is_monotonic_and_positive(
    client: consul.aio.Consul, http: aiohttp.ClientSession
) -> None:
    name = unique("mono")
    key = unique("mono-key")

    async def indexes() -> tuple[int, int]:
        found = []
        for path in (f"/v1/health/service/{name}", f"/v1/kv/{key}"):
            async with http.get(path) as response:
                found.append(int(response.headers["X-Consul-Index"]))
        a, b = found
        return a, b

    seen = [await indexes()]
    assert all(i >= 1 for i in seen[0])  # never 0, even for things that do not exist
    await client.agent.service.register(name, check=ttl_check("30s"))
    seen.append(await indexes())
    await client.agent.check.ttl_pass(f"service:{name}")
    seen.append(await indexes())
    await client.kv.put(key, "v")
    seen.append(await indexes())
    await client.agent.service.deregister(name)
    seen.append(await indexes())
    await client.kv.delete(key)
    seen.append(await indexes())
    for earlier, later in itertools.pairwise(seen):
        assert all(b >= a for a, b in zip(earlier, later, strict=True)), seen
    assert seen[1][0] > seen[0][0] and seen[2][0] > seen[1][0]  # register, then check change
    assert seen[3][1] > seen[2][1]  # the KV write moved the key's index
    assert seen[3][0] == seen[2][0]  # ... and not the health query's
    assert seen[4][0] > seen[3][0]  # deregistration (extinction) moved it again


async def test_invalid_query_parameters(http: aiohttp.ClientSession) -> None:
    for query, status, text in [
        ("index=1&wait=10", 400, "Invalid wait time"),
        ("index=abc", 400, "Invalid index"),
        ("passing=maybe", 400, "Invalid value for ?passing"),
        ("dc=elsewhere", 500, "No path to datacenter"),
    ]:
        async with http.get(f"/v1/health/service/x?{query}") as response:
            assert response.status == status, query
            assert await response.text() == text


# ------------------------------------------------------------------------------- KV


async def test_kv_put_get_delete(client: consul.aio.Consul, http: aiohttp.ClientSession) -> None:
    prefix = unique("kv")
    index, missing = await client.kv.get(f"{prefix}/a")
    assert missing is None and int(index) >= 1

    assert await client.kv.put(f"{prefix}/a", "one")
    _, entry = await client.kv.get(f"{prefix}/a")
    assert entry["Value"] == b"one"
    assert entry["CreateIndex"] == entry["ModifyIndex"] > 0
    assert entry["Flags"] == 0 and entry["LockIndex"] == 0
    assert await client.kv.put(f"{prefix}/a", "two")
    _, updated = await client.kv.get(f"{prefix}/a")
    assert updated["Value"] == b"two"
    assert updated["CreateIndex"] == entry["CreateIndex"] < updated["ModifyIndex"]

    # Values are base64 on the wire; empty values are null.
    async with http.get(f"/v1/kv/{prefix}/a") as response:
        assert (await response.json())[0]["Value"] == base64.b64encode(b"two").decode()
    await client.kv.put(f"{prefix}/empty", None)
    async with http.get(f"/v1/kv/{prefix}/empty") as response:
        assert (await response.json())[0]["Value"] is None

    assert await client.kv.delete(f"{prefix}/a")
    assert await client.kv.delete(f"{prefix}/a")  # a missing key deletes fine, as in Consul
    async with http.get(f"/v1/kv/{prefix}/a") as response:
        assert response.status == 404
        assert int(response.headers["X-Consul-Index"]) >= 1
    await client.kv.delete(f"{prefix}/empty")


async def test_kv_errors(http: aiohttp.ClientSession) -> None:
    async with http.put("/v1/kv/", data=b"x") as response:
        assert response.status == 400 and await response.text() == "Missing key name"
    for method, query in [("put", "cas=1"), ("put", "acquire=s"), ("get", "recurse"), ("delete", "recurse")]:
        async with http.request(method, f"/v1/kv/k?{query}", data=b"x") as response:
            assert response.status == 400, query
            assert (
                await response.text() == f"the toolmesh Consul double does not support ?{query.split('=')[0]}"
            )
    async with http.put("/v1/kv/toolmesh/defs.json", data=b"x") as response:
        assert response.status == 400 and "suspicious file extension" in await response.text()
    async with http.put("/v1/kv/big", data=b"x" * (512 * 1024 + 1)) as response:
        assert response.status == 413


async def test_kv_blocking_query(client: consul.aio.Consul) -> None:
    key = unique("kv-block")
    await client.kv.put(key, "v1")
    index, _ = await client.kv.get(key)

    async def write_later() -> None:
        await asyncio.sleep(0.3)
        await client.kv.put(key, "v2")

    writer = asyncio.create_task(write_later())
    started = time.monotonic()
    new_index, entry = await client.kv.get(key, index=index, wait="10s")
    await writer
    assert time.monotonic() - started < 2.0
    assert int(new_index) > int(index)
    assert entry["Value"] == b"v2"

    # A write elsewhere does not move this key's index: the query waits it out.
    started = time.monotonic()
    other = asyncio.create_task(client.kv.put(unique("kv-other"), "x"))
    same_index, _ = await client.kv.get(key, index=new_index, wait="0.5s")
    await other
    assert same_index == new_index
    assert time.monotonic() - started >= 0.5
    await client.kv.delete(key)
