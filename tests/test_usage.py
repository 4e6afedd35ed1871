"""Usage metering through a real router: every tools/call (both eras and /v1/tools) is counted
per agent, server and tool with bytes, tokens and the catalog's cost; `/v1/usage` shows an admin
everything and an agent its own; `toolmesh usage` prints it."""

from __future__ import annotations

import csv
import io
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest
from prometheus_client import CollectorRegistry

from router.observe.usage import UsageCounters, UsageLedger
from tests.conftest import run_router
from tests.guard_support import guarded_env
from tests.support.mcpcall import call_tool as modern_call
from tests.support.procs import sample_server_http
from tests.test_output_limits import legacy_call

pytestmark = pytest.mark.anyio

POLICY = {"default": "allow"}


def test_minutes_sum_into_hours_and_days_grouped_by_any_dimension() -> None:
    ledger = UsageLedger()
    start = 1_790_000_000 // 86400 * 86400  # midnight UTC
    ledger.add("a", "s", "t", True, 0.010, 10, 400, 1.5, now=start + 5)
    ledger.add("a", "s", "t", False, 0.020, 10, 0, 0.0, now=start + 65)
    ledger.add("b", "s", "u", True, 0.001, 1, 3, 0.0, now=start + 3605)
    hours = ledger.query(period="hour")
    assert [(r["agent"], r["tool"], r["calls"], r["errors"]) for r in hours] == [
        ("a", "t", 2, 1),
        ("b", "u", 1, 0),
    ]
    assert hours[0]["tokens"] == 100 and hours[0]["cost"] == 1.5 and hours[0]["duration_ms"] == 30.0
    assert hours[1]["start"].endswith("T01:00:00Z")
    days = ledger.query(period="day", by=["server"])
    assert days == [
        {"start": hours[0]["start"], "server": "s", "calls": 3, "errors": 1, "duration_ms": 31.0,
         "request_bytes": 21, "response_bytes": 403, "tokens": 101, "cost": 1.5}
    ]  # fmt: skip
    assert ledger.query(agent="b", period="minute")[0]["calls"] == 1
    assert ledger.query(since=start + 60, until=start + 120, period="minute")[0]["errors"] == 1


def test_usage_groups_by_group_and_namespace_and_reads_rows_of_replicas_from_before_them() -> None:
    ledger = UsageLedger()
    start = 1_790_000_000 // 86400 * 86400
    ledger.add("ann", "s", "t", True, 0.01, 1, 10, 1.0, now=start, groups="blue,red", namespace="ns")
    # The call path gives the pair of sets (the credential's groups, the policy's), joined on reading.
    ledger.add(
        "ann",
        "s",
        "t",
        True,
        0.01,
        1,
        10,
        1.0,
        now=start,
        groups=(frozenset({"red"}), frozenset({"blue", "red"})),
        namespace="ns",
    )
    ledger.add("bob", "s", "t", True, 0.01, 1, 10, 2.0, now=start, groups=(frozenset(), frozenset({"red"})))
    ledger.add("cy", "s", "t", True, 0.01, 1, 10, 4.0, now=start, groups=(frozenset(), frozenset()))
    by_group = {r["group"]: (r["calls"], r["cost"]) for r in ledger.query(by=["group"], period="day")}
    assert by_group == {"": (1, 4.0), "blue": (2, 2.0), "red": (3, 4.0)}  # ann counts in both of hers
    by_namespace = {r["namespace"]: r["calls"] for r in ledger.query(by=["namespace"], period="day")}
    assert by_namespace == {"": 2, "ns": 2}
    assert [r["calls"] for r in ledger.query(by=["server"], period="day")] == [4]  # no group: once each
    # Rows travel between replicas with groups and namespace last; an older replica's end with
    # the totals and count as no group, no namespace.
    shared = UsageLedger()
    shared.merge(ledger.drain())
    shared.merge([(start, "dee", "s", "t", 1, 0, 5.0, 1, 10, 3, 0.5)])
    rows = shared.query(by=["agent", "group", "namespace"], period="day")
    assert [(r["agent"], r["group"], r["namespace"]) for r in rows] == [
        ("ann", "blue", "ns"), ("ann", "red", "ns"), ("bob", "red", ""), ("cy", "", ""), ("dee", "", "")
    ]  # fmt: skip


def test_the_prometheus_counters_read_the_ledger_with_every_call_counted_once() -> None:
    """The counters are not counted per call: minutes are folded into running sums when a new
    minute starts (or the shared form drains them), and a scrape adds the current minute."""
    ledger = UsageLedger()
    start = 1_790_000_000 // 86400 * 86400

    def scraped() -> dict[str, float]:
        registry = CollectorRegistry()
        UsageCounters(ledger, registry)
        return {
            f"{m.name}:{s.labels['tool']}": s.value
            for m in registry.collect()
            for s in m.samples
            if s.name.endswith("_total")
        }

    ledger.add("a", "s", "t", True, 0.01, 1, 100, 1.0, now=start + 1)
    ledger.add("b", "s", "t", True, 0.01, 1, 50, 0.5, now=start + 2)
    assert scraped() == {"toolmesh_usage_response_bytes:t": 150, "toolmesh_usage_cost_units:t": 1.5}
    ledger.add("a", "s", "u", True, 0.01, 1, 10, 0.0, now=start + 61)  # a new minute: the first folded
    ledger.add("a", "s", "t", False, 0.01, 1, 0, 0.0, now=start + 62)
    ledger.add("a", "s", "t", True, 0.01, 1, 7, 2.0, now=start + 3)  # a clock stepped back
    assert scraped() == {
        "toolmesh_usage_response_bytes:t": 157, "toolmesh_usage_response_bytes:u": 10,
        "toolmesh_usage_cost_units:t": 3.5,  # a tool that cost nothing has no cost series
    }  # fmt: skip
    assert ledger.query(period="day", by=["tool"])[0]["response_bytes"] == 157  # the ledger agrees
    ledger.drain()  # the shared form's outbox: drained rows stay counted, and only once
    ledger.add("a", "s", "t", True, 0.01, 1, 1, 0.0, now=start + 63)
    assert scraped()["toolmesh_usage_response_bytes:t"] == 158
    labelled = CollectorRegistry()
    UsageCounters(ledger, labelled, agent_label=True)
    by_agent = {
        (s.labels["tool"], s.labels["agent"]): s.value
        for m in labelled.collect()
        for s in m.samples
        if s.name == "toolmesh_usage_response_bytes_total"
    }
    assert by_agent == {("t", "a"): 108, ("u", "a"): 10, ("t", "b"): 50}


async def test_usage_records_the_callers_groups_and_namespace(tmp_path: Path) -> None:
    policy = {"default": "allow", "groups": {"team": {"members": ["guest"]}, "admins": {}},
              "namespaces": {"ns": {"tools": ["svc__*"]}}}  # fmt: skip
    keys, env = guarded_env(tmp_path, {"ops": ["admins"], "guest": ["guests"]}, policy)
    env["TOOLMESH_ADMIN_GROUPS"] = "admins"
    with (
        sample_server_http("svc", log_dir=tmp_path) as (url, _),
        run_router(tmp_path, {"svc": {"url": url}}, env=env) as router,
    ):
        guest = {"Authorization": f"Bearer {keys['guest']}"}
        ops = {"Authorization": f"Bearer {keys['ops']}"}
        async with aiohttp.ClientSession() as http:
            assert "result" in await modern_call(
                http, router.mcp_url, "svc__echo", {"text": "a"}, headers=guest
            )
            assert "result" in await modern_call(
                http, f"{router.base_url}/mcp/ns", "svc__echo", {"text": "b"}, headers=guest
            )
            assert "result" in await modern_call(
                http, f"{router.base_url}/mcp/ns", "svc__echo", {"text": "c"}, headers=ops
            )
            query = f"{router.base_url}/v1/usage?by=agent,group,namespace&period=day"
            deadline = time.monotonic() + 5
            while True:
                async with http.get(query, headers=ops) as response:
                    assert response.status == 200
                    rows = (await response.json())["rows"]
                if sum(r["calls"] for r in rows) >= 5 or time.monotonic() > deadline:
                    break  # guest's two calls count once per group (guests, team), ops's once
                await anyio.sleep(0.1)
    counted = {(r["agent"], r["group"], r["namespace"]): r["calls"] for r in rows}
    assert counted == {
        ("guest", "guests", ""): 1, ("guest", "team", ""): 1,
        ("guest", "guests", "ns"): 1, ("guest", "team", "ns"): 1,
        ("ops", "admins", "ns"): 1,
    }  # fmt: skip


async def test_calls_are_metered_per_agent_and_readable_by_admins_and_by_their_owner(tmp_path: Path) -> None:
    keys, env = guarded_env(tmp_path, {"ops": ["admins"], "guest": ["guests"]}, POLICY)
    env["TOOLMESH_ADMIN_GROUPS"] = "admins"
    with sample_server_http("svc", log_dir=tmp_path) as (url, _):
        servers = {
            "svc": {
                "url": url,
                "cost": {"per_call": 1, "per_kb": 2},
                "tools": {"add": {"cost": {"per_call": 5}}},
            }
        }
        with run_router(tmp_path, servers, env=env) as router:
            guest = {"Authorization": f"Bearer {keys['guest']}"}
            ops = {"Authorization": f"Bearer {keys['ops']}"}
            async with aiohttp.ClientSession() as http:
                sizes = []
                for n in range(3):
                    reply = await modern_call(
                        http, router.mcp_url, "svc__echo", {"text": "x" * n}, headers=guest
                    )
                    sizes.append(len(orjson.dumps(reply["result"])))
                reply = await legacy_call(http, router, "svc__echo", {"text": "legacy"}, headers=guest)
                sizes.append(len(orjson.dumps(reply["result"])))
                async with http.post(
                    f"{router.base_url}/v1/tools/svc__add/call", json={"a": 1, "b": 2}, headers=ops
                ) as response:
                    assert response.status == 200
                await modern_call(http, router.mcp_url, "svc__fail", {}, headers=ops)

                async def usage(headers: dict[str, str], query: str = "") -> tuple[int, Any]:
                    deadline = time.monotonic() + 5
                    while True:  # recorded just after each reply: give the last one a moment
                        async with http.get(
                            f"{router.base_url}/v1/usage{query}", headers=headers
                        ) as response:
                            body = await response.json()
                        calls = sum(row["calls"] for row in body.get("rows", []))
                        if response.status != 200 or calls >= 4 or time.monotonic() > deadline:
                            return response.status, body

                status, everything = await usage(ops)
                assert status == 200
                rows = {(r["agent"], r["tool"]): r for r in everything["rows"]}
                assert set(rows) == {("guest", "svc__echo"), ("ops", "svc__add"), ("ops", "svc__fail")}
                echo = rows[("guest", "svc__echo")]
                assert echo["calls"] == 4 and echo["errors"] == 0 and echo["server"] == "svc"
                assert echo["response_bytes"] == sum(sizes)
                assert echo["tokens"] == sum(-(-size // 4) for size in sizes)
                assert echo["request_bytes"] == sum(
                    len(orjson.dumps({"text": t})) for t in ["", "x", "xx", "legacy"]
                )
                assert echo["cost"] == pytest.approx(4 * 1 + 2 * sum(sizes) / 1024)
                assert rows[("ops", "svc__add")]["cost"] == 5  # the tool's own price

                status, own = await usage(guest)
                assert status == 200 and {r["agent"] for r in own["rows"]} == {"guest"}
                status, refused = await usage(guest, "?agent=ops")
                assert status == 403 and "only its own" in refused["error"]["message"]
                status, bad = await usage(ops, "?by=color")
                assert (
                    status == 400
                    and "`by` takes agent, group, namespace, server, tool" in bad["error"]["message"]
                )
                async with http.get(f"{router.base_url}/v1/usage") as response:
                    assert response.status == 401

            argv = [
                sys.executable,
                "-m",
                "router",
                "usage",
                "--router",
                router.base_url,
                "--token",
                keys["ops"],
            ]
            table = (await anyio.run_process(argv)).stdout.decode()
            assert table.splitlines()[0].split()[:4] == ["START", "AGENT", "SERVER", "TOOL"]
            assert any("guest" in line and "svc__echo" in line for line in table.splitlines())
            done = await anyio.run_process([*argv, "--csv", "--by", "agent"])
            by_agent = {row["agent"]: row for row in csv.DictReader(io.StringIO(done.stdout.decode()))}
            assert by_agent["guest"]["calls"] == "4" and by_agent["ops"]["calls"] == "2"

            async with aiohttp.ClientSession() as http, http.get(f"{router.base_url}/metrics") as response:
                text = await response.text()
            assert 'toolmesh_usage_cost_units_total{server="svc",tool="svc__add"} 5.0' in text
