"""Promises of the router core that no other file holds it to: health, the advertised capability
set, lists that never reach a backend, per-client log levels, a server's own timeout, the
separator."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, types
from mcp.shared.exceptions import MCPError

from router.catalog.index import Definitions, Index
from router.catalog.naming import NamingPolicy
from tests.conftest import run_router
from tests.support.mcp_http import get_json
from tests.support.procs import TIED_ASKER_ENTRY, sample_server_http, sample_server_stdio_entry

pytestmark = pytest.mark.anyio

TOOLS_ONLY = TIED_ASKER_ENTRY  # a legacy stdio server that offers tools and nothing else


async def test_capabilities_are_exactly_what_the_servers_behind_offer(tmp_path: Path) -> None:
    """Over a tools-only server the router offers tools and nothing else (and refuses the rest
    as unknown methods); add a server with prompts, resources, completions and logging and it
    offers those too. Health answers whatever the backends do."""
    with run_router(tmp_path, {"asker": TOOLS_ONLY}) as router:
        assert get_json(f"{router.base_url}/healthz") == {"status": "ok"}
        async with Client(router.mcp_url, mode="legacy") as client:
            capabilities = client.server_capabilities
            assert capabilities.tools is not None
            offered = (
                capabilities.prompts,
                capabilities.resources,
                capabilities.completions,
                capabilities.logging,
            )
            assert offered == (None, None, None, None)
            with pytest.raises(MCPError) as refused:
                await client.list_prompts()
            assert refused.value.error.code == types.METHOD_NOT_FOUND
        router.write_catalog({"asker": TOOLS_ONLY, "full": sample_server_stdio_entry("full")})
        with anyio.fail_after(20):
            while True:
                async with Client(router.mcp_url, mode="legacy") as client:
                    capabilities = client.server_capabilities
                if capabilities.prompts is not None:
                    break
                await anyio.sleep(0.2)
        assert capabilities.resources is not None and capabilities.resources.subscribe
        assert capabilities.completions is not None and capabilities.logging is not None


def test_the_capability_union_is_computed_from_the_servers_alone() -> None:
    def index(*capabilities: dict[str, Any]) -> dict[str, Any]:
        servers = {f"s{n}": Definitions(capabilities=c) for n, c in enumerate(capabilities)}
        return Index(NamingPolicy(), servers).capability_union()

    assert index({"tools": {}}) == {"tools": {"listChanged": True}}
    assert index({"tools": {}}, {"prompts": {}, "resources": {}}) == {
        "tools": {"listChanged": True},
        "prompts": {"listChanged": True},
        "resources": {"listChanged": True},
    }
    assert index({"resources": {"subscribe": True}})["resources"] == {"listChanged": True, "subscribe": True}


async def test_lists_are_answered_while_the_backend_is_frozen(tmp_path: Path) -> None:
    """Lists come from the router's cache: with the only backend stopped (SIGSTOP) they still
    answer at once, while a call to it waits for its timeout."""
    with sample_server_http("frozen", log_dir=tmp_path) as (url, backend):
        entry = {"url": url, "timeout": 1.5}
        with run_router(tmp_path, {"frozen": entry}) as router:
            async with Client(router.mcp_url, mode="legacy") as client:
                assert (await client.list_tools()).tools
                os.kill(backend.pid, signal.SIGSTOP)
                try:
                    started = time.monotonic()
                    for _ in range(5):
                        assert {t.name for t in (await client.list_tools()).tools} >= {"frozen__echo"}
                        assert (await client.list_prompts()).prompts
                        assert (await client.list_resources()).resources
                        assert (await client.list_resource_templates()).resource_templates
                    assert time.monotonic() - started < 1.5, "a list waited for the frozen backend"
                    started = time.monotonic()
                    with pytest.raises(MCPError) as timed_out:
                        await client.call_tool("frozen__echo", {"text": "x"})
                    assert timed_out.value.error.code == -32002 and "frozen" in timed_out.value.error.message
                    assert 1.0 < time.monotonic() - started < 5.0, "the server's own timeout (1.5 s)"
                finally:
                    os.kill(backend.pid, signal.SIGCONT)


class Logs:
    def __init__(self) -> None:
        self.lines: list[str] = []

    async def __call__(self, params: types.LoggingMessageNotificationParams) -> None:
        self.lines.append(str(params.data))


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")  # logging, in 2026-07-28
async def test_each_legacy_client_hears_logs_at_its_own_level(tmp_path: Path) -> None:
    """From a stdio backend (where a log line names no call: it is the one call in flight's) and
    an HTTP one (on the call's stream), each client gets what its `logging/setLevel` asks for."""
    with (
        sample_server_http("beta", log_dir=tmp_path) as (beta_url, _),
        run_router(
            tmp_path, {"alpha": sample_server_stdio_entry("alpha"), "beta": {"url": beta_url}}
        ) as router,
    ):
        quiet_logs, chatty_logs = Logs(), Logs()
        async with (
            Client(router.mcp_url, mode="legacy", logging_callback=quiet_logs) as quiet,
            Client(router.mcp_url, mode="legacy", logging_callback=chatty_logs) as chatty,
        ):
            await quiet.set_logging_level("warning")
            await chatty.set_logging_level("debug")
            for client in (quiet, chatty):
                for server in ("alpha", "beta"):
                    await client.call_tool(f"{server}__progress", {"steps": 1})
        assert quiet_logs.lines == []
        assert chatty_logs.lines == [
            "alpha: progress finished after 1 steps",
            "beta: progress finished after 1 steps",
        ]


async def test_the_separator_is_configurable(tmp_path: Path) -> None:
    with run_router(tmp_path, {"alpha": sample_server_stdio_entry("alpha")}, "--separator", ".") as router:
        async with Client(router.mcp_url, mode="2026-07-28") as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert "alpha.echo" in names and not any("__" in name for name in names)
            echoed = await client.call_tool("alpha.echo", {"text": "dot"})
            assert echoed.content[0].text == "alpha:dot"  # type: ignore[union-attr]


async def test_an_upstream_session_the_backend_forgot_is_opened_again(tmp_path: Path) -> None:
    """A legacy backend that no longer knows the router's session answers 404: the router opens a
    new one and sends the call again (it never reached the server), so the client sees nothing."""
    with (
        sample_server_http("amnesiac", era="legacy", log_dir=tmp_path) as (url, _),
        run_router(tmp_path, {"amnesiac": {"url": url}}) as router,
    ):
        async with Client(router.mcp_url, mode="legacy") as client:
            first = await client.call_tool("amnesiac__echo", {"text": "one"})
            assert first.content[0].text == "amnesiac:one"  # type: ignore[union-attr]
            expired = await anyio.to_thread.run_sync(_expire_sessions, url)
            assert expired >= 1  # the router's session is gone upstream
            second = await client.call_tool("amnesiac__echo", {"text": "two"})
            assert second.content[0].text == "amnesiac:two"  # type: ignore[union-attr]
        assert "backend forgot our session; initializing again" in router.process.log_text()


def _expire_sessions(url: str) -> int:
    request = urllib.request.Request(url.removesuffix("/mcp") + "/expire-sessions", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.read())
