"""Full relay through the router, with the npm server-everything behind it and the SDK's client.

server-everything (a legacy-era server) asks its client for sampling and elicitation mid-call and
reports progress of long operations; these tests check that each reaches the right client on the
right stream and that the answers come back, for a legacy client (ids rewritten, replies routed
back) and for a 2026-07-28 client (the router parks the call and returns input-required results).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, types

from tests.conftest import RouterHandle, run_router
from tests.support.procs import everything_http, everything_sse, everything_stdio_entry

pytestmark = [pytest.mark.anyio, pytest.mark.npm]


@pytest.fixture(params=["stdio", "http", "sse"])
def router(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RouterHandle]:
    if request.param == "stdio":
        with run_router(tmp_path, {"everything": everything_stdio_entry()}) as handle:
            yield handle
    elif request.param == "sse":  # the 2024-11-05 HTTP+SSE transport
        with (
            everything_sse(log_dir=tmp_path) as url,
            run_router(tmp_path, {"everything": {"url": url, "type": "sse"}}) as handle,
        ):
            yield handle
    else:
        with (
            everything_http(log_dir=tmp_path) as url,
            run_router(tmp_path, {"everything": {"url": url}}) as handle,
        ):
            yield handle


class Recorder:
    """Client callbacks that answer like a user and an LLM would, and remember being asked."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.sampled: list[types.CreateMessageRequestParams] = []
        self.elicited: list[types.ElicitRequestParams] = []

    async def sampling(
        self, context: Any, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.sampled.append(params)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"answer from {self.label}"),
            model="test-model",
        )

    async def elicitation(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.elicited.append(params)
        return types.ElicitResult(action="accept", content={"name": f"user {self.label}", "check": True})


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_sampling_and_elicitation_reach_the_client_and_come_back(
    router: RouterHandle, mode: str
) -> None:
    user = Recorder("alice")
    async with Client(
        router.mcp_url, mode=mode, sampling_callback=user.sampling, elicitation_callback=user.elicitation
    ) as client:
        sampled = await client.call_tool(
            "everything__trigger-sampling-request", {"prompt": "capital of France?"}
        )
        assert not sampled.is_error, text_of(sampled)
        assert "answer from alice" in text_of(sampled)
        assert len(user.sampled) == 1
        asked = user.sampled[0].messages[0].content
        assert isinstance(asked, types.TextContent) and "capital of France?" in asked.text

        elicited = await client.call_tool("everything__trigger-elicitation-request", {})
        assert not elicited.is_error, text_of(elicited)
        assert "Name: user alice" in text_of(elicited)
        assert len(user.elicited) == 1
        assert "name" in (user.elicited[0].requested_schema or {}).get("properties", {})  # type: ignore[union-attr]


async def test_each_client_answers_its_own_question(router: RouterHandle) -> None:
    """Two clients sampling at once: each backend request goes to the client whose call caused it.

    Over HTTP the backend says which call asks (the request rides that call's stream). Over stdio
    nothing on the wire says so, but each call leases a child of its own (router.upstream.
    children), where the question can only be that call's."""
    alice, bob = Recorder("alice"), Recorder("bob")
    results: dict[str, str] = {}
    async with (
        Client(router.mcp_url, mode="legacy", sampling_callback=alice.sampling) as first,
        Client(router.mcp_url, mode="legacy", sampling_callback=bob.sampling) as second,
    ):

        async def call(name: str, client: Client) -> None:
            result = await client.call_tool("everything__trigger-sampling-request", {"prompt": f"for {name}"})
            results[name] = text_of(result)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "alice", first)
            tg.start_soon(call, "bob", second)
    for user in (alice, bob):
        for params in user.sampled:
            assert params.messages[0].content.text.endswith(f"for {user.label}")  # type: ignore[union-attr]
    for user in (alice, bob):
        assert f"answer from {user.label}" in results[user.label], results[user.label]
        assert len(user.sampled) == 1


async def test_a_client_without_the_capability_is_never_asked(router: RouterHandle) -> None:
    """The router declares sampling upstream, so the tool is listed, but a client that did not
    declare sampling gets an error instead of a request it cannot answer."""
    asked: list[Any] = []

    async def on_message(message: Any) -> None:
        asked.append(message)

    async with Client(router.mcp_url, mode="legacy", message_handler=on_message) as client:
        result = await client.call_tool("everything__trigger-sampling-request", {"prompt": "x"})
    assert result.is_error
    assert "did not declare the 'sampling' capability" in text_of(result)
    assert not [m for m in asked if isinstance(m, types.CreateMessageRequest)]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_long_running_progress_arrives_in_order_for_each_client(
    router: RouterHandle, mode: str
) -> None:
    """Two clients run the long operation at once; each sees only its own progress, in order."""
    seen: dict[str, list[float]] = {"a": [], "b": []}

    async def run(label: str, steps: int) -> None:
        async def progress(value: float, total: float | None, message: str | None) -> None:
            assert total == steps
            seen[label].append(value)

        async with Client(router.mcp_url, mode=mode) as client:
            result = await client.call_tool(
                "everything__trigger-long-running-operation",
                {"duration": 1, "steps": steps},
                progress_callback=progress,
            )
            assert not result.is_error, text_of(result)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "a", 4)
        tg.start_soon(run, "b", 5)
    assert seen["a"] == [1, 2, 3, 4]
    assert seen["b"] == [1, 2, 3, 4, 5]


async def test_roots_and_real_capabilities_reach_an_http_backend(tmp_path: Path) -> None:
    """A legacy client with capabilities gets its own upstream session on a legacy HTTP backend:
    the backend sees exactly that client's capabilities (server-everything offers its sampling
    tool only to clients that can sample), and asks for roots outside any call, which reaches the
    client on its GET stream and is answered through the router."""
    listed: list[int] = []

    async def roots(context: Any) -> types.ListRootsResult:
        listed.append(1)
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])

    with (
        everything_http(log_dir=tmp_path) as url,
        run_router(tmp_path, {"everything": {"url": url}}) as router,
    ):
        async with Client(router.mcp_url, mode="legacy", list_roots_callback=roots) as client:
            # The first call opens this client's own upstream session; server-everything then asks
            # for the roots on its own (outside any call, so on the client's GET stream).
            await client.call_tool("everything__echo", {"message": "hello"})
            with anyio.fail_after(15):
                while not listed:
                    await anyio.sleep(0.05)
            with anyio.fail_after(30):
                result = await client.call_tool("everything__get-roots-list", {})
            assert "file:///work/project" in text_of(result), text_of(result)
            assert listed
            # this client cannot sample, and the backend knows it: the tool does not exist for it
            refused = await client.call_tool("everything__trigger-sampling-request", {"prompt": "x"})
            assert refused.is_error and "not found" in text_of(refused).lower(), text_of(refused)
        # a client with sampling, on its own session, does get the tool
        user = Recorder("carol")
        async with Client(router.mcp_url, mode="legacy", sampling_callback=user.sampling) as client:
            sampled = await client.call_tool("everything__trigger-sampling-request", {"prompt": "y"})
            assert "answer from carol" in text_of(sampled)
