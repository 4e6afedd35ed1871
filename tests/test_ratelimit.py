"""Rate limits: GCRA arithmetic, the limiter's scopes, and buckets shared through a real NATS.

The cluster tests run three real router replicas against one real `nats-server -js`.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from nats.js.errors import NoKeysError

from router.catalog.config_file import parse_catalog
from router.catalog.server_rules import LimitRule
from router.cluster.link import NatsLink
from router.cluster.ratelimit import NatsRateStore
from router.errors import ConfigError, RateLimited
from router.guard.ratelimit import MemoryRateStore, RateLimiter, gcra
from tests.conftest import RouterHandle, run_router
from tests.support.cluster import NatsServer, nats_server
from tests.support.mcpcall import call_tool
from tests.support.procs import sample_server_http

pytestmark = pytest.mark.anyio


# -- GCRA and the limiter, in process ---------------------------------------------------------------


def test_gcra_admits_the_burst_then_the_steady_rate_and_says_when() -> None:
    rule = LimitRule(rate=2, period=1, burst=3)  # one call every 0.5 s, three at once
    tat, now = 0.0, 100.0
    for _ in range(3):
        tat, granted, wait = gcra(tat, now, rule)
        assert granted == 1 and wait == 0
    tat2, granted, wait = gcra(tat, now, rule)
    assert granted == 0 and tat2 == tat and wait == pytest.approx(0.5)
    _, granted, _ = gcra(tat, now + 0.5, rule)
    assert granted == 1
    # A lease takes what fits and no more.
    _, granted, _ = gcra(0.0, now, rule, wanted=10)
    assert granted == 3


async def test_limits_apply_per_agent_per_tool_and_name_the_limit() -> None:
    clock = [0.0]
    limiter = RateLimiter(MemoryRateStore(clock=lambda: clock[0]))
    limiter.configure(
        [
            LimitRule(rate=1, period=10, burst=2, server="svc", per=("agent",)),
            LimitRule(rate=100, period=1, burst=1, server="svc", tool="slow"),
        ]
    )
    await limiter.check("ann", "svc", "echo")
    await limiter.check("ann", "svc", "echo")
    with pytest.raises(RateLimited) as refused:
        await limiter.check("ann", "svc", "echo")
    assert refused.value.message == "rate limit 1/10s on svc per agent exceeded; retry after 10.000 s"
    assert refused.value.data == {"limit": "1/10s on svc per agent", "retryAfter": 10.0}
    await limiter.check("bob", "svc", "echo")  # another agent has its own bucket
    await limiter.check("bob", "other", "echo")  # another server is not limited at all
    await limiter.check("cy", "svc", "slow")
    with pytest.raises(RateLimited, match="on svc/slow"):
        await limiter.check("dee", "svc", "slow")  # the tool's bucket is shared by every agent
    clock[0] = 10.0
    await limiter.check("ann", "svc", "echo")


def test_limits_in_the_catalog_file_and_their_errors() -> None:
    catalog = parse_catalog(
        json.dumps(
            {
                "toolmesh": {"limits": [{"rate": 100, "per": ["agent"]}]},
                "mcpServers": {
                    "svc": {
                        "instances": [{"url": "http://a/mcp"}, {"url": "http://b/mcp", "id": "b"}],
                        "trusted": True,
                        "tools": {"echo": {"timeout": 2, "retry": "safe"}},
                        "max_concurrency": 4,
                        "limits": [{"rate": 5, "period": 60, "tool": "echo", "per": ["agent"]}],
                    }
                },
            }
        ).encode()
    )
    records = sorted(catalog.servers["svc"], key=lambda r: r.instance_id)
    assert [(r.instance_id, r.url) for r in records] == [("b", "http://b/mcp"), ("svc#1", "http://a/mcp")]
    policy = records[0].policy
    assert policy.trusted and policy.max_concurrency == 4
    echo = policy.tool("echo")
    assert echo is not None and echo.timeout == 2 and echo.retry == "safe"
    assert catalog.limits == (
        LimitRule(rate=100, per=("agent",)),
        LimitRule(rate=5, period=60, server="svc", tool="echo", per=("agent",)),
    )
    with pytest.raises(ConfigError, match=r"server 'svc', field 'limits.0.rate'.*greater than 0"):
        parse_catalog(b'{"mcpServers": {"svc": {"url": "http://a/mcp", "limits": [{"rate": 0}]}}}')
    with pytest.raises(ConfigError, match=r"give either `command`.*not both or none"):
        parse_catalog(
            b'{"mcpServers": {"svc": {"url": "http://a/mcp", "instances": [{"url": "http://b/mcp"}]}}}'
        )
    with pytest.raises(ConfigError, match=r"field 'tools.echo.retry'"):
        parse_catalog(
            b'{"mcpServers": {"svc": {"url": "http://a/mcp", "tools": {"echo": {"retry": "always"}}}}}'
        )


# -- NATS-backed buckets ----------------------------------------------------------------------------


@pytest.fixture
def nats_js(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path) as server:
        yield server


async def test_three_stores_sharing_nats_admit_the_global_limit(nats_js: NatsServer) -> None:
    rule = LimitRule(rate=50, period=1, burst=10)
    links = [NatsLink(nats_js.url) for _ in range(3)]
    stores = [NatsRateStore(link, heartbeat=0.2) for link in links]
    admitted = [0, 0, 0]
    async with contextlib.AsyncExitStack() as running:
        for link, store in zip(links, stores, strict=True):
            await running.enter_async_context(store)
            await running.enter_async_context(link)
        with anyio.fail_after(10):
            while any(store.degraded for store in stores):
                await anyio.sleep(0.05)

        async def hammer(index: int, until: float) -> None:
            while time.monotonic() < until:
                if await stores[index].take("global", rule) == 0:
                    admitted[index] += 1
                else:
                    await anyio.sleep(0.002)

        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for index in range(3):
                for _ in range(4):
                    tg.start_soon(hammer, index, started + 2.0)
        elapsed = time.monotonic() - started
    allowed = rule.capacity + rule.rate * elapsed
    assert allowed * 0.85 <= sum(admitted) <= allowed + 3, (admitted, allowed)
    assert all(count > 0 for count in admitted), admitted


@contextlib.asynccontextmanager
async def a_store(kind: str, nats_url: str) -> AsyncIterator[MemoryRateStore | NatsRateStore]:
    """A rate store of `kind`; the NATS one connected to a real server and out of fallback."""
    if kind == "memory":
        yield MemoryRateStore()
        return
    link = NatsLink(nats_url)
    store = NatsRateStore(link, heartbeat=0.2)
    async with store, link:
        with anyio.fail_after(10):
            while store.degraded:
                await anyio.sleep(0.05)
        yield store


@pytest.mark.parametrize("kind", ["memory", "nats"])
async def test_a_call_a_later_rule_refuses_consumes_nothing_from_earlier_rules(
    kind: str, nats_js: NatsServer
) -> None:
    # Checked in this order: the agent's budget on the whole server first, then the tool's.
    agent_rule = LimitRule(rate=3, period=600, server="svc", per=("agent",))
    tool_rule = LimitRule(rate=1, period=600, server="svc", tool="slow")
    async with a_store(kind, nats_js.url) as store:
        limiter = RateLimiter(store)
        limiter.configure([agent_rule, tool_rule])
        await limiter.check("ann", "svc", "slow")  # both rules admit it: 1 of ann's 3 is used
        for _ in range(5):  # refused by the tool rule: ann's budget must stay at 2
            with pytest.raises(RateLimited, match="on svc/slow"):
                await limiter.check("ann", "svc", "slow")
        await limiter.check("ann", "svc", "echo")
        await limiter.check("ann", "svc", "echo")
        with pytest.raises(RateLimited, match="on svc per agent"):
            await limiter.check("ann", "svc", "echo")
        await limiter.check("bob", "svc", "echo")  # bob's budget was never touched
        if isinstance(store, NatsRateStore):  # the shared bucket agrees: 3 of ann's calls counted
            kv = store.kv
            assert kv is not None
            expected = 3 * agent_rule.interval
            ahead: float | None = None  # how far ann's bucket is booked ahead of now, once written
            with anyio.move_on_after(5):  # the bucket is written in the background
                while ahead is None or ahead != pytest.approx(expected, abs=5):
                    await anyio.sleep(0.05)
                    with contextlib.suppress(NoKeysError):
                        keys = [k for k in await kv.keys() if k.endswith(".ann")]
                        if keys:
                            ahead = float((await kv.get(keys[0])).value or b"0") - time.time()
            assert ahead == pytest.approx(expected, abs=5), ahead


# -- three router replicas --------------------------------------------------------------------------


def _get(url: str) -> tuple[int, dict[str, Any] | str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        body, status = error.read(), error.code
    with contextlib.suppress(ValueError):
        return status, json.loads(body)
    return status, body.decode()


@contextlib.contextmanager
def replicas(tmp: Path, servers: dict[str, Any], nats_url: str) -> Iterator[list[RouterHandle]]:
    env = {"TOOLMESH_NATS": nats_url, "TOOLMESH_CLUSTER_KEY": "resilience-tests-shared-key"}
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(run_router(tmp / f"r{n}", servers, env=env)) for n in range(3)]


async def test_a_limit_holds_across_three_router_replicas_and_falls_back_when_nats_goes(
    tmp_path: Path, nats_js: NatsServer
) -> None:
    for n in range(3):
        (tmp_path / f"r{n}").mkdir()
    with sample_server_http("svc", log_dir=tmp_path) as (url, _):
        limit = {"rate": 10, "period": 1, "burst": 6}
        servers = {"svc": {"url": url, "limits": [limit]}}
        with replicas(tmp_path, servers, nats_js.url) as routers:
            admitted, refused = 0, []
            async with aiohttp.ClientSession() as http:
                started = time.monotonic()
                while time.monotonic() - started < 2.0:
                    for router in routers:
                        reply = await call_tool(http, router.mcp_url, "svc__echo", {"text": "x"})
                        if "result" in reply:
                            admitted += 1
                        else:
                            refused.append(reply["error"])
                elapsed = time.monotonic() - started
            allowed = 6 + 10 * elapsed
            assert allowed * 0.8 <= admitted <= allowed + 2, (admitted, allowed)
            assert refused and refused[0]["code"] == -32004
            assert refused[0]["message"].startswith("rate limit 10/1s on svc exceeded; retry after")
            assert 0 < refused[0]["data"]["retryAfter"] <= 0.1 + 1e-9

            await anyio.sleep(2.5)  # replicas count each other by heartbeat
            status, detail = _get(f"{routers[0].base_url}/readyz")
            assert status == 200 and isinstance(detail, dict)
            assert detail["ratelimit"] == {"store": "nats", "shared": True, "replicas": 3}

            nats_js.stop()
            await anyio.sleep(2.5)
            status, detail = _get(f"{routers[0].base_url}/readyz")
            assert isinstance(detail, dict)
            assert detail["ratelimit"]["shared"] is False
            assert detail["ratelimit"]["note"] == "NATS unreachable: each replica enforces 1/3 of every limit"
            _, text = _get(f"{routers[0].base_url}/metrics")
            assert "toolmesh_ratelimit_degraded 1.0" in str(text)
            # Alone, one replica admits its share: 6 // 3 = 2 at once.
            async with aiohttp.ClientSession() as http:
                replies = [
                    await call_tool(http, routers[0].mcp_url, "svc__echo", {"text": "x"}) for _ in range(5)
                ]
            assert ["result" in reply for reply in replies][:3] == [True, True, False]
            assert "Rate limits are local" in routers[0].process.log_text() or "NATS unreachable" in (
                routers[0].process.log_text()
            )
