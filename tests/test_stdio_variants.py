"""A stdio backend sees each client's real capabilities: clients that declared sampling,
elicitation or roots lease a child of the server started with exactly those capabilities.

server-everything (npm, over stdio) registers `trigger-sampling-request` only for a client that
can sample, `trigger-elicitation-request` only for one that can elicit, and asks for roots on its
own after the handshake. The tests look at the router's child processes (by parent PID) to check
that children are started per capability set, bounded, stopped when idle, when a roots client's
session ends and when the router stops, and replaced when one dies.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, types
from mcp.shared.exceptions import MCPError

from router.up.processes import alive, children
from tests.conftest import RouterHandle, run_router
from tests.support.procs import everything_stdio_entry
from tests.support.waits import eventually
from tests.test_relay import Recorder, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.npm]

SAMPLING_TOOL = "everything__trigger-sampling-request"
ELICITATION_TOOL = "everything__trigger-elicitation-request"


def children_of(pid: int) -> set[int]:
    """PIDs of the live processes whose parent is `pid` (zombies excluded)."""
    return {child for child in children(pid) if alive(child)}


def sampler(router: RouterHandle, label: str = "carol") -> tuple[Recorder, Client]:
    """A legacy client of `router` that can sample, answering as `label`; and what it was asked."""
    user = Recorder(label)
    return user, Client(router.mcp_url, mode="legacy", sampling_callback=user.sampling)


async def elicit_without_sampling(router: RouterHandle, mode: str, user: Recorder) -> None:
    """A client that can elicit but not sample: the backend hides the sampling tool from it (it
    saw the client's capabilities) and asks it to elicit."""
    async with Client(router.mcp_url, mode=mode, elicitation_callback=user.elicitation) as client:
        refused = await client.call_tool(SAMPLING_TOOL, {"prompt": "x"})
        assert refused.is_error and "not found" in text_of(refused).lower(), text_of(refused)
        elicited = await client.call_tool(ELICITATION_TOOL, {})
        assert f"Name: user {user.label}" in text_of(elicited), text_of(elicited)
    assert not user.sampled and len(user.elicited) == 1


@pytest.fixture
def router(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RouterHandle]:
    env = getattr(request, "param", {})
    with run_router(tmp_path, {"everything": everything_stdio_entry()}, env=env) as handle:
        yield handle


async def test_each_client_sees_the_tools_its_capabilities_unlock(router: RouterHandle) -> None:
    """A client that can sample gets the sampling tool and is asked; one that can only elicit
    does not have it at all (the backend saw its capabilities); a client that declared nothing
    takes the main child, where the router refuses for it, and is never asked."""
    pid = router.process.pid
    main = children_of(pid)
    assert len(main) == 1, main

    carol, sampling = sampler(router)
    async with sampling as client:
        sampled = await client.call_tool(SAMPLING_TOOL, {"prompt": "hello"})
        assert "answer from carol" in text_of(sampled), text_of(sampled)
        assert len(carol.sampled) == 1
        # no elicitation capability: this child does not offer the elicitation tool
        hidden = await client.call_tool(ELICITATION_TOOL, {})
        assert hidden.is_error and "not found" in text_of(hidden).lower(), text_of(hidden)
        assert not carol.elicited
    assert len(children_of(pid)) == 2  # the main child and the {sampling} one

    dave = Recorder("dave")
    await elicit_without_sampling(router, "legacy", dave)
    assert len(children_of(pid)) == 3

    asked: list[Any] = []

    async def on_message(message: Any) -> None:
        asked.append(message)

    async with Client(router.mcp_url, mode="legacy", message_handler=on_message) as client:
        plain = await client.call_tool(SAMPLING_TOOL, {"prompt": "x"})
        echoed = await client.call_tool("everything__echo", {"message": "plain"})
    assert plain.is_error and "did not declare the 'sampling' capability" in text_of(plain), text_of(plain)
    assert "plain" in text_of(echoed)
    assert not [m for m in asked if isinstance(m, types.CreateMessageRequest)]
    assert len(children_of(pid)) == 3  # a client without those capabilities starts no child
    assert main <= children_of(pid)  # and the main child kept serving throughout


async def test_a_2026_client_is_seen_with_its_capabilities_too(router: RouterHandle) -> None:
    """A 2026-07-28 client's call to a legacy stdio server is parked (the router answers the
    server's questions from the client's retries); it runs on a child declaring the client's
    capabilities, and the answers go back to that child."""
    pid = router.process.pid
    main = children_of(pid)
    gina = Recorder("gina")
    await elicit_without_sampling(router, "2026-07-28", gina)
    assert len(children_of(pid) - main) == 1


@pytest.mark.parametrize("router", [{"TOOLMESH_STDIO_VARIANTS": "1"}], indirect=True)
async def test_a_question_on_a_shared_child_is_refused_not_guessed(router: RouterHandle) -> None:
    """With one child allowed, a second client of the same capabilities shares the busy child.
    A question asked while both calls are in flight names neither call over stdio, so the
    router refuses it with a clear error and asks nobody; the other call is unaffected."""
    (alice, sampling_a), (bob, sampling_b) = sampler(router, "alice"), sampler(router, "bob")
    results: dict[str, types.CallToolResult] = {}
    async with sampling_a as first, sampling_b as second:
        warm = await first.call_tool("everything__echo", {"message": "start the child"})
        assert not warm.is_error

        async def long_call() -> None:
            results["long"] = await first.call_tool(
                "everything__trigger-long-running-operation", {"duration": 4, "steps": 2}
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(long_call)
            await anyio.sleep(1.0)  # the long call holds the only child
            results["ask"] = await second.call_tool(SAMPLING_TOOL, {"prompt": "whose?"})
    assert not results["long"].is_error, text_of(results["long"])
    refused = text_of(results["ask"])
    assert results["ask"].is_error, refused
    assert "2 calls are in flight on this stdio server" in refused, refused
    assert not alice.sampled and not bob.sampled
    assert len(children_of(router.process.pid)) == 2  # bounded: the main child and one more


@pytest.mark.parametrize("router", [{"TOOLMESH_STDIO_VARIANT_IDLE": "1"}], indirect=True)
async def test_a_child_nobody_uses_stops(router: RouterHandle) -> None:
    pid = router.process.pid
    main = children_of(pid)
    _, sampling = sampler(router)
    async with sampling as client:
        await client.call_tool(SAMPLING_TOOL, {"prompt": "hello"})
        assert len(children_of(pid)) == 2
        await eventually(lambda: children_of(pid) == main, 15, "the idle child to stop")
        again = await client.call_tool(SAMPLING_TOOL, {"prompt": "again"})  # a new one starts
        assert "answer from carol" in text_of(again), text_of(again)
    assert len(children_of(pid)) == 2


async def test_a_roots_client_has_a_child_of_its_own_until_its_session_ends(router: RouterHandle) -> None:
    """Roots are one client's data (server-everything keeps them per session and asks for them
    outside any call), so a roots client's child serves it alone, and stops with its session."""
    pid = router.process.pid
    main = children_of(pid)
    own: dict[str, set[int]] = {}
    for label in ("erin", "frank"):
        listed: list[int] = []

        async def roots(
            context: Any, label: str = label, listed: list[int] = listed
        ) -> types.ListRootsResult:
            listed.append(1)
            return types.ListRootsResult(roots=[types.Root(uri=f"file:///work/{label}", name=label)])

        async with Client(router.mcp_url, mode="legacy", list_roots_callback=roots) as client:
            # The first call starts this client's child; 350 ms after the handshake the server
            # asks for roots on its own, outside any call: that reaches the client's GET stream.
            await client.call_tool("everything__echo", {"message": "hello"})
            await eventually(lambda listed=listed: bool(listed), 15, "the server to ask for roots")
            result = await client.call_tool("everything__get-roots-list", {})
            assert f"file:///work/{label}" in text_of(result), text_of(result)
            own[label] = children_of(pid) - main
            assert len(own[label]) == 1
        await eventually(lambda label=label: not any(map(alive, own[label])), 15, "the roots child to stop")
    assert own["erin"] != own["frank"]  # the second client did not get the first one's child


async def test_a_dead_child_is_replaced_and_the_main_child_stays(router: RouterHandle) -> None:
    pid = router.process.pid
    main = children_of(pid)
    carol, sampling = sampler(router)
    async with sampling as client:
        await client.call_tool(SAMPLING_TOOL, {"prompt": "one"})
        (variant,) = children_of(pid) - main
        os.kill(variant, signal.SIGKILL)
        # Once the router has seen the exit (a call sent in the moment before it does fails with
        # the exit reason, as on the main child), the next call gets a new child.
        await eventually(
            lambda: "code=-9" in router.process.log_path.read_text(), 10, "the router to see the exit"
        )
        again = await client.call_tool(SAMPLING_TOOL, {"prompt": "two"})
        assert "answer from carol" in text_of(again), text_of(again)
        assert len(carol.sampled) == 2
    assert main <= children_of(pid)  # the main child was not restarted
    assert len(children_of(pid) - main) == 1


async def test_no_child_outlives_the_router(tmp_path: Path) -> None:
    """server-everything exits when its input ends, which would hide a router that never stops
    its children: here each child is a shell that outlives the server's exit (it then sleeps),
    so only the router ending the child's process group ends it."""
    entry = everything_stdio_entry()
    stubborn = {
        "command": "sh",
        "args": ["-c", '"$0" "$@"; exec sleep 600', entry["command"], *entry["args"]],
    }
    with run_router(tmp_path, {"everything": stubborn}) as router:
        pid = router.process.pid
        _, sampling = sampler(router)
        async with (
            sampling as client,
            anyio.create_task_group() as tg,  # two calls at once: two children of one group
        ):
            for prompt in ("a", "b"):
                tg.start_soon(client.call_tool, SAMPLING_TOOL, {"prompt": prompt})
        started = children_of(pid)
        assert len(started) == 3, started
        router.process.stop()
        await eventually(lambda: not any(alive(child) for child in started), 15, "every child to stop")


@pytest.mark.parametrize(
    "router", [{"TOOLMESH_MAX_CONCURRENCY": "1", "TOOLMESH_MAX_QUEUE": "0"}], indirect=True
)
async def test_calls_on_children_count_against_the_instances_concurrency(router: RouterHandle) -> None:
    """The instance's slots are taken before a child is leased: a call on a child is one of the
    instance's calls in flight, whichever child (or the main one) serves it."""
    carol, sampling = sampler(router)
    results: list[types.CallToolResult] = []
    async with sampling as client:

        async def long_call() -> None:
            results.append(
                await client.call_tool(
                    "everything__trigger-long-running-operation", {"duration": 3, "steps": 1}
                )
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(long_call)
            await eventually(lambda: len(children_of(router.process.pid)) == 2, 20, "the child to start")
            await anyio.sleep(0.5)
            with pytest.raises(MCPError, match="1 calls in flight and 0 waiting"):
                await client.call_tool(SAMPLING_TOOL, {"prompt": "no room"})
    assert not carol.sampled
    assert not results[0].is_error, text_of(results[0])


async def test_children_go_with_the_main_child_and_come_back(router: RouterHandle) -> None:
    """When the main child dies the backend reconnects (with its backoff); the children of the
    old connection are stopped with it, and a capable client's next call starts a new one."""
    pid = router.process.pid
    (main,) = children_of(pid)
    _, sampling = sampler(router)
    async with sampling as client:
        await client.call_tool(SAMPLING_TOOL, {"prompt": "one"})
        (variant,) = children_of(pid) - {main}
        os.kill(main, signal.SIGKILL)
        await eventually(lambda: not alive(variant), 15, "the child to stop with the connection")
        await eventually(lambda: len(children_of(pid)) == 1, 20, "the main child to be restarted")
        (restarted,) = children_of(pid)
        assert restarted != main
        deadline = time.monotonic() + 20
        while True:  # "reconnecting" until the new main child is ready
            try:
                again = await client.call_tool(SAMPLING_TOOL, {"prompt": "two"})
                break
            except MCPError as exc:
                if "reconnecting" not in str(exc) or time.monotonic() > deadline:
                    raise
            await anyio.sleep(0.2)
        assert "answer from carol" in text_of(again), text_of(again)
    assert len(children_of(pid)) == 2
