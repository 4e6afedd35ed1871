"""Policy conditions (`when`, CEL) on real servers: calls allowed and denied by their arguments and
the caller's groups, in both eras, at `/mcp`, in a namespace and over `/v1/tools`, with the reason
in the audit record; lists keep the name-based view; a `when` that does not compile is refused
naming the rule and the position, and the last valid policy stays."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from router.errors import ConfigError
from router.guard.agent import Agent
from router.guard.conditions import CallFacts
from router.guard.guard import Guard
from tests.conftest import RouterHandle, run_router
from tests.guard_support import client_with, decides_the_documented_rules, denied, guarded_env
from tests.support.procs import sample_server_stdio_entry

pytestmark = pytest.mark.anyio

MODES = ["legacy", "2026-07-28"]
POLICY: dict[str, Any] = {
    "default": "deny",
    "groups": {
        "support": {
            "allow": [
                {"tools": ["alpha__echo"]},
                {"tools": ["alpha__add"], "when": "arguments.a <= 100 || 'finance' in agent.groups"},
            ],
            "deny": {"tools": ["alpha__echo"], "when": "arguments.text.startsWith('drop')"},
        },
        "finance": {},
    },
    "namespaces": {"desk": {"servers": ["alpha"], "groups": ["support"]}},
}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RouterHandle, dict[str, str], Path]]:
    tmp = tmp_path_factory.mktemp("conditions")
    keys, env = guarded_env(tmp, {"helper": ["support"], "banker": ["support", "finance"]}, POLICY)
    with run_router(tmp, {"alpha": sample_server_stdio_entry("alpha")}, env=env) as router:
        yield router, keys, tmp / "audit.jsonl"


@pytest.mark.parametrize("mode", MODES)
async def test_calls_are_allowed_and_denied_by_their_arguments_and_groups(
    guarded: tuple[RouterHandle, dict[str, str], Path], mode: str
) -> None:
    router, keys, _ = guarded
    async with client_with(router.mcp_url, keys["helper"], mode) as helper:
        listed = {t.name for t in (await helper.list_tools()).tools}
        assert listed == {"alpha__echo", "alpha__add"}, "a tool some call could use is listed"
        ok = await helper.call_tool("alpha__add", {"a": 5, "b": 1})
        assert ok.structured_content == {"sum": 6}
        assert "alpha__add" in await denied(helper.call_tool("alpha__add", {"a": 500, "b": 1}))
        await denied(helper.call_tool("alpha__add", {"b": 1}))  # cannot be evaluated: denied
        await denied(helper.call_tool("alpha__add", {"a": "lots", "b": 1}))  # type error: denied
        assert not (await helper.call_tool("alpha__echo", {"text": "hi"})).is_error
        await denied(helper.call_tool("alpha__echo", {"text": "drop table"}))
    async with client_with(router.mcp_url, keys["banker"], mode) as banker:
        ok = await banker.call_tool("alpha__add", {"a": 500, "b": 1})
        assert ok.structured_content == {"sum": 501}
    async with client_with(f"{router.mcp_url}/desk", keys["helper"], mode) as desk:
        assert (await desk.call_tool("alpha__add", {"a": 5, "b": 1})).structured_content == {"sum": 6}
        await denied(desk.call_tool("alpha__add", {"a": 500, "b": 1}))


async def test_the_audit_record_says_why_a_condition_denied(
    guarded: tuple[RouterHandle, dict[str, str], Path],
) -> None:
    router, keys, audit = guarded
    async with client_with(router.mcp_url, keys["helper"], "legacy") as helper:
        await denied(helper.call_tool("alpha__add", {"b": 7}))
        await denied(helper.call_tool("alpha__echo", {"text": "drop it"}))
    for _ in range(100):
        records = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
        reasons = [r.get("reason") for r in records if r["outcome"] == "denied"]
        if any(r and "groups.support.deny.0" in r for r in reasons):
            break
        await anyio.sleep(0.1)
    assert any(
        r and "groups.support.allow.1.when could not be evaluated" in r and "'a'" in r for r in reasons
    )
    assert any(r and "denied by groups.support.deny.0" in r for r in reasons)
    assert all(r["agent"] == "helper" for r in records if r["outcome"] == "denied")


async def test_plain_http_calls_are_held_to_the_same_conditions(
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


def test_a_condition_that_does_not_compile_is_refused_and_the_last_policy_stays() -> None:
    guard = Guard()
    guard.install(json.dumps(POLICY).encode(), "test")
    broken = json.loads(json.dumps(POLICY))
    broken["groups"]["support"]["allow"][1]["when"] = "arguments.a <= && true"
    with pytest.raises(ConfigError) as caught:
        guard.install(json.dumps(broken).encode(), "test")
    message = str(caught.value)
    assert "groups.support.allow.1.when" in message and "line 1, column" in message
    assert guard.policy is not None and guard.generation == 1 and guard.last_error == message
    view = guard.view(Agent("helper", frozenset({"support"})))
    facts = CallFacts(
        "helper", frozenset({"support"}), {}, "alpha", "add", "alpha__add", {}, {"a": 500}, "", "x", "mcp"
    )
    assert view.check_call(facts) is not None
    facts = CallFacts(
        "helper", frozenset({"support"}), {}, "alpha", "add", "alpha__add", {}, {"a": 5}, "", "x", "mcp"
    )
    assert view.check_call(facts) is None


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"tools": ["x"], "when": ""}, "groups.g.allow.0"),
        ({"prompts": ["x"], "when": "true"}, "groups.g.allow.0"),
        ({"tools": ["x"], "wen": "true"}, "groups.g.allow.0.wen"),
    ],
)
def test_bad_rules_are_refused_naming_the_rule(rule: dict[str, Any], field: str) -> None:
    guard = Guard()
    with pytest.raises(ConfigError) as caught:
        guard.install(json.dumps({"groups": {"g": {"allow": [rule]}}}).encode(), "test")
    assert f"'{field}'" in str(caught.value)
    assert guard.policy is None


def test_the_three_rules_of_the_security_docs_decide_as_they_say() -> None:
    text = (Path(__file__).parent.parent / "docs" / "security.md").read_text()
    start = text.index("```json", text.index("**Conditions (`when`, CEL).**")) + len("```json")
    guard = Guard()
    guard.install(text[start : text.index("```", start)].encode(), "docs")
    decides_the_documented_rules(guard)


EXPRESSIONS = [
    "arguments.tenant == agent.claims.tenant",
    "arguments.a <= 100 || 'finance' in agent.groups",
    "has(arguments.sql) && arguments.sql.startsWith('select') && size(arguments.sql) < 40",
    "has(arguments.missing)",
    "arguments.missing == 1",  # no such key: cannot be evaluated
    "arguments.a / arguments.zero > 1",  # division by zero
    "arguments.items.exists(x, x > 2) && arguments.items.all(x, x > 0)",
    "arguments.items.map(x, x * 2).filter(y, y > 4).size() == 1",
    "arguments.items.exists_one(arguments, arguments == 3)",  # the macro's variable shadows
    "[1, 2].exists(x, arguments.items.exists(y, y == x + 1))",  # nested, the outer variable read
    "type(arguments.a) == int && type(arguments.sql) == string",
    "int(arguments.n) + 1 == 8 && double(arguments.a) > 1.5",
    "tool.name.matches('^q') && tool.server == 'db' && tool.annotations.readOnlyHint",
    "namespace == '' ? request.era == 'modern' : false",
    "time.getHours('Europe/Berlin') >= 0 && time < timestamp('2100-01-01T00:00:00Z')",
    "{'k': arguments.a}.k == 2 && arguments.nested.deep.value == 'v'",
    ".arguments.a == 2",  # the root scope's variable
    "arguments.a + 'x'",  # a type error
    "arguments.sql",  # not a bool
    "base != null || facts != null",  # names that are no variable: as cel-python, an error
    "arguments.items.exists(outer, outer > 2)",  # any name may be a macro's variable
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_a_condition_decides_as_cel_python_s_own_evaluation(expression: str) -> None:
    """Conditions run cel-python's compiled code on the call's variables, converted as they are
    read (guard/conditions.py `Variables`), instead of its own evaluate: both must agree, for
    every kind of expression (macros, nested and shadowing variables, types, errors)."""
    from router.guard.conditions import Compiler, Variables

    facts = CallFacts(
        "bot", frozenset({"support", "finance"}), {"tenant": "acme"}, "db", "query", "db__query",
        {"readOnlyHint": True},
        {"tenant": "acme", "sql": "select 1", "a": 2, "zero": 0, "items": [1, 2, 3], "n": "7",
         "nested": {"deep": {"value": "v"}}},
        "", "modern", "mcp",
    )  # fmt: skip
    fast = Compiler("test").compile("allow", expression)
    slow = Compiler("test").compile("allow", expression)
    slow._code = None  # cel-python's own evaluate, every variable converted up front
    expected = slow.holds(Variables(facts))
    assert fast.holds(Variables(facts)) == expected
    variables = Variables(facts)  # one call's variables serve several rules
    assert fast.holds(variables) == expected and fast.holds(variables) == expected
