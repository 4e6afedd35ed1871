"""Namespaces and overrides in front of the npm reference servers (everything, memory; stdio).

`notes` holds the memory server only; `demo` holds everything's `echo` alone,
renamed `say` there. Each namespace lists and serves exactly that, in both eras; the rest of
the catalog (served at `/mcp`) fails inside them like a tool that does not exist.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_router
from tests.guard_support import client_with, write_policy
from tests.support.procs import everything_stdio_entry, memory_stdio_entry
from tests.test_guard_access import same_as_nonexistent

pytestmark = [pytest.mark.anyio, pytest.mark.npm]

POLICY = {
    "default": "allow",
    "namespaces": {
        "notes": {"servers": ["memory"]},
        "demo": {"servers": ["everything"], "tools": ["everything__echo"]},
    },
    "overrides": [{"tool": "everything__echo", "namespaces": ["demo"], "name": "say"}],
}


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_namespaces_over_the_reference_servers(tmp_path: Path, mode: str) -> None:
    servers = {
        "everything": everything_stdio_entry(),
        "memory": memory_stdio_entry(tmp_path / "memory.jsonl"),
    }
    write_policy(tmp_path / "policy.json", POLICY)
    with run_router(tmp_path, servers, env={"TOOLMESH_POLICY_FILE": str(tmp_path / "policy.json")}) as router:
        async with client_with(f"{router.mcp_url}/notes", None, mode) as notes:
            names = {tool.name for tool in (await notes.list_tools()).tools}
            assert names and all(name.startswith("memory__") for name in names)
            assert "memory__read_graph" in names
            await same_as_nonexistent(
                lambda n: notes.call_tool(n, {"message": "x"}), "everything__echo", "zz__nope"
            )
            graph = await notes.call_tool("memory__read_graph", {})
            assert not graph.is_error
        async with client_with(f"{router.mcp_url}/demo", None, mode) as demo:
            assert {tool.name for tool in (await demo.list_tools()).tools} == {"say"}
            said = await demo.call_tool("say", {"message": "through a namespace"})
            assert "through a namespace" in said.content[0].text  # type: ignore[union-attr]
            for hidden in ("everything__echo", "memory__read_graph"):
                await same_as_nonexistent(lambda n: demo.call_tool(n, {"message": "x"}), hidden, "zz__nope")
            prompts = {prompt.name for prompt in (await demo.list_prompts()).prompts}
            assert all(name.startswith("everything__") for name in prompts)
        async with client_with(router.mcp_url, None, mode) as whole:
            names = {tool.name for tool in (await whole.list_tools()).tools}
            assert {"everything__echo", "memory__read_graph"} <= names and "say" not in names
