"""Capabilities: one exposed tool, three provider servers (SDK sample servers over HTTP), failover.

`shout` is backed by `p1__echo`, `p2__echo` and `p3__echo` in priority order; its `words`
argument is each provider's `text`. p2's echo is declared safe to repeat and times out after 1 s.
Under steady concurrent load p1 is killed, then p2 hung (SIGSTOP): only calls in flight on p1
when it died may fail; calls on the hung p2 are abandoned after its timeout and go to p3, and
once p2's breaker is open it is skipped (calls stop waiting for it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from router.catalog.capabilities import CapabilitySpec, ProviderSpec, suggest
from router.catalog.index import Target
from router.errors import BackendUnreachable
from router.relay.capabilities import PROVIDER_META, Capabilities
from tests.conftest import RouterHandle, run_router
from tests.guard_support import make_keys, write_policy
from tests.support.mcpcall import call_tool
from tests.support.procs import sample_server_http

pytestmark = pytest.mark.anyio

SCHEMA = {"type": "object", "properties": {"words": {"type": "string"}}, "required": ["words"]}
POLICY: dict[str, Any] = {
    "default": "allow",
    "capabilities": {
        "shout": {
            "description": "Say it back, from whichever server can.",
            "strategy": "priority",
            "inputSchema": SCHEMA,
            "providers": [
                {"tool": f"p{n}__echo", "rename": {"words": "text"}, "drop": ["volume"]} for n in (1, 2, 3)
            ],
        }
    },
}


@contextlib.contextmanager
def three_providers(tmp: Path) -> Iterator[tuple[RouterHandle, list[Any], str]]:
    with contextlib.ExitStack() as stack:
        running = [stack.enter_context(sample_server_http(f"p{n}", log_dir=tmp)) for n in (1, 2, 3)]
        servers = {
            "p1": {"url": running[0][0]},
            "p2": {"url": running[1][0], "tools": {"echo": {"timeout": 1, "retry": "safe"}}},
            "p3": {"url": running[2][0]},
        }
        write_policy(tmp / "policy.json", POLICY)
        keys = make_keys(tmp / "keys.json", {"ops": ["admins"]})
        env = {
            "TOOLMESH_AUTH_KEYS_FILE": str(tmp / "keys.json"),
            "TOOLMESH_AUTH_ANONYMOUS": "always",
            "TOOLMESH_ADMIN_GROUPS": "admins",
            "TOOLMESH_POLICY_FILE": str(tmp / "policy.json"),
            "TOOLMESH_BREAKER_FAILURES": "2",
            "TOOLMESH_BREAKER_RESET": "60",
        }
        router = stack.enter_context(run_router(tmp, servers, env=env))
        yield router, [process for _, process in running], keys["ops"]


def toolmesh(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "router", *argv], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def call(http: aiohttp.ClientSession, url: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One stateless 2026-07-28 tools/call of `shout`; the JSON-RPC reply."""
    return await call_tool(http, url, "shout", arguments)


async def test_a_capability_is_listed_and_served_by_its_first_provider_with_mapped_arguments(
    tmp_path: Path,
) -> None:
    with three_providers(tmp_path) as (router, _, token):
        async with aiohttp.ClientSession() as http:
            reply = await call(http, router.mcp_url, {"words": "hi", "volume": 11})
            result = reply["result"]
            assert result["content"][0]["text"] == "p1:hi"  # `words` became `text`, `volume` dropped
            assert result["_meta"]["toolmesh/provider"] == {
                "tool": "p1__echo",
                "server": "p1",
                "reason": "priority 1",
            }
            async with http.get(f"{router.base_url}/v1/tools") as response:
                tools = {tool["name"]: tool for tool in (await response.json())["tools"]}
            assert tools["shout"]["inputSchema"] == SCHEMA
            assert tools["shout"]["description"] == "Say it back, from whichever server can."
        status = toolmesh("status", "--router", router.base_url, "--token", token)
        assert (
            "capability: shout [priority: p1__echo, p2__echo, p3__echo] served by p1__echo (priority 1)"
            in status
        )
        suggested = json.loads(toolmesh("capabilities", "suggest", "--router", router.base_url, "--json"))
        assert {"capability": "echo", "providers": ["p1__echo", "p2__echo", "p3__echo"]} in suggested


async def test_failover_under_load_kill_one_then_hang_another(tmp_path: Path) -> None:
    with three_providers(tmp_path) as (router, processes, _):
        p1, p2, _ = processes
        outcomes: list[tuple[float, float, str]] = []  # (started, seconds, provider or error)
        stop = anyio.Event()

        async def worker(http: aiohttp.ClientSession) -> None:
            n = 0
            while not stop.is_set():
                started = time.monotonic()
                reply = await call(http, router.mcp_url, {"words": str(n)})
                took = time.monotonic() - started
                if "result" in reply and not reply["result"].get("isError"):
                    outcomes.append((started, took, reply["result"]["_meta"]["toolmesh/provider"]["tool"]))
                else:
                    outcomes.append((started, took, f"error: {reply.get('error') or reply['result']}"))
                n += 1

        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http, anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(worker, http)
            await anyio.sleep(1.0)
            killed_at = time.monotonic()
            os.kill(p1.pid, signal.SIGKILL)  # killed: its calls in flight may fail, nothing else may
            await anyio.sleep(1.5)
            hung_at = time.monotonic()
            os.kill(p2.pid, signal.SIGSTOP)
            try:
                await anyio.sleep(4.0)
            finally:
                stop.set()
            os.kill(p2.pid, signal.SIGCONT)
    before = [o for o in outcomes if o[0] + o[1] < killed_at]  # ended before the kill
    assert before and all(provider == "p1__echo" for _, _, provider in before)
    failures = [o for o in outcomes if o[2].startswith("error")]
    # Only calls in flight on p1 when it died: sent to p1 before the router could see it die (a
    # request written on a kept-alive connection in the instant after the kill cannot be told
    # from one the server had read, so "in flight" ends 0.1 s after the kill), all about p1.
    late = [(round(started - killed_at, 4), provider) for started, _, provider in failures]
    assert all(started < killed_at + 0.1 and "'p1'" in provider for started, _, provider in failures), late
    between = [o for o in outcomes if killed_at + 0.1 < o[0] < hung_at]
    served = [provider for _, _, provider in between]
    assert served and "p1__echo" not in served and served.count("p2__echo") > len(served) / 2, served
    after_hang = [o for o in outcomes if o[0] > hung_at]
    assert after_hang and all(provider == "p3__echo" for _, _, provider in after_hang), after_hang[:5]
    # In flight on p2 when it hung (or sent just after): abandoned after p2's 1 s timeout, then p3.
    abandoned = [o for o in outcomes if o[0] > killed_at + 0.1 and o[1] >= 0.9]
    assert all(provider == "p3__echo" for _, _, provider in abandoned), abandoned
    assert abandoned, "some calls should have waited for p2's timeout"
    last_wait = max(started for started, took, _ in abandoned)
    skipped = [o for o in after_hang if o[0] > max(last_wait, hung_at) + 0.1]
    assert len(skipped) > 20 and max(took for _, took, _ in skipped) < 0.5, (
        "p2 is skipped while its breaker is open"
    )
    print(f"failover: {len(outcomes)} calls, {len(failures)} failed (in flight on p1), "
          f"{len(abandoned)} waited for p2's timeout, {len(skipped)} skipped p2")  # fmt: skip


def test_provider_arguments_are_renamed_set_and_dropped() -> None:
    provider = ProviderSpec(tool="x__search", rename={"query": "q"}, constants={"count": 5}, drop=["lang"])
    assert provider.arguments({"query": "mcp", "lang": "en", "page": 2}) == {
        "q": "mcp",
        "page": 2,
        "count": 5,
    }
    assert ProviderSpec(tool="y").arguments(None) == {}


def test_suggest_finds_look_alike_tools_on_different_servers_only() -> None:
    tools = [
        {"name": "brave__search", "description": "Search the web for pages."},
        {"name": "exa__web_search", "description": "Search the web for pages and news."},
        {"name": "exa__answer", "description": "Answer a question."},
        {"name": "pg__query", "description": "Run a SQL query on the database."},
        {"name": "mysql__query", "description": "Run SQL on the database."},
        {"name": "pg__explain", "description": "Explain a SQL query on the database."},
    ]
    groups = suggest(tools)
    assert {"capability": "search", "providers": ["brave__search", "exa__web_search"]} in groups
    assert {"capability": "query", "providers": ["pg__query", "mysql__query"]} in groups
    assert all(len({name.split("__")[0] for name in g["providers"]}) == len(g["providers"]) for g in groups)


@pytest.mark.parametrize(
    ("strategy", "expected", "reason"),
    [
        ("priority", ["a__t", "b__t", "c__t"], "priority 1"),
        ("fastest", ["c__t", "b__t", "a__t"], "fastest: latency EWMA 1.00 ms"),
        ("cheapest", ["b__t", "c__t", "a__t"], "cheapest: cost 0.5"),
        ("healthiest", ["b__t", "c__t", "a__t"], "healthiest: failure EWMA 0.00"),
    ],
)
def test_each_strategy_orders_the_providers_and_skips_open_breakers(
    strategy: str, expected: list[str], reason: str
) -> None:
    spec = CapabilitySpec.model_validate(
        {
            "strategy": strategy,
            "providers": [
                {"tool": "a__t", "cost": 3},
                {"tool": "b__t", "cost": 0.5},
                {"tool": "c__t", "cost": 1},
                {"tool": "d__t"},
            ],
        }
    )
    capabilities = Capabilities(lambda server: server == "d", lambda server, tool: False)
    for tool, seconds in (("a__t", 0.009), ("b__t", 0.004), ("c__t", 0.001)):
        capabilities._stats(tool).succeeded(seconds)
    capabilities._stats("a__t").failed("down")
    capabilities._stats("c__t").failed("down")
    capabilities._stats("c__t").succeeded(0.001)  # c's failure fades, a's is recent
    usable = [(p, Target(p.tool.split("__")[0], "t")) for p in spec.providers]
    ranked = capabilities.order(spec, usable)
    assert [p.tool for p, _, _ in ranked] == expected  # d: every breaker open, skipped
    assert ranked[0][2] == reason


@pytest.mark.parametrize("own", ["a string", ["a", "list"], None, {"trace": "t-1"}])
async def test_the_provider_is_named_in_the_result_whatever_the_backend_put_in_its_meta(own: Any) -> None:
    # a result's `_meta` is the backend's: the router adds its provider note beside what is an
    # object there, and replaces what is not, instead of failing a call that succeeded
    spec = CapabilitySpec.model_validate({"providers": [{"tool": "a__t"}, {"tool": "b__t"}]})
    capabilities = Capabilities(lambda server: False, lambda server, tool: True)
    usable = [(p, Target(p.tool.split("__")[0], "t")) for p in spec.providers]

    async def invoke(target: Target, call: dict[str, Any], tool: str) -> dict[str, Any]:
        if target.server == "a":
            raise BackendUnreachable("a", "connection refused")
        return {"content": [{"type": "text", "text": "ok"}], "_meta": own}

    result = await capabilities.call("search", spec, usable, {"arguments": {}}, invoke)
    assert result["content"][0]["text"] == "ok"
    note = result["_meta"][PROVIDER_META]
    assert note["server"] == "b" and note["reason"].endswith(
        "a__t: server 'a' is unavailable: connection refused"
    )
    assert {key: value for key, value in result["_meta"].items() if key != PROVIDER_META} == (
        own if isinstance(own, dict) else {}
    )
