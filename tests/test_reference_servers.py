"""The npm reference servers behind the router, over stdio and Streamable HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from tests.conftest import run_router
from tests.support.procs import everything_http, everything_stdio_entry, memory_stdio_entry

pytestmark = [pytest.mark.anyio, pytest.mark.npm]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_everything_and_memory_over_stdio(tmp_path: Path, mode: str) -> None:
    servers = {
        "everything": everything_stdio_entry(),
        "memory": memory_stdio_entry(tmp_path / "memory.jsonl"),
    }
    with run_router(tmp_path, servers) as router:
        async with Client(router.mcp_url, mode=mode) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"everything__echo", "memory__create_entities", "memory__read_graph"} <= names
            echoed = await client.call_tool("everything__echo", {"message": "through toolmesh"})
            assert "through toolmesh" in echoed.content[0].text  # type: ignore[union-attr]
            await client.call_tool(
                "memory__create_entities",
                {"entities": [{"name": "toolmesh", "entityType": "router", "observations": ["routes MCP"]}]},
            )
            graph = await client.call_tool("memory__read_graph", {})
            assert "toolmesh" in graph.content[0].text  # type: ignore[union-attr]


async def test_everything_over_http(tmp_path: Path) -> None:
    with (
        everything_http(log_dir=tmp_path) as url,
        run_router(tmp_path, {"everything": {"url": url}}) as router,
    ):
        async with Client(router.mcp_url, mode="legacy") as client:
            echoed = await client.call_tool("everything__echo", {"message": "over http"})
            assert "over http" in echoed.content[0].text  # type: ignore[union-attr]
            resources = (await client.list_resources()).resources
            assert resources, "server-everything offers resources"
            first = await client.read_resource(str(resources[0].uri))
            assert first.contents
