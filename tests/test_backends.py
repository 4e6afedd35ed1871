"""The test backends and process helpers work: real servers, driven by the SDK's `mcp.Client` (no router)."""

from __future__ import annotations

import base64
import http.client
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest
from mcp import Client, types
from mcp.client.session import IncomingMessage
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.subscriptions import ResourceUpdated, ToolsListChanged

from router.up.processes import ManagedProcess, ProcessError
from tests.support.procs import (
    everything_http,
    everything_stdio_entry,
    memory_stdio_entry,
    sample_server_http,
    sample_server_stdio_entry,
    stdio_parameters,
    write_catalog,
)

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
SAMPLE_TOOLS = {
    "echo",
    "add",
    "fail",
    "tool_error",
    "slow",
    "link",
    "grow",
    "touch",
    "crash",
    "whoami",
    "meta",
    "progress",
}


@pytest.fixture(scope="module")
def alpha() -> Iterator[tuple[str, ManagedProcess]]:
    """One shared sample server over HTTP, lists paged by 2; tests on it must not change its state."""
    with sample_server_http("alpha", page_size=2) as server:
        yield server


async def list_all_tools(client: Client) -> tuple[list[types.Tool], int]:
    """Follow tools/list cursors to the end; returns the tools and the number of pages."""
    tools: list[types.Tool] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            return tools, pages


def only_text(result: types.CallToolResult | types.GetPromptResult | types.ReadResourceResult) -> str:
    """The text of a result that has exactly one text block."""
    if isinstance(result, types.CallToolResult):
        blocks: list[Any] = list(result.content)
    elif isinstance(result, types.GetPromptResult):
        blocks = [message.content for message in result.messages]
    else:
        blocks = list(result.contents)
    assert len(blocks) == 1, blocks
    assert isinstance(blocks[0], types.TextContent | types.TextResourceContents), blocks[0]
    return blocks[0].text


async def check_sample_basics(client: Client, name: str) -> None:
    """echo, the template resource, the greet prompt and both completions answer as `name`."""
    assert only_text(await client.call_tool("echo", {"text": "hi"})) == f"{name}:hi"
    added = await client.call_tool("add", {"a": 2, "b": 3.5})
    assert added.structured_content == {"sum": 5.5}
    assert only_text(added) == "5.5"
    item = await client.read_resource(f"mem://{name}/item/42")
    assert isinstance(item.contents[0].uri, str)
    assert item.contents[0].uri == f"mem://{name}/item/42"
    assert only_text(item) == f"item 42 of {name}"
    prompt = await client.get_prompt("greet", {"who": "bob"})
    assert prompt.messages[0].role == "user"
    assert only_text(prompt) == f"Hello bob from {name}"
    assert only_text(await client.get_prompt("plain")) == f"A plain prompt from {name}"
    who = await client.complete(
        types.PromptReference(type="ref/prompt", name="greet"), {"name": "who", "value": "al"}
    )
    assert who.completion.values == ["alice", "albert"]
    template = types.ResourceTemplateReference(type="ref/resource", uri=f"mem://{name}/item/{{id}}")
    ids = await client.complete(template, {"name": "id", "value": ""})
    assert ids.completion.values == ["1", "2", "3"]


# -- the sample server over HTTP ------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "version"), [("legacy", LEGACY), (MODERN, MODERN), ("auto", MODERN)])
async def test_sample_http_both_eras(alpha: tuple[str, ManagedProcess], mode: str, version: str) -> None:
    url, _ = alpha
    async with Client(url, mode=mode) as client:
        assert client.protocol_version == version
        if mode == MODERN:
            # A pinned version adopts a synthesized discover result: no serverInfo, no capabilities.
            assert client.server_info is None
        else:
            assert client.server_info is not None
            assert client.server_info.name == "alpha"
            assert client.server_capabilities.tools is not None
            assert client.server_capabilities.tools.list_changed is True

        tools, pages = await list_all_tools(client)
        assert {tool.name for tool in tools} == SAMPLE_TOOLS
        assert pages == 6  # 11 tools, 2 per page
        by_name = {tool.name: tool for tool in tools}
        assert by_name["echo"].annotations is not None
        assert by_name["echo"].annotations.read_only_hint is True
        assert by_name["crash"].annotations is not None
        assert by_name["crash"].annotations.destructive_hint is True
        assert by_name["add"].output_schema is not None
        assert by_name["add"].output_schema["required"] == ["sum"]

        templates = await client.list_resource_templates()
        assert [t.uri_template for t in templates.resource_templates] == ["mem://alpha/item/{id}"]
        await check_sample_basics(client, "alpha")


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_sample_errors(alpha: tuple[str, ManagedProcess], mode: str) -> None:
    url, _ = alpha
    async with Client(url, mode=mode) as client:
        with pytest.raises(MCPError) as failed:
            await client.call_tool("fail", {"message": "boom"})
        assert (failed.value.code, failed.value.message) == (types.INTERNAL_ERROR, "alpha: boom")
        with pytest.raises(MCPError) as custom:
            await client.call_tool("fail", {"message": "teapot", "code": -32099})
        assert custom.value.code == -32099

        tool_error = await client.call_tool("tool_error", {"message": "nope"})
        assert tool_error.is_error is True
        assert only_text(tool_error) == "alpha: nope"
        bad_arguments = await client.call_tool("echo", {})
        assert bad_arguments.is_error is True
        assert "'text' is a required property" in only_text(bad_arguments)

        with pytest.raises(MCPError) as unknown_tool:
            await client.call_tool("no_such_tool", {})
        assert unknown_tool.value.code == types.INVALID_PARAMS
        with pytest.raises(MCPError) as unknown_resource:
            await client.read_resource("mem://alpha/nothing")
        assert unknown_resource.value.code == (types.INVALID_PARAMS if mode == MODERN else -32002)
        with pytest.raises(MCPError) as bad_cursor:
            await client.list_tools(cursor="not-a-cursor")
        assert bad_cursor.value.code == types.INVALID_PARAMS


async def test_sample_link_and_blob(alpha: tuple[str, ManagedProcess]) -> None:
    url, _ = alpha
    async with Client(url, mode="legacy") as client:
        link = await client.call_tool("link", {})
        resource_link, embedded = link.content
        assert isinstance(resource_link, types.ResourceLink)
        assert resource_link.uri == "mem://alpha/hello"
        assert isinstance(embedded, types.EmbeddedResource)
        assert isinstance(embedded.resource, types.TextResourceContents)
        assert (embedded.resource.uri, embedded.resource.text) == ("mem://alpha/item/7", "item 7 of alpha")

        hello = await client.read_resource("mem://alpha/hello")
        assert only_text(hello) == "hello from alpha"
        blob = (await client.read_resource("mem://alpha/blob")).contents[0]
        assert isinstance(blob, types.BlobResourceContents)
        assert base64.b64decode(blob.blob) == b"blob of alpha:\x00\x01\x02\xfe\xff"


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_sample_progress_and_logging(alpha: tuple[str, ManagedProcess], mode: str) -> None:
    url, _ = alpha
    logs: list[types.LoggingMessageNotificationParams] = []
    steps: list[tuple[float, float | None, str | None]] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append((progress, total, message))

    # 2026-07-28 delivers log messages only to requests that opt in (Client.log_level).
    log_level: types.LoggingLevel | None = "info" if mode == MODERN else None
    async with Client(url, mode=mode, logging_callback=on_log, log_level=log_level) as client:
        result = await client.call_tool("progress", {"steps": 3}, progress_callback=on_progress)
    assert only_text(result) == "alpha:progress 3"
    assert steps == [(1, 3, "step 1/3"), (2, 3, "step 2/3"), (3, 3, "step 3/3")]
    assert [(log.level, log.logger, log.data) for log in logs] == [
        ("info", "alpha", "alpha: progress finished after 3 steps")
    ]


async def test_sample_stateless_json_http() -> None:
    with sample_server_http("gamma", stateless=True, json_response=True) as (url, _):
        for mode in ("legacy", MODERN):
            async with Client(url, mode=mode) as client:
                assert only_text(await client.call_tool("echo", {"text": mode})) == f"gamma:{mode}"


# -- list_changed -----------------------------------------------------------------------------------


async def test_grow_legacy_http_sends_list_changed() -> None:
    changed = anyio.Event()
    count = 0

    async def on_message(message: IncomingMessage) -> None:
        nonlocal count
        if isinstance(message, types.ToolListChangedNotification):
            count += 1
            changed.set()

    with sample_server_http("beta") as (url, _):
        async with Client(url, mode="legacy", message_handler=on_message) as client:
            assert only_text(await client.call_tool("grow", {})) == "extra_1"
            # By default the notification rides the grow call's own response stream: it is already here.
            assert count == 1
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == {*SAMPLE_TOOLS, "extra_1"}
            assert only_text(await client.call_tool("extra_1", {})) == "beta:extra_1"

            # With standalone=true it goes to the session's GET stream, which the client opens on its
            # own after initialize; retry in case that stream is not up yet.
            for _ in range(10):
                changed = anyio.Event()
                await client.call_tool("grow", {"standalone": True})
                with anyio.move_on_after(1):
                    await changed.wait()
                if changed.is_set():
                    break
            assert changed.is_set()


async def test_grow_modern_http_publishes_to_listen_streams() -> None:
    with sample_server_http("delta") as (url, _):
        async with Client(url, mode=MODERN) as client:
            async with client.listen(tools_list_changed=True) as subscription:
                assert subscription.honored.tools_list_changed is True
                assert only_text(await client.call_tool("grow", {})) == "extra_1"
                with anyio.fail_after(5):
                    event = await anext(subscription)
                assert isinstance(event, ToolsListChanged)
            tools, _ = await list_all_tools(client)
            assert "extra_1" in {tool.name for tool in tools}


async def test_grow_stdio_sends_list_changed() -> None:
    received: list[types.ServerNotification] = []

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            received.append(message)

    params = stdio_parameters(sample_server_stdio_entry("eps"))
    async with Client(params, mode="legacy", message_handler=on_message) as client:
        await client.call_tool("grow", {})
        await client.call_tool("grow", {})
        assert len(received) == 2
        tools = (await client.list_tools()).tools
        assert {"extra_1", "extra_2"} <= {tool.name for tool in tools}


async def test_subscribe_touch_and_set_level_stdio() -> None:
    updates: list[str] = []

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(message.params.uri)

    logs: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    params = stdio_parameters(sample_server_stdio_entry("eta"))
    async with Client(params, mode="legacy", message_handler=on_message, logging_callback=on_log) as client:
        assert only_text(await client.call_tool("touch", {})) == "not subscribed: mem://eta/hello"
        with pytest.warns(MCPDeprecationWarning):
            await client.subscribe_resource("mem://eta/hello")
        assert only_text(await client.call_tool("touch", {})) == "updated: mem://eta/hello"
        assert updates == ["mem://eta/hello"]
        with pytest.warns(MCPDeprecationWarning):
            await client.unsubscribe_resource("mem://eta/hello")
        assert only_text(await client.call_tool("touch", {})) == "not subscribed: mem://eta/hello"

        await client.call_tool("progress", {"steps": 0})
        assert [log.level for log in logs] == ["info"]
        with pytest.warns(MCPDeprecationWarning):
            await client.set_logging_level("warning")
        await client.call_tool("progress", {"steps": 0})
        assert len(logs) == 1  # the info message is now below the level


async def test_listen_resource_updates_modern(alpha: tuple[str, ManagedProcess]) -> None:
    url, _ = alpha
    async with (
        Client(url, mode=MODERN) as client,
        client.listen(resource_subscriptions=["mem://alpha/hello"]) as subscription,
    ):
        assert only_text(await client.call_tool("touch", {})) == "updated: mem://alpha/hello"
        with anyio.fail_after(5):
            event = await anext(subscription)
        assert event == ResourceUpdated(uri="mem://alpha/hello")


# -- eras ---------------------------------------------------------------------------------------------


def _is_error(code: int) -> pytest.RaisesGroup[Any]:
    """Matches the exception groups `Client` wraps a failed connect in."""
    return pytest.RaisesGroup(
        pytest.RaisesExc(MCPError, check=lambda e: e.code == code), flatten_subgroups=True
    )


async def test_http_era_legacy_only() -> None:
    with sample_server_http("old", era="legacy") as (url, _):
        async with Client(url) as client:  # mode="auto": server/discover is refused, falls back
            assert client.protocol_version == LEGACY
            assert only_text(await client.call_tool("echo", {"text": "x"})) == "old:x"
        async with Client(url, mode=MODERN) as client:
            with pytest.raises(MCPError) as refused:
                await client.call_tool("echo", {"text": "x"})
            assert refused.value.code == types.INVALID_REQUEST


async def test_http_era_modern_only() -> None:
    with sample_server_http("new", era="modern") as (url, _):
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
        connection.request("GET", parts.path, headers={"Accept": "text/event-stream"})
        response = connection.getresponse()
        assert (response.status, response.getheader("allow")) == (405, "POST")
        connection.close()
        async with Client(url) as client:
            assert client.protocol_version == MODERN
            assert only_text(await client.call_tool("echo", {"text": "x"})) == "new:x"
        with _is_error(types.UNSUPPORTED_PROTOCOL_VERSION):
            async with Client(url, mode="legacy"):
                pass


@pytest.mark.parametrize(("era", "version"), [("legacy", LEGACY), ("modern", MODERN)])
async def test_stdio_era(era: Any, version: str) -> None:
    async with Client(stdio_parameters(sample_server_stdio_entry("s", era=era))) as client:
        assert client.protocol_version == version
        assert only_text(await client.call_tool("echo", {"text": "x"})) == "s:x"


# -- the sample server over stdio, catalogs ---------------------------------------------------------


@pytest.mark.parametrize(("mode", "version"), [("legacy", LEGACY), ("auto", MODERN)])
async def test_sample_stdio_from_catalog(tmp_path: Path, mode: str, version: str) -> None:
    catalog = write_catalog(tmp_path, {"zeta": sample_server_stdio_entry("zeta", page_size=1)})
    entry = json.loads(catalog.read_text())["mcpServers"]["zeta"]
    assert entry["command"] == sys.executable
    assert entry["args"][:2] == ["-m", "tests.servers.sample"]

    async with Client(stdio_parameters(entry), mode=mode) as client:
        assert client.protocol_version == version
        tools, pages = await list_all_tools(client)
        assert {tool.name for tool in tools} == SAMPLE_TOOLS
        assert pages == len(SAMPLE_TOOLS)
        first = await client.list_resources()
        assert first.next_cursor is not None
        second = await client.list_resources(cursor=first.next_cursor)
        assert second.next_cursor is None
        assert [r.uri for r in [*first.resources, *second.resources]] == [
            "mem://zeta/hello",
            "mem://zeta/blob",
        ]
        prompts = await client.list_prompts()
        assert [p.name for p in prompts.prompts] == ["greet"]
        assert prompts.next_cursor is not None
        await check_sample_basics(client, "zeta")


# -- processes ---------------------------------------------------------------------------------------


async def test_whoami_and_crash_legacy() -> None:
    with sample_server_http("kappa") as (url, process):
        async with Client(url, mode="legacy", read_timeout_seconds=5) as client:
            assert only_text(await client.call_tool("whoami", {})) == str(process.pid)
            with pytest.raises(MCPError) as lost:
                await client.call_tool("crash", {})
            assert lost.value.code == types.CONNECTION_CLOSED
        assert process.wait_exit(5) == 3
        assert "kappa: crash requested" in process.log_text()


async def test_crash_modern_tears_down_the_client() -> None:
    """SDK 2.3.0: a 2026-era HTTP request whose server dies fails the whole Client, not just the call."""
    with sample_server_http("lambda") as (url, process):
        with pytest.RaisesGroup(pytest.RaisesExc(httpx2.TransportError), flatten_subgroups=True):
            async with Client(url, mode=MODERN, read_timeout_seconds=5) as client:
                assert only_text(await client.call_tool("whoami", {})) == str(process.pid)
                await client.call_tool("crash", {})
        assert process.wait_exit(5) == 3


def test_managed_process_failure_shows_log() -> None:
    script = "import sys; print('starting up', flush=True); sys.exit('bad config')"
    with (
        ManagedProcess([sys.executable, "-c", script], name="broken") as process,
        pytest.raises(ProcessError, match=r"(?s)exited with status 1.*starting up.*bad config"),
    ):
        process.wait_port(1, timeout=5)


def test_managed_process_stop_kills_the_group() -> None:
    script = (
        "import subprocess, sys, time;"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "print(child.pid, flush=True); time.sleep(60)"
    )
    with ManagedProcess([sys.executable, "-c", script], name="parent") as process:
        child_pid = int(process.wait_log(r"(\d+)\n", timeout=10).group(1))
    assert process.returncode is not None
    assert not process.is_running()
    for _ in range(100):  # the child is gone (or a zombie waiting for init to reap it)
        try:
            state = Path(f"/proc/{child_pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"child {child_pid} survived stop()")


# -- npm reference servers -----------------------------------------------------------------------------


@pytest.mark.npm
async def test_everything_stdio_lists_tools() -> None:
    async with Client(stdio_parameters(everything_stdio_entry()), mode="legacy") as client:
        assert client.server_info is not None
        assert client.server_info.name == "mcp-servers/everything"
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "get-sum", "get-tiny-image", "trigger-long-running-operation"} <= names
        assert only_text(await client.call_tool("echo", {"message": "hi"})) == "Echo: hi"


@pytest.mark.npm
async def test_everything_http_lists_tools() -> None:
    with everything_http() as url:
        async with Client(url) as client:  # a handshake-era server: auto falls back to initialize
            assert client.protocol_version in {LEGACY, "2025-06-18"}
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"echo", "get-sum"} <= names
            assert only_text(await client.call_tool("echo", {"message": "hi"})) == "Echo: hi"


@pytest.mark.npm
async def test_memory_stdio_lists_tools(tmp_path: Path) -> None:
    memory_file = tmp_path / "memory.jsonl"
    async with Client(stdio_parameters(memory_stdio_entry(memory_file)), mode="legacy") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"create_entities", "create_relations", "read_graph", "search_nodes"} <= names
        entity = {"name": "alice", "entityType": "person", "observations": ["likes tea"]}
        await client.call_tool("create_entities", {"entities": [entity]})
        graph = await client.call_tool("read_graph", {})
        assert graph.structured_content == {"entities": [entity], "relations": []}
    assert "alice" in memory_file.read_text()
