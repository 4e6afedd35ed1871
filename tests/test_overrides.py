"""Tool overrides round-trip: what the agent sees and calls, what the backend gets.

alpha's `add` is shown in the `support` namespace as `plus` (title, description, read-only
annotation, `a` hidden and fixed to 10, `b` defaulting to 1); alpha's `echo` is `say` everywhere;
in `data` two of beta's tools are given one name, so both are withheld and the collision reported.
The backend (the SDK sample server) answers under its own names with the completed arguments.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from router.catalog.overrides import Applied, Override
from router.catalog.wellformed import wellformed
from router.errors import ConfigError
from router.guard.guard import Guard
from tests.conftest import RouterHandle, run_router
from tests.guard_support import client_with, make_keys, write_policy
from tests.support.procs import sample_server_http, sample_server_stdio_entry
from tests.support.waits import eventually
from tests.test_guard_access import error_of, same_as_nonexistent
from tests.test_guard_observe import audit_records

pytestmark = pytest.mark.anyio

MODES = ["legacy", "2026-07-28"]
POLICY: dict[str, Any] = {
    "default": "deny",
    "groups": {"ops": {"allow": {"servers": ["*"]}}},
    "namespaces": {"support": {"servers": ["alpha"]}, "data": {"servers": ["beta"]}},
    "overrides": [
        {"tool": "alpha__add", "namespaces": ["support"], "name": "plus", "title": "Plus ten",
         "description": "Adds b to ten.", "annotations": {"readOnlyHint": True},
         "hidden": {"a": 10}, "defaults": {"b": 1}},
        {"tool": "alpha__echo", "name": "say"},
        {"tool": "beta__slow", "namespaces": ["data"], "name": "beta__echo"},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RouterHandle, dict[str, str], Any]]:
    tmp = tmp_path_factory.mktemp("overrides")
    keys = make_keys(tmp / "keys.json", {"ops": ["ops"]})
    write_policy(tmp / "policy.json", POLICY)
    env = {
        "TOOLMESH_AUTH_ANONYMOUS": "never",
        "TOOLMESH_AUTH_KEYS_FILE": str(tmp / "keys.json"),
        "TOOLMESH_POLICY_FILE": str(tmp / "policy.json"),
        "TOOLMESH_AUDIT_SINK": "file",
        "TOOLMESH_AUDIT_FILE": str(tmp / "audit.jsonl"),
        "TOOLMESH_ADMIN_GROUPS": "ops",
    }
    with sample_server_http("beta", log_dir=tmp) as (beta_url, _):
        servers = {"alpha": sample_server_stdio_entry("alpha"), "beta": {"url": beta_url}}
        with run_router(tmp, servers, env=env) as router:
            yield router, keys, tmp / "audit.jsonl"


def text(result: Any) -> str:
    return str(result.content[0].text)


@pytest.mark.parametrize("mode", MODES)
async def test_a_renamed_tool_with_fixed_arguments_round_trips(
    routed: tuple[RouterHandle, dict[str, str], Any], mode: str
) -> None:
    router, keys, _ = routed
    async with client_with(f"{router.mcp_url}/support", keys["ops"], mode) as ops:
        tools = {tool.name: tool for tool in (await ops.list_tools()).tools}
        assert "alpha__add" not in tools and "alpha__echo" not in tools
        plus = tools["plus"]
        assert plus.title == "Plus ten" and plus.description == "Adds b to ten."
        assert plus.annotations is not None and plus.annotations.read_only_hint is True
        schema = plus.input_schema
        assert "a" not in schema["properties"] and schema["properties"]["b"]["default"] == 1
        assert not {"a", "b"} & set(schema.get("required", []))
        assert text(await ops.call_tool("plus", {})) == "11"  # a fixed to 10, b defaulted to 1
        assert text(await ops.call_tool("plus", {"b": 5})) == "15"
        code, message = await error_of(ops.call_tool("plus", {"a": 1, "b": 2}))
        assert code == -32602 and "'a' is fixed by the router" in message
        await same_as_nonexistent(
            lambda name: ops.call_tool(name, {"a": 1, "b": 2}), "alpha__add", "alpha__nope"
        )
        assert text(await ops.call_tool("say", {"text": "hi"})) == "alpha:hi"  # the global rename
    async with client_with(router.mcp_url, keys["ops"], mode) as ops:  # support's override stays there
        tools = {tool.name: tool for tool in (await ops.list_tools()).tools}
        assert "plus" not in tools and "alpha__add" in tools and "say" in tools
        assert "a" in tools["alpha__add"].input_schema["properties"]
        assert text(await ops.call_tool("alpha__add", {"a": 1, "b": 2})) == "3"
        await same_as_nonexistent(
            lambda name: ops.call_tool(name, {"text": "x"}), "alpha__echo", "alpha__nope"
        )


async def test_names_two_tools_would_share_are_withheld_and_reported(
    routed: tuple[RouterHandle, dict[str, str], Any],
) -> None:
    router, keys, _ = routed
    async with client_with(f"{router.mcp_url}/data", keys["ops"], "legacy") as ops:
        tools = {tool.name for tool in (await ops.list_tools()).tools}
        assert "beta__echo" not in tools and "beta__slow" not in tools and "beta__link" in tools
        await same_as_nonexistent(lambda name: ops.call_tool(name, {"text": "x"}), "beta__echo", "beta__nope")
    auth = {"Authorization": f"Bearer {keys['ops']}"}
    async with aiohttp.ClientSession(headers=auth) as http, http.get(f"{router.base_url}/admin/") as response:
        admin = await response.json()
    overrides = admin["policy"]["overrides"]
    assert {"name": "beta__echo", "tools": ["beta__echo", "beta__slow"], "namespace": "data"} in (
        overrides["collisions"]
    )


async def test_audit_and_metrics_name_the_tool_as_the_agent_called_it(
    routed: tuple[RouterHandle, dict[str, str], Any],
) -> None:
    router, keys, audit = routed
    async with client_with(f"{router.mcp_url}/support", keys["ops"], "legacy") as ops:
        await ops.call_tool("plus", {"b": 2})  # these arguments only here: the record is this call's

    sent = hashlib.sha256(b'{"b":2}').hexdigest()  # what the agent sent, not what alpha got

    def this_call() -> list[dict[str, Any]]:
        return [r for r in audit_records(audit, 1) if r["arguments_sha256"] == sent]

    await eventually(this_call)
    [record] = this_call()
    assert record["target"] == "plus" and record["server"] == "alpha" and record["outcome"] == "ok"
    async with aiohttp.ClientSession() as http, http.get(f"{router.base_url}/metrics") as response:
        metrics = await response.text()
    assert 'server="alpha",tool="plus"' in metrics


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"tool": "x"}, "needs at least one of"),
        ({"tool": "x", "name": "has space"}, "not a valid tool name"),
        ({"tool": "x", "hidden": {"a": 1}, "defaults": {"a": 2}}, "cannot be both"),
    ],
)
def test_an_override_that_cannot_work_is_refused(override: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Override.model_validate(override)
    guard = Guard()
    with pytest.raises(ConfigError, match=problem):
        guard.install(json.dumps({"overrides": [override]}).encode(), "test")


async def test_sending_a_hidden_argument_over_plain_http_is_a_400(
    routed: tuple[RouterHandle, dict[str, str], Any],
) -> None:
    router, keys, _ = routed
    base = f"{router.base_url}/v1/namespaces/support/tools"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {keys['ops']}"}) as http:
        async with http.post(f"{base}/plus/call", json={"b": 3}) as response:
            assert response.status == 200 and (await response.json())["content"][0]["text"] == "13"
        async with http.post(f"{base}/plus/call", json={"a": 3}) as response:
            assert response.status == 400
            assert "fixed by the router" in (await response.json())["error"]["message"]


def test_an_override_on_a_tool_with_odd_shapes_from_its_backend_still_presents_it() -> None:
    # a backend's list reaches an override well-formed (router/catalog/wellformed.py): annotations
    # as a string or properties as a list are dropped there, and the override applies to the rest
    applied = Applied.merge(
        [Override(tool="t", annotations={"readOnlyHint": True}, hidden={"token": "x"}, defaults={"limit": 5})]
    )
    assert applied is not None
    odd = {"name": "t", "annotations": "fast", "inputSchema": {"type": "object", "properties": [1, 2]}}
    (listed,) = wellformed("s", "tools", [odd]).items
    shown = applied.present(listed)
    assert shown["annotations"] == {"readOnlyHint": True}
    assert shown["inputSchema"]["properties"] == {}
    normal = {
        "name": "t",
        "inputSchema": {"properties": {"token": {}, "limit": {}, "q": {}}, "required": ["q", "token"]},
    }
    schema = applied.present(normal)["inputSchema"]
    assert schema["properties"] == {"limit": {"default": 5}, "q": {}} and schema["required"] == ["q"]
