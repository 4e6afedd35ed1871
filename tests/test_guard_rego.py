"""A policy's Rego decision (regorus, in the router's worker processes) on real servers: calls
allowed and denied by their arguments and the caller's groups, in both eras, in a namespace and
over `/v1/tools`, with the reason in the audit record; a decision that fails or runs over its
budget denies and is counted (a slow one within its budget, while other calls go on); a module
that does not compile is refused naming the field and the engine's message, and the last valid
policy stays; the Rego versions of the three rules of docs/security.md decide as the CEL ones."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from mcp.shared.exceptions import MCPError

from router.errors import ConfigError
from router.guard.agent import Agent
from router.guard.conditions import CallFacts
from router.guard.guard import Guard
from router.guard.rego import RegoWorkers
from router.up.processes import children
from tests.conftest import RouterHandle, run_router
from tests.guard_support import client_with, decides_the_documented_rules, denied, guarded_env
from tests.support.procs import sample_server_stdio_entry
from tests.support.waits import eventually

pytestmark = pytest.mark.anyio

MODES = ["legacy", "2026-07-28"]
MODULE = """package toolmesh

import rego.v1

default allow := false

allow if {
	input.tool.name == "echo"
	not startswith(input.arguments.text, "drop")
}

# Fails when b is 0 (division by zero): such a call must be denied, never allowed.
allow if {
	input.tool.name == "add"
	input.arguments.a <= 100
	10 / input.arguments.b != 0
}

allow if {
	input.tool.name == "add"
	"finance" in input.agent.groups
}
"""
POLICY: dict[str, Any] = {
    "default": "deny",
    "groups": {"support": {"allow": {"tools": ["alpha__echo", "alpha__add"]}}, "finance": {}},
    "namespaces": {"desk": {"servers": ["alpha"], "groups": ["support"]}},
    "rego": {"module": MODULE, "query": "data.toolmesh.allow"},
}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RouterHandle, dict[str, str], Path]]:
    tmp = tmp_path_factory.mktemp("rego")
    keys, env = guarded_env(tmp, {"helper": ["support"], "banker": ["support", "finance"]}, POLICY)
    with run_router(tmp, {"alpha": sample_server_stdio_entry("alpha")}, env=env) as router:
        yield router, keys, tmp / "audit.jsonl"


@pytest.mark.parametrize("mode", MODES)
async def test_calls_are_allowed_and_denied_by_the_rego_decision(
    guarded: tuple[RouterHandle, dict[str, str], Path], mode: str
) -> None:
    router, keys, _ = guarded
    async with client_with(router.mcp_url, keys["helper"], mode) as helper:
        listed = {t.name for t in (await helper.list_tools()).tools}
        assert {"alpha__echo", "alpha__add"} <= listed, "lists keep the name-based view"
        assert (await helper.call_tool("alpha__add", {"a": 5, "b": 1})).structured_content == {"sum": 6}
        assert "alpha__add" in await denied(helper.call_tool("alpha__add", {"a": 500, "b": 1}))
        await denied(helper.call_tool("alpha__add", {"b": 1}))  # undefined: denied
        assert not (await helper.call_tool("alpha__echo", {"text": "hi"})).is_error
        await denied(helper.call_tool("alpha__echo", {"text": "drop table"}))
        await denied(helper.call_tool("alpha__add", {"a": 1, "b": 0}))  # evaluation error: denied
    async with client_with(router.mcp_url, keys["banker"], mode) as banker:
        assert (await banker.call_tool("alpha__add", {"a": 500, "b": 1})).structured_content == {"sum": 501}
    async with client_with(f"{router.mcp_url}/desk", keys["helper"], mode) as desk:
        assert (await desk.call_tool("alpha__add", {"a": 5, "b": 1})).structured_content == {"sum": 6}
        await denied(desk.call_tool("alpha__add", {"a": 500, "b": 1}))


async def test_the_audit_record_and_the_metrics_say_why_rego_denied(
    guarded: tuple[RouterHandle, dict[str, str], Path],
) -> None:
    router, keys, audit = guarded
    async with client_with(router.mcp_url, keys["helper"], "legacy") as helper:
        await denied(helper.call_tool("alpha__add", {"a": 900, "b": 7}))
        await denied(helper.call_tool("alpha__add", {"a": 1, "b": 0}))
    reasons: list[Any] = []
    for _ in range(100):
        records = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
        reasons = [r.get("reason") for r in records if r["outcome"] == "denied"]
        if any(r and "could not be evaluated" in r for r in reasons):
            break
        await anyio.sleep(0.1)
    assert any(r and "denied by rego decision data.toolmesh.allow (false)" in r for r in reasons)
    assert any(r and "could not be evaluated" in r and "divide by zero" in r for r in reasons)
    async with aiohttp.ClientSession() as http, http.get(f"{router.base_url}/metrics") as response:
        metrics = await response.text()
    assert 'toolmesh_policy_decision_failures_total{reason="error"}' in metrics


async def test_plain_http_calls_are_held_to_the_same_rego_decision(
    guarded: tuple[RouterHandle, dict[str, str], Path],
) -> None:
    router, keys, _ = guarded
    tools = f"{router.base_url}/v1/tools"
    async with aiohttp.ClientSession() as http:
        for key, a, status in [("helper", 5, 200), ("helper", 500, 403), ("banker", 500, 200)]:
            headers = {"Authorization": f"Bearer {keys[key]}", "content-type": "application/json"}
            body = json.dumps({"a": a, "b": 1}).encode()
            async with http.post(f"{tools}/alpha__add/call", data=body, headers=headers) as response:
                assert response.status == status, (key, a, await response.text())


def facts(arguments: Any, groups: frozenset[str] = frozenset({"support"})) -> CallFacts:
    return CallFacts("helper", groups, {}, "alpha", "add", "alpha__add", {}, arguments, "", "x", "mcp")


def test_a_module_that_does_not_compile_is_refused_and_the_last_policy_stays() -> None:
    guard = Guard()
    guard.install(json.dumps(POLICY).encode(), "test")
    broken = {**POLICY, "rego": {"module": MODULE.replace('"echo"\n', '"echo" {{\n', 1)}}
    with pytest.raises(ConfigError) as caught:
        guard.install(json.dumps(broken).encode(), "test")
    message = str(caught.value)
    assert "field 'rego.module'" in message and "not a valid Rego module" in message
    assert "rego.module:" in message, "the engine's message, with its position"
    assert guard.policy is not None and guard.generation == 1 and guard.last_error == message
    view = guard.view(Agent("helper", frozenset({"support"})))
    assert view.check_call(facts({"a": 500, "b": 1})) is not None
    assert view.check_call(facts({"a": 5, "b": 1})) is None


@pytest.mark.parametrize(
    ("rego", "field"),
    [
        ({"module": "package x\nallow := true\n", "query": "data.x.nothing"}, "rego.query"),
        ({"module": "package x\nallow := true\n", "query": "allow"}, "rego.query"),
        ({"module": "/nonexistent/policy.rego"}, "rego.module"),
        ({"module": "package x\n", "qurey": "data.x.allow"}, "rego.qurey"),
    ],
)
def test_bad_rego_settings_are_refused_naming_the_field(rego: dict[str, Any], field: str) -> None:
    guard = Guard()
    with pytest.raises(ConfigError) as caught:
        guard.install(json.dumps({"rego": rego}).encode(), "test")
    assert f"'{field}'" in str(caught.value)
    assert guard.policy is None


def test_a_decision_over_its_budget_denies_and_is_counted() -> None:
    failures: list[str] = []
    slow = (
        "package x\nimport rego.v1\nallow if count([y | some y in numbers.range(1, input.arguments.n)]) > 0\n"
    )
    guard = Guard(on_decision_failure=failures.append)
    guard.install(
        json.dumps(
            {"default": "allow", "rego": {"module": slow, "query": "data.x.allow", "budget_ms": 50}}
        ).encode(),
        "test",
    )
    view = guard.view(Agent("helper", frozenset()))
    assert view.check_call(facts({"n": 10})) is None
    reason = view.check_call(facts({"n": 1_000_000}))  # ~0.5 s of work for the engine
    assert reason is not None and "over its budget of 50 ms" in reason
    assert failures == ["timeout"]
    assert view.check_call(facts({"n": 1_000_000})) is not None, "a failed decision is not cached"
    assert failures == ["timeout", "timeout"]


SLOW = "package x\nimport rego.v1\nallow if count([y | some y in numbers.range(1, input.arguments.a)]) > 0\n"


def rego_workers(router: RouterHandle) -> int:
    """The router's live Rego worker processes."""
    live = 0
    for pid in children(router.process.pid):
        with contextlib.suppress(OSError):  # gone meanwhile
            live += b"rego_worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return live


async def test_a_slow_decision_is_denied_within_its_budget_while_other_calls_go_on(tmp_path: Path) -> None:
    """The engine cannot be interrupted and keeps the interpreter lock while it evaluates, so the
    router evaluates in worker processes: one still evaluating when the budget ends is killed and
    the call denied then, not when the engine would have finished (a minute or more for the slow
    input here); the event loop serves other calls meanwhile, and evaluations that keep every
    worker busy are denied at their budget too, never piling up processes."""
    policy = {"default": "allow", "rego": {"module": SLOW, "query": "data.x.allow", "budget_ms": 300}}
    keys, env = guarded_env(tmp_path, {"helper": ["support"]}, policy)
    with run_router(tmp_path, {"alpha": sample_server_stdio_entry("alpha")}, env=env) as router:
        async with client_with(router.mcp_url, keys["helper"], "legacy") as helper:
            with anyio.fail_after(30):  # the policy and its workers are in place
                while True:
                    try:
                        await helper.call_tool("alpha__add", {"a": 10, "b": 1})
                        break
                    except MCPError:
                        await anyio.sleep(0.2)
            quick: list[float] = []
            slow_took: list[float] = []

            async def slow() -> None:
                started = time.monotonic()
                message = await denied(helper.call_tool("alpha__add", {"a": 50_000_000, "b": 1}))
                slow_took.append(time.monotonic() - started)
                assert "alpha__add" in message

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow)
                await anyio.sleep(0.05)
                started = time.monotonic()
                result = await helper.call_tool("alpha__add", {"a": 10, "b": 2})  # the other worker
                quick.append(time.monotonic() - started)
                assert result.structured_content == {"sum": 12}
            # Alone the slow input keeps the engine busy for well over 10 s (0.5 s per million).
            assert slow_took[0] < 5, slow_took
            assert quick[0] < 5, "the event loop was held by the slow evaluation"
            # More slow calls than workers: each is denied at its budget (running, or waiting for
            # a worker), and no more processes than the pool's are left.
            took: list[float] = []

            async def one() -> None:
                started = time.monotonic()
                await denied(helper.call_tool("alpha__add", {"a": 50_000_000, "b": 1}))
                took.append(time.monotonic() - started)

            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(one)
            assert len(took) == 6 and max(took) < 8, took
            assert rego_workers(router) <= 2
            with anyio.fail_after(30):  # replacements start in the background, then calls pass again
                while True:
                    try:
                        await helper.call_tool("alpha__add", {"a": 10, "b": 3})
                        break
                    except MCPError:
                        await anyio.sleep(0.2)
            assert rego_workers(router) <= 2
        audit = tmp_path / "audit.jsonl"
        await eventually(
            lambda: audit.exists() and "ran over its budget of 300 ms and was stopped" in audit.read_text(),
            what="the timeout in the audit record",
        )
        async with aiohttp.ClientSession() as http, http.get(f"{router.base_url}/metrics") as response:
            metrics = await response.text()
        assert 'toolmesh_policy_decision_failures_total{reason="timeout"}' in metrics


def _worker_pids() -> set[int]:
    """This process's Rego worker processes (a `RegoWorkers` entered here)."""
    pids = set()
    for pid in children(os.getpid()):
        with contextlib.suppress(OSError):
            if b"rego_worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.add(pid)
    return pids


@pytest.mark.parametrize("grace", [120.0, 0.2], ids=["answers-in-its-grace", "runaway"])
async def test_a_late_worker_is_taken_back_and_a_runaway_one_replaced(grace: float) -> None:
    """Either way the call is denied at its budget. A worker that answers within its grace goes
    back to the pool (a starved host is not a runaway: no restart), one that does not is killed
    and another started."""
    policy = {"default": "allow", "rego": {"module": SLOW, "query": "data.x.allow", "budget_ms": 50}}
    async with RegoWorkers(size=1, grace=grace) as workers:
        guard = Guard(rego_workers=workers)
        guard.install(json.dumps(policy).encode(), "test")
        view = guard.view(Agent("helper", frozenset()))

        inputs = itertools.count(10)

        async def allowed_again() -> None:
            """Until a quick evaluation passes (a new input each time: cached ones never wait)."""
            with anyio.fail_after(150):
                while await view.check_call_within_budget(facts({"a": next(inputs)})) is not None:
                    await anyio.sleep(0.1)

        await allowed_again()
        before = _worker_pids()
        assert len(before) == 1
        started = time.monotonic()
        reason = await view.check_call_within_budget(facts({"a": 3_000_000}))  # seconds of work
        assert reason is not None and "ran over its budget of 50 ms" in reason
        assert time.monotonic() - started < 3
        await allowed_again()
        after = _worker_pids()
        if grace > 1:
            assert after == before, "the worker that answered late was replaced"
        else:
            assert len(after) == 1 and after.isdisjoint(before), "the runaway worker was kept"


def test_decisions_are_cached_only_when_the_module_cannot_see_the_clock() -> None:
    guard = Guard()
    guard.install(json.dumps(POLICY).encode(), "test")
    assert guard.policy is not None and guard.policy.rego is not None and guard.policy.rego.cacheable
    clocked = {**POLICY, "rego": {"module": "package x\nimport rego.v1\nallow if input.time != \"\"\n",
                                  "query": "data.x.allow"}}  # fmt: skip
    guard.install(json.dumps(clocked).encode(), "test")
    assert guard.policy is not None and guard.policy.rego is not None and not guard.policy.rego.cacheable
    assert guard.view(Agent("helper", frozenset({"support"}))).check_call(facts({"a": 1, "b": 1})) is None


def _doc_block(text: str, fence: str, after: str) -> str:
    start = text.index(fence, text.index(after)) + len(fence)
    return text[start : text.index("```", start)]


def test_the_rego_versions_of_the_three_rules_of_the_security_docs_decide_as_they_say() -> None:
    text = (Path(__file__).parent.parent / "docs" / "security.md").read_text()
    document = json.loads(_doc_block(text, "```json", "**A Rego decision"))
    document["rego"]["module"] = _doc_block(text, "```rego", "**A Rego decision")
    guard = Guard()
    guard.install(json.dumps(document).encode(), "docs")
    decides_the_documented_rules(guard)
