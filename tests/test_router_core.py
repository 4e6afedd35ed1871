"""The router core end to end: real router process, real SDK backends, the SDK client in both eras."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.conftest import RouterHandle, run_router
from tests.support.procs import sample_server_http, sample_server_sse, sample_server_stdio_entry

pytestmark = pytest.mark.anyio

MODES = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module", params=["streamable-http", "sse"])
def mesh(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[RouterHandle]:
    """A router over `alpha` (stdio, paged upstream lists) and `beta` (Streamable HTTP, or the
    2024-11-05 HTTP+SSE transport of the SDK's `SseServerTransport`): every test here runs
    against both."""
    tmp = tmp_path_factory.mktemp("mesh")
    serve = sample_server_sse if request.param == "sse" else sample_server_http
    with serve("beta", log_dir=tmp) as (beta_url, _):
        beta = {"url": beta_url, "type": "sse"} if request.param == "sse" else {"url": beta_url}
        servers = {"alpha": sample_server_stdio_entry("alpha", page_size=2), "beta": beta}
        with run_router(tmp, servers) as router:
            yield router


async def all_tools(client: Client) -> list[Any]:
    tools, cursor = [], None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


@pytest.mark.parametrize("mode", MODES)
async def test_tools_of_every_server_are_listed_and_callable_under_prefixed_names(
    mesh: RouterHandle, mode: str
) -> None:
    async with Client(mesh.mcp_url, mode=mode) as client:
        names = {tool.name for tool in await all_tools(client)}
        assert {"alpha__echo", "alpha__add", "beta__echo", "beta__link"} <= names
        assert all(name.startswith(("alpha__", "beta__")) for name in names)
        alpha = await client.call_tool("alpha__echo", {"text": "hi"})
        beta = await client.call_tool("beta__echo", {"text": "yo"})
        assert alpha.content[0].text == "alpha:hi"  # type: ignore[union-attr]
        assert beta.content[0].text == "beta:yo"  # type: ignore[union-attr]
        added = await client.call_tool("alpha__add", {"a": 2, "b": 3})
        assert added.structured_content == {"sum": 5}


@pytest.mark.parametrize("mode", MODES)
async def test_resources_are_namespaced_and_links_in_tool_results_read_back(
    mesh: RouterHandle, mode: str
) -> None:
    async with Client(mesh.mcp_url, mode=mode) as client:
        uris = {str(resource.uri) for resource in (await client.list_resources()).resources}
        assert "toolmesh://alpha/mem://alpha/hello" in uris
        assert "toolmesh://beta/mem://beta/hello" in uris
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert "toolmesh://beta/mem://beta/item/{id}" in templates
        read = await client.read_resource("toolmesh://alpha/mem://alpha/hello")
        assert read.contents[0].text == "hello from alpha"  # type: ignore[union-attr]
        assert str(read.contents[0].uri) == "toolmesh://alpha/mem://alpha/hello"
        item = await client.read_resource("toolmesh://beta/mem://beta/item/42")
        assert item.contents[0].text == "item 42 of beta"  # type: ignore[union-attr]
        linked = await client.call_tool("beta__link", {})
        link, embedded = linked.content
        assert str(link.uri) == "toolmesh://beta/mem://beta/hello"  # type: ignore[union-attr]
        assert str(embedded.resource.uri) == "toolmesh://beta/mem://beta/item/7"  # type: ignore[union-attr]
        followed = await client.read_resource(str(link.uri))  # type: ignore[union-attr]
        assert followed.contents[0].text == "hello from beta"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
async def test_prompts_and_completions_route_to_their_server(mesh: RouterHandle, mode: str) -> None:
    async with Client(mesh.mcp_url, mode=mode) as client:
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert {"alpha__greet", "beta__greet", "beta__plain"} <= prompts
        got = await client.get_prompt("beta__greet", {"who": "ada"})
        assert got.messages[0].content.text == "Hello ada from beta"  # type: ignore[union-attr]
        done = await client.complete(
            {"type": "ref/prompt", "name": "alpha__greet"}, argument={"name": "who", "value": "al"}
        )
        assert done.completion.values == ["alice", "albert"]
        by_template = await client.complete(
            {"type": "ref/resource", "uri": "toolmesh://beta/mem://beta/item/{id}"},
            argument={"name": "id", "value": ""},
        )
        assert by_template.completion.values == ["1", "2", "3"]


@pytest.mark.parametrize("mode", MODES)
async def test_unknown_tool_gets_did_you_mean(mesh: RouterHandle, mode: str) -> None:
    async with Client(mesh.mcp_url, mode=mode) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__ecko", {"text": "x"})
        assert caught.value.error.code == -32602
        assert "did you mean" in caught.value.error.message and "alpha__echo" in caught.value.error.message


@pytest.mark.parametrize("mode", MODES)
async def test_backend_errors_pass_through_with_their_code(mesh: RouterHandle, mode: str) -> None:
    async with Client(mesh.mcp_url, mode=mode) as client:
        failed = await client.call_tool("beta__tool_error", {"message": "nope"})
        assert failed.is_error
        with pytest.raises(MCPError) as caught:
            await client.call_tool("alpha__fail", {"message": "boom"})
        direct_code = await _direct_fail_code()
        assert caught.value.error.code == direct_code
        assert "boom" in caught.value.error.message


async def _direct_fail_code() -> int:
    """The code the sample backend itself uses for `fail`, asked without the router."""
    with sample_server_http("direct") as (url, _):
        async with Client(url, mode="legacy") as client:
            with pytest.raises(MCPError) as caught:
                await client.call_tool("fail", {"message": "boom"})
            return caught.value.error.code


async def test_router_pages_lists_with_its_own_signed_cursors(tmp_path: Path) -> None:
    servers = {"alpha": sample_server_stdio_entry("alpha", page_size=2)}
    with run_router(tmp_path, servers, "--page-size", "3") as router:
        async with Client(router.mcp_url, mode="legacy") as client:
            first = await client.list_tools()
            assert len(first.tools) == 3 and first.next_cursor
            names = [tool.name for tool in await all_tools(client)]
            assert len(names) == len(set(names)) > 3
            with pytest.raises(MCPError) as caught:
                await client.list_tools(cursor=first.next_cursor[:-2] + "xx")
            assert caught.value.error.code == -32602


async def test_a_stdio_backend_that_speaks_only_2026_connects_on_auto(tmp_path: Path) -> None:
    """A 2026-07-28-only stdio server refuses `initialize` and then holds to the era it refused,
    so the router asks a fresh child `server/discover` at once instead of failing forever."""
    servers = {"m": sample_server_stdio_entry("m", era="modern")}
    with run_router(tmp_path, servers) as router:
        for mode in MODES:
            async with Client(router.mcp_url, mode=mode) as client:
                with anyio.fail_after(15):  # the first child is refused, the second answers
                    while not (await client.list_tools()).tools:
                        await anyio.sleep(0.1)
                echoed = await client.call_tool("m__echo", {"text": "hi"})
                assert echoed.content[0].text == "m:hi"  # type: ignore[union-attr]
        log = router.process.log_path.read_text()
        assert "backend ready" in log and "era=modern" in log, log[-2000:]
        assert "unavailable" not in log  # learning the era is not an outage


async def test_a_slow_starting_2026_only_stdio_backend_connects_on_auto(tmp_path: Path) -> None:
    """The fresh child asked `server/discover` after the refused `initialize` has the connect
    timeout to start, not the 3 s probe: each child here takes 4 s before it answers anything."""
    entry = sample_server_stdio_entry("m", era="modern")
    slow = {
        **entry,
        "command": "sh",
        "args": ["-c", 'sleep 4; exec "$0" "$@"', entry["command"], *entry["args"]],
    }
    with run_router(tmp_path, {"m": slow}) as router:
        async with Client(router.mcp_url, mode="2026-07-28") as client:
            with anyio.fail_after(30):
                while not (await client.list_tools()).tools:
                    await anyio.sleep(0.2)
            echoed = await client.call_tool("m__echo", {"text": "hi"})
            assert echoed.content[0].text == "m:hi"  # type: ignore[union-attr]
        log = router.process.log_path.read_text()
        assert "unavailable" not in log, log[-3000:]
