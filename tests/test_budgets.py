"""Budgets: the policy's `budgets`, checked per call in process (with a clock the test moves),
shared by three stores on a real NATS, and enforced by real routers in both eras and on
/v1/tools (429 for calls, 402 for cost, with Retry-After)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from router.cluster.budgets import NatsBudgetStore
from router.cluster.link import NatsLink
from router.errors import BudgetExceeded, ConfigError
from router.guard.agent import Agent
from router.guard.budget_report import BudgetGauges, report
from router.guard.budgets import Budget, Budgets, BudgetSpec, BudgetWarning, MemoryBudgetStore, window_at
from router.guard.guard import Guard
from router.observe.status import render
from tests.conftest import run_router
from tests.guard_support import guarded_env
from tests.support.cluster import cluster, nats_server
from tests.support.mcpcall import call_tool
from tests.support.procs import sample_server_http
from tests.test_output_limits import legacy_call

pytestmark = pytest.mark.anyio


# -- the policy document ------------------------------------------------------------------------


def install(policy: dict[str, Any]) -> Guard:
    guard = Guard()
    guard.install(json.dumps(policy).encode(), "test")
    return guard


@pytest.mark.parametrize(
    ("budgets", "field", "words"),
    [
        ({"b": {"agent": "x", "period": "fortnight", "calls": 5}}, "budgets.b.period", "such as 30s, 15m"),
        ({"b": {"agent": "x", "period": "40d", "calls": 5}}, "budgets.b.period", "longer than 31 days"),
        ({"b": {"agent": "x", "group": "ops", "period": "day", "calls": 5}}, "budgets.b", "exactly one of `agent`"),
        ({"b": {"agent": "x", "period": "day"}}, "budgets.b", "exactly one of `calls`"),
        ({"b": {"agent": "x", "period": "day", "calls": 5, "cost": 1}}, "budgets.b", "exactly one of `calls`"),
        ({"b": {"agent": "x", "period": "day", "calls": 0}}, "budgets.b.calls", "greater than or equal to 1"),
        ({"b": {"agent": "x", "period": "day", "calls": 5, "warn_at": 1.5}}, "budgets.b.warn_at", "less than"),
        ({"b": {"agent": "x", "period": "day", "calls": 5, "limit": 3}}, "budgets.b.limit", "known fields here"),
        ({"b": {"group": "opps", "period": "day", "calls": 5}}, "document", "did you mean 'ops'?"),
        ({"a b": {"agent": "x", "period": "day", "calls": 5}}, "document", "not a usable name"),
    ],
)  # fmt: skip
def test_a_bad_budget_is_refused_naming_the_field_and_the_fix_and_the_last_policy_stays(
    budgets: dict[str, Any], field: str, words: str
) -> None:
    guard = install({"default": "allow", "groups": {"ops": {}}})
    before = guard.policy
    with pytest.raises(ConfigError) as caught:
        guard.install(
            json.dumps({"default": "allow", "groups": {"ops": {}}, "budgets": budgets}).encode(), "f"
        )
    assert f"field '{field}'" in str(caught.value), str(caught.value)
    assert words in str(caught.value), str(caught.value)
    assert guard.policy is before


def test_views_carry_the_budgets_of_their_agent_and_groups_and_none_without_budgets() -> None:
    guard = install(
        {
            "default": "allow",
            "groups": {"ops": {"members": ["ann"]}},
            "budgets": {
                "ops-day": {"group": "ops", "period": "day", "calls": 100},
                "bob-month": {"agent": "bob", "period": "month", "cost": 5},
                "each": {"agent": "*", "period": "1h", "calls": 10},
            },
        }
    )
    names = {
        who: [b.name for b in guard.view(Agent(who, groups)).budgets]
        for who, groups in (
            ("ann", frozenset()),
            ("bob", frozenset()),
            ("cy", frozenset({"ops"})),
            ("dee", frozenset()),
        )
    }
    assert names == {
        "ann": ["ops-day", "each"],
        "bob": ["bob-month", "each"],
        "cy": ["ops-day", "each"],
        "dee": ["each"],
    }
    assert install({"default": "allow"}).view(Agent("ann")).budgets == ()
    namespaced = install({"default": "allow", "namespaces": {"n": {"tools": ["*"]}},
                          "budgets": {"each": {"agent": "*", "period": "day", "calls": 1}}})  # fmt: skip
    view = namespaced.namespace_view(Agent("ann"), "n")
    assert view is not None and [b.name for b in view.budgets] == ["each"]


def test_windows_are_fixed_utc_periods_and_calendar_months() -> None:
    now = 1_796_000_000.0  # 2026-11-30T...
    assert window_at(3600, now).start == now // 3600 * 3600
    month = window_at(0, now)
    assert time.gmtime(month.start)[:3] == (2026, 11, 1) and time.gmtime(month.end)[:3] == (2026, 12, 1)
    december = window_at(0, 1_798_000_000.0)  # 2026-12-23
    assert time.gmtime(december.end)[:3] == (2027, 1, 1)


# -- in process, with a clock the test moves ------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def budget(name: str, **spec: Any) -> Budget:
    return Budget(name, BudgetSpec.model_validate(spec))


async def test_a_call_budget_refuses_the_call_over_it_naming_limit_period_and_reset_then_resets() -> None:
    clock = Clock(1_800_000_000.0 + 10)  # 10 s into a minute
    warnings: list[BudgetWarning] = []
    refused: list[str] = []
    budgets = Budgets(MemoryBudgetStore(warnings.append), clock=clock, on_exceeded=refused.append)
    each = budget("each", agent="*", period="minute", calls=3, warn_at=0.5)
    for _ in range(3):
        await budgets.check("ann", [each])
    with pytest.raises(BudgetExceeded) as caught:
        await budgets.check("ann", [each])
    error = caught.value.to_error()
    assert error["code"] == -32008
    assert error["message"] == (
        "budget 'each' of agent ann is spent (3 calls per minute); it resets at 2027-01-15T08:01:00Z (in 50 s)"
    )
    assert error["data"] == {"budget": "each", "unit": "calls", "limit": 3, "period": "minute",
                             "resetsAt": "2027-01-15T08:01:00Z", "retryAfter": 50.0}  # fmt: skip
    assert refused == ["each"]
    await budgets.check("bob", [each])  # each agent has its own
    assert [(w.key, w.used) for w in warnings] == [("each.ann", 2.0)]  # once, at 2 of 3 (0.5)
    clock.now += 50  # the next minute
    await budgets.check("ann", [each])
    await budgets.check("ann", [each])
    assert [(w.key, w.used) for w in warnings][-1] == ("each.ann", 2.0) and len(warnings) == 2


async def test_a_cost_budget_is_charged_after_the_call_and_a_refused_call_spends_nothing() -> None:
    clock = Clock(1_800_000_000.0)
    store = MemoryBudgetStore()
    budgets = Budgets(store, clock=clock)
    spend = budget("spend", group="ops", period="hour", cost=10)
    calls = budget("calls", group="ops", period="hour", calls=2)
    held = await budgets.check("ann", [spend])
    budgets.charge(held, 6.0)
    held = await budgets.check("bob", [spend])  # 6 < 10: admitted; the group's members share it
    budgets.charge(held, 6.0)  # 12: over by what one call cost
    with pytest.raises(
        BudgetExceeded, match=r"budget 'spend' of group ops is spent \(10 cost units per hour\)"
    ):
        await budgets.check("ann", [spend])
    # Two budgets on one call: the second refuses, the first gives its call back.
    tight = budget("tight", group="ops", period="hour", calls=1)
    await budgets.check("ann", [tight])
    for _ in range(3):
        with pytest.raises(BudgetExceeded, match="'tight'"):
            await budgets.check("ann", [calls, tight])
    window = calls.window(clock.now)
    assert store.used("calls", window) == 0


async def test_operators_see_what_each_budget_spent_of_its_limit_in_gauges_and_the_admin_report() -> None:
    clock = Clock(1_800_000_000.0)
    store = MemoryBudgetStore()
    budgets = Budgets(store, clock=clock)
    team = budget("team", group="ops", period="day", calls=10)
    each = budget("each", agent="*", period="hour", cost=5)
    for _ in range(3):
        await budgets.check("ann", [team])
    budgets.charge(await budgets.check("ann", [each]), 1.5)
    budgets.charge(await budgets.check("bob", [each]), 2.0)
    budgets.charge(await budgets.check("bob", [each]), 0.25)

    rows = report([team, each], store, clock.now)
    assert rows[0] == {"name": "team", "subject": "group ops", "unit": "calls", "limit": 10, "period": "day",
                       "spent": 3, "warn_at": 0.8, "resets_at": "2027-01-16T00:00:00Z"}  # fmt: skip
    assert rows[1]["subject"] == "each agent" and rows[1]["unit"] == "cost" and rows[1]["limit"] == 5
    assert rows[1]["spent"] == 2.25  # per agent: the agent closest to the limit
    assert rows[1]["agents"] == {"bob": 2.25, "ann": 1.5} and rows[1]["agents_counted"] == 2
    assert "budget:    team (group ops): 3 of 10 calls per day, resets 2027-01-16T00:00:00Z" in render(
        {"budgets": rows}
    )

    registry = CollectorRegistry()
    BudgetGauges(lambda: (team, each), store, registry, clock=clock)
    text = generate_latest(registry).decode()
    assert 'toolmesh_budget_spent{budget="team",period="day"} 3.0' in text
    assert 'toolmesh_budget_limit{budget="team",period="day"} 10.0' in text
    assert 'toolmesh_budget_spent{budget="each",period="hour"} 2.25' in text
    assert "agent=" not in text  # agents only with metrics_agent_label
    labelled = CollectorRegistry()
    BudgetGauges(lambda: (team, each), store, labelled, agent_label=True, clock=clock)
    text = generate_latest(labelled).decode()
    assert 'toolmesh_budget_spent{agent="ann",budget="each",period="hour"} 1.5' in text
    assert 'toolmesh_budget_spent{agent="bob",budget="each",period="hour"} 2.25' in text
    assert 'toolmesh_budget_limit{agent="bob",budget="each",period="hour"} 5.0' in text
    assert 'toolmesh_budget_spent{agent="",budget="team",period="day"} 3.0' in text

    clock.now += 3600  # the next hour: the per-agent budget starts afresh, the daily one does not
    text = generate_latest(registry).decode()
    assert 'toolmesh_budget_spent{budget="each",period="hour"} 0.0' in text
    assert 'toolmesh_budget_spent{budget="team",period="day"} 3.0' in text


# -- three stores on one NATS --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def nats_stores(url: str, count: int, **options: Any) -> AsyncIterator[list[NatsBudgetStore]]:
    links = [NatsLink(url) for _ in range(count)]
    stores = [NatsBudgetStore(link, replicas=lambda: count, **options) for link in links]
    async with contextlib.AsyncExitStack() as running:
        for link, store in zip(links, stores, strict=True):
            await running.enter_async_context(link)
            await running.enter_async_context(store)
        with anyio.fail_after(10):
            while any(store.degraded for store in stores):
                await anyio.sleep(0.05)
        yield stores


async def test_three_stores_sharing_a_call_budget_admit_exactly_its_limit_and_warn_once(
    tmp_path: Path,
) -> None:
    limit = 300
    shared = budget("shared", group="ops", period="1d", calls=limit, warn_at=0.5)
    warnings: list[BudgetWarning] = []
    admitted = [0, 0, 0]
    with nats_server(tmp_path) as nats:
        async with nats_stores(nats.url, 3, lease_idle=0.3, on_warning=warnings.append) as stores:
            window = shared.window(time.time())

            async def hammer(index: int, until: float) -> None:
                while time.monotonic() < until:
                    if await stores[index].take("shared", shared, window):
                        admitted[index] += 1
                        await anyio.sleep(0.001)
                    else:
                        await anyio.sleep(0.02)

            until = time.monotonic() + 4.0  # long enough for idle slices to come back and be used
            async with anyio.create_task_group() as tg:
                for index in range(3):
                    for _ in range(4):
                        tg.start_soon(hammer, index, until)
    assert sum(admitted) == limit, admitted  # leased slices never pass the limit; returned ones are used
    assert all(count > 0 for count in admitted), admitted
    assert len(warnings) == 1 and warnings[0].used >= limit * 0.5, warnings


async def test_three_stores_sharing_a_cost_budget_overshoot_at_most_the_calls_in_flight(
    tmp_path: Path,
) -> None:
    limit, cost, in_flight = 100.0, 1.5, 4  # per store: 4 callers, each one call at a time
    shared = budget("spend", agent="*", period="1d", cost=limit)
    spent = [0.0, 0.0, 0.0]
    with nats_server(tmp_path) as nats:
        async with nats_stores(nats.url, 3, lease_idle=0.3) as stores:
            window = shared.window(time.time())

            async def caller(index: int, until: float) -> None:
                while time.monotonic() < until:
                    if await stores[index].take("spend.ann", shared, window):
                        await anyio.sleep(0.005)  # the call runs; its cost is known after it
                        stores[index].charge("spend.ann", shared, window, cost)
                        spent[index] += cost
                    else:
                        await anyio.sleep(0.02)

            until = time.monotonic() + 4.0
            async with anyio.create_task_group() as tg:
                for index in range(3):
                    for _ in range(in_flight):
                        tg.start_soon(caller, index, until)
    bound = 3 * in_flight * cost  # docs/usage.md: calls in flight when the slices ran dry, times their cost
    assert limit * 0.95 <= sum(spent) <= limit + bound, (spent, bound)


# -- real routers ---------------------------------------------------------------------------------

ROUTER_POLICY = {
    "default": "allow",
    "groups": {"team": {"members": ["ann", "bob"]}},
    "budgets": {
        "team-calls": {"group": "team", "period": "1d", "calls": 4, "warn_at": 0.5},
        "cy-cost": {"agent": "cy", "period": "1d", "cost": 2},
        "dee-short": {"agent": "dee", "period": "3s", "calls": 1},
        "each": {"agent": "*", "period": "1d", "calls": 1000},
    },
}


def metric_line(text: str, name: str, budget: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(f'{name}{{budget="{budget}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_a_router_refuses_calls_over_budget_in_both_eras_and_on_v1_tools_and_warns_once(
    tmp_path: Path,
) -> None:
    agents: dict[str, list[str]] = {name: [] for name in ("ann", "bob", "cy", "dee", "eve")}
    agents["root"] = ["admins"]
    keys, env = guarded_env(tmp_path, agents, ROUTER_POLICY)
    env["TOOLMESH_ADMIN_GROUPS"] = "admins"
    auth = {name: {"Authorization": f"Bearer {key}"} for name, key in keys.items()}
    with (
        sample_server_http("svc", log_dir=tmp_path) as (url, _),
        run_router(tmp_path, {"svc": {"url": url, "cost": {"per_call": 1}}}, env=env) as router,
    ):
        tool_url = f"{router.base_url}/v1/tools/svc__echo/call"
        async with aiohttp.ClientSession() as http:
            # The team's four calls, spent by two members in both eras and over plain HTTP.
            assert "result" in await call_tool(
                http, router.mcp_url, "svc__echo", {"text": "1"}, headers=auth["ann"]
            )
            assert "result" in await legacy_call(
                http, router, "svc__echo", {"text": "2"}, headers=auth["bob"]
            )
            async with http.post(tool_url, json={"text": "3"}, headers=auth["bob"]) as response:
                assert response.status == 200
            assert "result" in await call_tool(
                http, router.mcp_url, "svc__echo", {"text": "4"}, headers=auth["ann"]
            )

            modern = await call_tool(http, router.mcp_url, "svc__echo", {"text": "5"}, headers=auth["ann"])
            legacy = await legacy_call(http, router, "svc__echo", {"text": "6"}, headers=auth["bob"])
            for reply in (modern, legacy):
                error = reply["error"]
                assert error["code"] == -32008, reply
                assert error["message"].startswith(
                    "budget 'team-calls' of group team is spent (4 calls per 1d); it resets at "
                )
                assert error["data"]["budget"] == "team-calls" and error["data"]["unit"] == "calls"
                assert error["data"]["limit"] == 4 and isinstance(error["data"]["limit"], int)
                assert error["data"]["period"] == "1d"
                assert 0 < error["data"]["retryAfter"] <= 86400
            async with http.post(tool_url, json={"text": "7"}, headers=auth["ann"]) as response:
                assert response.status == 429
                assert 0 < int(response.headers["Retry-After"]) <= 86400
                body = await response.json()
            assert body["error"]["code"] == -32008 and body["error"]["data"]["budget"] == "team-calls"
            # Someone outside the team is not touched by its budget.
            assert "result" in await call_tool(
                http, router.mcp_url, "svc__echo", {"text": "8"}, headers=auth["eve"]
            )

            # A cost budget: 1 unit a call, 2 allowed; the third call answers 402.
            for _ in range(2):
                async with http.post(tool_url, json={"text": "c"}, headers=auth["cy"]) as response:
                    assert response.status == 200
            async with http.post(tool_url, json={"text": "c"}, headers=auth["cy"]) as response:
                assert response.status == 402
                assert int(response.headers["Retry-After"]) > 0
                body = await response.json()
            assert body["error"]["data"]["unit"] == "cost" and body["error"]["data"]["budget"] == "cy-cost"
            assert "(2 cost units per 1d)" in body["error"]["message"]

            # A 3-second budget resets when its window ends.
            first = await call_tool(http, router.mcp_url, "svc__echo", {"text": "d"}, headers=auth["dee"])
            if "error" in first:  # the first call fell at a window's last instant: start afresh
                await anyio.sleep(float(first["error"]["data"]["retryAfter"]))
                first = await call_tool(http, router.mcp_url, "svc__echo", {"text": "d"}, headers=auth["dee"])
            assert "result" in first
            refused = await call_tool(http, router.mcp_url, "svc__echo", {"text": "d"}, headers=auth["dee"])
            assert refused["error"]["data"]["budget"] == "dee-short"
            await anyio.sleep(refused["error"]["data"]["retryAfter"] + 0.05)
            again = await call_tool(http, router.mcp_url, "svc__echo", {"text": "d"}, headers=auth["dee"])
            assert "result" in again, again

            async with http.get(f"{router.base_url}/metrics") as response:
                metrics = await response.text()
            async with http.get(f"{router.base_url}/admin/", headers=auth["root"]) as response:
                shown = {row["name"]: row for row in (await response.json())["budgets"]}
            async with http.get(f"{router.base_url}/console/live", headers=auth["root"]) as response:
                console = await response.text()
        assert metric_line(metrics, "toolmesh_budget_warnings_total", "team-calls") == 1.0
        # What operators see of each budget: gauges by budget and period, /admin/, the console.
        assert 'toolmesh_budget_spent{budget="team-calls",period="1d"} 4.0' in metrics
        assert 'toolmesh_budget_limit{budget="team-calls",period="1d"} 4.0' in metrics
        assert 'toolmesh_budget_spent{budget="cy-cost",period="1d"} 2.0' in metrics
        assert 'toolmesh_budget_limit{budget="each",period="1d"} 1000.0' in metrics
        assert list(shown) == ["team-calls", "cy-cost", "dee-short", "each"]
        assert shown["team-calls"]["spent"] == 4 and shown["team-calls"]["limit"] == 4
        assert shown["team-calls"]["subject"] == "group team"
        assert shown["cy-cost"]["spent"] == 2 and shown["cy-cost"]["unit"] == "cost"
        each = shown["each"]  # refused calls spent nothing of it; dee may have needed a third call
        assert {k: each["agents"][k] for k in ("ann", "bob", "cy", "eve")} == {
            "ann": 2,
            "bob": 2,
            "cy": 2,
            "eve": 1,
        }
        assert each["agents_counted"] == 5 and each["spent"] == max(each["agents"].values())
        assert (
            '<section id="budgets">' in console
            and "<td>team-calls</td><td>group team</td><td>4</td>" in console
        )
        assert metric_line(metrics, "toolmesh_budget_warnings_total", "cy-cost") == 1.0
        assert metric_line(metrics, "toolmesh_budget_exceeded_total", "team-calls") == 3.0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
            warned = [r for r in records if r["method"] == "budget/warning"]
            if len(warned) == 4 and len([r for r in records if r["outcome"] == "over_budget"]) == 5:
                break
            await anyio.sleep(0.1)
        # Once per budget and window: the 3-second budget warned in each of its two windows.
        assert sorted(r["target"] for r in warned) == ["cy-cost", "dee-short", "dee-short", "team-calls"]
        team = next(r for r in warned if r["target"] == "team-calls")
        assert team["outcome"] == "warning" and team["reason"].startswith(
            "2 of 4 calls per 1d spent by group team"
        )
        over = [r for r in records if r["outcome"] == "over_budget"]
        assert len(over) == 5 and {r["error_code"] for r in over} == {-32008}
        assert router.process.log_text().count("budget warning: 2 of 4 calls per 1d spent") == 1


async def test_three_replicas_sharing_a_call_budget_admit_exactly_its_limit(tmp_path: Path) -> None:
    limit = 30
    policy = {"default": "allow", "groups": {"team": {}},
              "budgets": {"team": {"group": "team", "period": "1d", "calls": limit, "warn_at": 0.5}}}  # fmt: skip
    keys, env = guarded_env(tmp_path, {"ann": ["team"], "bob": ["team"]}, policy)
    env.pop("TOOLMESH_AUDIT_SINK")
    auth = [{"Authorization": f"Bearer {keys[name]}"} for name in ("ann", "bob")]
    with (
        sample_server_http("svc", log_dir=tmp_path) as (url, _),
        cluster(tmp_path, {"svc": {"url": url}}, env=env) as group,
    ):
        admitted = 0
        async with aiohttp.ClientSession() as http:

            async def round_robin(calls: int) -> int:
                count = 0
                for n in range(calls):
                    replica = group.replicas[n % 3]
                    reply = await call_tool(
                        http, replica.mcp_url, "svc__echo", {"text": str(n)}, headers=auth[n % 2]
                    )
                    if "result" in reply:
                        count += 1
                    else:
                        assert reply["error"]["code"] == -32008, reply
                return count

            admitted += await round_robin(2 * limit)
            assert admitted <= limit
            await anyio.sleep(3)  # slices left unused on one replica go back to the shared budget
            admitted += await round_robin(limit)
        assert admitted == limit
        assert group.replicas[0].readyz()[1]["budgets"] == {"store": "nats", "shared": True}
        warnings = [
            replica.metric('toolmesh_budget_warnings_total{budget="team"}') or 0.0
            for replica in group.replicas
        ]
        assert sum(warnings) == 1.0, warnings


async def test_with_nats_gone_a_store_spends_its_share_of_the_budget_alone(tmp_path: Path) -> None:
    shared = budget("shared", group="ops", period="1d", calls=10)
    with nats_server(tmp_path) as nats:
        async with nats_stores(nats.url, 1) as stores:
            store = stores[0]
            store.replicas = lambda: 2  # two replicas were counted before the outage
            window = shared.window(time.time())
            assert await store.take("shared", shared, window)  # shared while NATS is there
            nats.stop()
            with anyio.fail_after(10):
                while not store.degraded:
                    await anyio.sleep(0.05)
            admitted = [await store.take("shared", shared, window) for _ in range(8)]
    assert admitted == [True] * 5 + [False] * 3  # 10 // 2 counted here alone


async def test_a_shared_store_reports_the_shared_amount_less_its_own_unspent_slice(tmp_path: Path) -> None:
    shared = budget("shared", group="ops", period="1d", calls=100)
    with nats_server(tmp_path) as nats:
        async with nats_stores(nats.url, 2, max_batch=4, hot_interval=10.0, lease_idle=30.0) as (one, two):
            window = shared.window(time.time())
            for _ in range(4):  # slices of 1, 2 (the key is hot), then 4: 7 leased, 3 of them unspent
                assert await one.take("shared", shared, window)
            assert one.amounts()[("shared", window.start)] == 4
            for _ in range(2):  # slices of 1 and 2: the shared amount is 10, one call unspent here
                assert await two.take("shared", shared, window)
            # `two` knows nothing of `one`'s unspent calls: they count as spent, as in the bucket.
            assert two.amounts()[("shared", window.start)] == 9
            assert report([shared], two)[0]["spent"] == 9
            assert one.amounts()[("shared", window.start)] == 4  # as `one` last saw it
