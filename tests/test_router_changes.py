"""Change over time: list_changed, catalog edits without restart, and backends that die and come back."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, types
from mcp.shared.exceptions import MCPError

from router.up.processes import free_port
from tests.conftest import run_router
from tests.support.procs import sample_server_http, sample_server_stdio_entry

pytestmark = pytest.mark.anyio


class Notifications:
    """Collects the notifications a client receives, and waits for one by method."""

    def __init__(self) -> None:
        self.methods: list[str] = []
        self._arrived = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ServerNotification):
            self.methods.append(message.method)
            self._arrived.set()

    async def wait_for(self, method: str, seconds: float = 10.0) -> None:
        with anyio.fail_after(seconds):
            while method not in self.methods:
                await self._arrived.wait()
                self._arrived = anyio.Event()


async def test_backend_list_changed_refreshes_the_catalog_and_reaches_clients(tmp_path: Path) -> None:
    servers = {"alpha": sample_server_stdio_entry("alpha"), "beta": sample_server_stdio_entry("beta")}
    with run_router(tmp_path, servers) as router:
        seen = Notifications()
        async with Client(router.mcp_url, mode="legacy", message_handler=seen) as client:
            before = {t.name for t in (await client.list_tools()).tools}
            assert "alpha__extra_1" not in before
            await anyio.sleep(0.3)  # let the client's GET stream open
            await client.call_tool("alpha__grow", {})
            await seen.wait_for("notifications/tools/list_changed")
            after = {t.name for t in (await client.list_tools()).tools}
            assert after - before == {"alpha__extra_1"}
            grown = await client.call_tool("alpha__extra_1", {})
            assert not grown.is_error


async def test_catalog_edits_apply_without_restart(tmp_path: Path) -> None:
    with run_router(tmp_path, {"alpha": sample_server_stdio_entry("alpha")}) as router:
        pid = router.process.pid
        seen = Notifications()
        async with Client(router.mcp_url, mode="legacy", message_handler=seen) as client:
            await anyio.sleep(0.3)
            router.write_catalog(
                {"alpha": sample_server_stdio_entry("alpha"), "gamma": sample_server_stdio_entry("gamma")}
            )
            await seen.wait_for("notifications/tools/list_changed", 20)
            names = {t.name for t in (await client.list_tools()).tools}
            assert "gamma__echo" in names
            result = await client.call_tool("gamma__echo", {"text": "new"})
            assert result.content[0].text == "gamma:new"  # type: ignore[union-attr]
            router.write_catalog({"gamma": sample_server_stdio_entry("gamma")})
            with anyio.fail_after(20):
                while "alpha__echo" in {t.name for t in (await client.list_tools()).tools}:
                    await anyio.sleep(0.2)
        # A broken edit is rejected and logged; the last good catalog stays in force.
        router.catalog.write_text('{"mcpServers": {"bad": {"args": []}}}')
        await anyio.sleep(1.0)
        async with Client(router.mcp_url, mode="legacy") as client:
            assert "gamma__echo" in {t.name for t in (await client.list_tools()).tools}
        assert router.process.pid == pid and router.process.is_running()
        assert "catalog edit rejected" in router.process.log_text()


async def test_a_stdio_backend_that_dies_is_restarted(tmp_path: Path) -> None:
    with run_router(tmp_path, {"alpha": sample_server_stdio_entry("alpha")}) as router:
        async with Client(router.mcp_url, mode="legacy") as client:
            first_pid = (await client.call_tool("alpha__whoami", {})).content[0].text  # type: ignore[union-attr]
            with pytest.raises(MCPError) as caught:
                await client.call_tool("alpha__crash", {})
            assert "alpha" in caught.value.error.message
            pid = await _eventually_call(client, "alpha__whoami")
            assert pid != first_pid


async def test_an_http_backend_that_comes_back_is_reconnected(tmp_path: Path) -> None:
    port = free_port()
    with (
        sample_server_http("beta", port=port, log_dir=tmp_path) as (url, backend),
        run_router(tmp_path, {"beta": {"url": url}}) as router,
    ):
        async with Client(router.mcp_url, mode="legacy") as client:
            assert (await client.call_tool("beta__echo", {"text": "a"})).content[0].text == "beta:a"  # type: ignore[union-attr]
            backend.stop()
            started = time.monotonic()
            with pytest.raises(MCPError) as caught:
                await client.call_tool("beta__echo", {"text": "b"})
            assert "beta" in caught.value.error.message
            assert time.monotonic() - started < 5, "a dead backend must fail fast"
            with sample_server_http("beta", port=port, log_dir=tmp_path):
                text = await _eventually_call(client, "beta__echo", {"text": "c"})
                assert text == "beta:c"


async def test_a_backend_down_at_start_does_not_hurt_the_others(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/mcp"
    servers = {"alpha": sample_server_stdio_entry("alpha"), "ghost": {"url": dead}}
    with run_router(tmp_path, servers) as router:
        async with Client(router.mcp_url, mode="legacy") as client:
            assert (await client.call_tool("alpha__echo", {"text": "ok"})).content[0].text == "alpha:ok"  # type: ignore[union-attr]


async def _eventually_call(client: Client, tool: str, arguments: dict[str, Any] | None = None) -> str:
    with anyio.fail_after(20):
        while True:
            try:
                result = await client.call_tool(tool, arguments or {})
                return result.content[0].text  # type: ignore[union-attr,no-any-return]
            except MCPError:
                await anyio.sleep(0.2)


async def test_no_stdio_child_outlives_the_router(tmp_path: Path) -> None:
    with run_router(tmp_path, {"alpha": sample_server_stdio_entry("alpha")}) as router:
        async with Client(router.mcp_url, mode="legacy") as client:
            child = int((await client.call_tool("alpha__whoami", {})).content[0].text)  # type: ignore[union-attr]
        assert _alive(child)
        router.process.stop(grace=10)
    with anyio.fail_after(5):
        while _alive(child):
            await anyio.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
