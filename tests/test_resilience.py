"""Breakers, balancing and retries end to end: a real router over several real sample instances.

Faults are real: an instance is killed (SIGTERM), hung (SIGSTOP: connections are accepted by the
kernel, nothing answers), or crashes itself in the middle of a call (the `crash` tool).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from mcp import Client

from router.up.processes import ManagedProcess
from tests.conftest import RouterHandle, run_router
from tests.guard_support import guarded_env
from tests.support.mcp_http import rpc, tool_names
from tests.support.mcpcall import call_tool, text_of
from tests.support.procs import sample_server_http, sample_server_stdio_entry
from tests.support.waits import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@contextlib.contextmanager
def instances(tmp: Path, count: int) -> Iterator[list[tuple[str, ManagedProcess]]]:
    """`count` copies of the sample server `svc` over HTTP."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(sample_server_http("svc", log_dir=tmp)) for _ in range(count)]


def entry(urls: list[str], **extra: Any) -> dict[str, Any]:
    return {"instances": [{"url": url, "id": f"i{n}"} for n, url in enumerate(urls)], **extra}


def readyz(router: RouterHandle) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"{router.base_url}/readyz", timeout=5) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        return dict(json.loads(error.read()))


def metrics(router: RouterHandle) -> str:
    with urllib.request.urlopen(f"{router.base_url}/metrics", timeout=5) as response:
        return str(response.read().decode())


async def test_a_killed_instance_is_skipped_and_no_call_is_lost(tmp_path: Path) -> None:
    with (
        instances(tmp_path, 3) as running,
        run_router(tmp_path, {"svc": entry([u for u, _ in running])}) as router,
    ):
        pids = {str(process.pid) for _, process in running}
        async with aiohttp.ClientSession() as http:
            seen = {text_of(await call_tool(http, router.mcp_url, "svc__whoami", {})) for _ in range(30)}
            assert seen == pids, "power-of-two choices should reach every instance"
        # A 2025 session sticks to the instance it used first (affinity).
        async with Client(router.mcp_url, mode="legacy") as client:
            pinned = {str((await client.call_tool("svc__whoami", {})).content[0].text) for _ in range(10)}  # type: ignore[union-attr]
        assert len(pinned) == 1
        async with aiohttp.ClientSession() as http:
            victim = running[1][1]
            victim.stop()
            # `add` is not idempotent: it may only move to another instance because the
            # connection to the dead one was refused, i.e. the request never reached it.
            replies = [await call_tool(http, router.mcp_url, "svc__add", {"a": n, "b": 1}) for n in range(30)]
            assert [r["result"]["structuredContent"]["sum"] for r in replies] == [n + 1 for n in range(30)]
            after = {text_of(await call_tool(http, router.mcp_url, "svc__whoami", {})) for _ in range(20)}
            assert after == pids - {str(victim.pid)}
        detail = readyz(router)["backends"]
        assert detail["svc/i1"]["state"] != "ready"
        assert detail["svc/i0"]["state"] == detail["svc/i2"]["state"] == "ready"


async def test_a_hanging_instance_trips_its_breaker_and_safe_tools_retry_elsewhere(tmp_path: Path) -> None:
    env = {"TOOLMESH_BREAKER_FAILURES": "2", "TOOLMESH_BREAKER_RESET": "60"}
    with instances(tmp_path, 2) as running:
        urls = [url for url, _ in running]
        servers = {
            "plain": entry(urls, tools={"echo": {"timeout": 1}}),
            "safe": entry(urls, tools={"echo": {"timeout": 1, "retry": "safe"}}),
        }
        with run_router(tmp_path, servers, env=env) as router:
            hung = running[1][1]
            os.kill(hung.pid, signal.SIGSTOP)
            try:
                async with aiohttp.ClientSession() as http:
                    # Declared safe: a timeout on the hung instance is retried on the other one.
                    for n in range(6):
                        reply = await call_tool(http, router.mcp_url, "safe__echo", {"text": str(n)})
                        assert text_of(reply) == f"svc:{n}"
                    # Not declared safe: timeouts reach the client until the breaker opens.
                    errors = []
                    for n in range(14):
                        reply = await call_tool(http, router.mcp_url, "plain__echo", {"text": str(n)})
                        if "error" in reply:
                            errors.append(reply["error"])
                    assert len(errors) == 2, errors
                    assert all(e["message"] == "server 'plain' did not answer within 1 s" for e in errors)
                    started = time.monotonic()
                    for _ in range(10):
                        assert text_of(await call_tool(http, router.mcp_url, "plain__echo", {"text": "x"}))
                    assert time.monotonic() - started < 5, "calls should no longer wait on the hung instance"
            finally:
                os.kill(hung.pid, signal.SIGCONT)
            assert 'toolmesh_breaker_state{instance="i1",server="plain"} 2.0' in metrics(router)
            breaker = readyz(router)["backends"]["plain/i1"]
            assert breaker["breaker"] == "open" and breaker["retry_in"] > 30


async def test_an_open_breaker_fails_fast_and_half_open_lets_exactly_one_call_through(tmp_path: Path) -> None:
    env = {"TOOLMESH_BREAKER_FAILURES": "2", "TOOLMESH_BREAKER_RESET": "2"}
    with instances(tmp_path, 1) as running:
        servers = {"svc": {"url": running[0][0], "tools": {"slow": {"timeout": 0.5}}}}
        with run_router(tmp_path, servers, env=env) as router:
            async with aiohttp.ClientSession() as http:
                for _ in range(2):
                    reply = await call_tool(http, router.mcp_url, "svc__slow", {"seconds": 3})
                    assert reply["error"]["code"] == -32002
                started = time.monotonic()
                reply = await call_tool(http, router.mcp_url, "svc__echo", {"text": "x"})
                assert time.monotonic() - started < 0.5
                error = reply["error"]
                assert error["code"] == -32001
                assert error["message"].startswith("server 'svc' is unavailable: circuit open")
                assert "next trial in" in error["message"]
                assert 0 < error["data"]["retryAfter"] <= 2
                await anyio.sleep(error["data"]["retryAfter"] + 0.3)

                replies: list[dict[str, Any]] = []

                async def one() -> None:
                    replies.append(await call_tool(http, router.mcp_url, "svc__slow", {"seconds": 0.3}))

                async with anyio.create_task_group() as tg:
                    for _ in range(5):
                        tg.start_soon(one)
                passed = [r for r in replies if "result" in r]
                refused = [r for r in replies if "error" in r]
                assert len(passed) == 1 and text_of(passed[0]) == "done"
                assert len(refused) == 4
                assert all("circuit open" in r["error"]["message"] for r in refused)
                # The trial succeeded: the breaker is closed again.
                for _ in range(3):
                    assert (
                        text_of(await call_tool(http, router.mcp_url, "svc__echo", {"text": "y"})) == "svc:y"
                    )
            assert 'toolmesh_breaker_state{instance="svc",server="svc"} 0.0' in metrics(router)


async def test_a_non_idempotent_call_that_was_sent_is_never_retried(tmp_path: Path) -> None:
    with (
        instances(tmp_path, 2) as running,
        run_router(tmp_path, {"svc": entry([u for u, _ in running])}) as router,
    ):
        async with aiohttp.ClientSession() as http:
            reply = await call_tool(http, router.mcp_url, "svc__crash", {})
        assert reply["error"]["code"] == -32001
        assert "server 'svc'" in reply["error"]["message"]
        await anyio.sleep(0.5)
        alive = [process.is_running() for _, process in running]
        assert sorted(alive) == [False, True], "the crash must have reached exactly one instance"


async def test_breaker_transitions_reach_other_replicas_as_hints(tmp_path: Path) -> None:
    """Two replicas' boards on one real NATS: an open on one makes the other prefer siblings."""
    from router.cluster.hints import NatsHints
    from router.cluster.link import NatsLink
    from router.upstream.breaker import BreakerBoard
    from tests.support.cluster import nats_server

    with nats_server(tmp_path) as server:
        links = [NatsLink(server.url), NatsLink(server.url)]
        buses = [NatsHints(link) for link in links]
        boards = [BreakerBoard(bus) for bus in buses]
        async with contextlib.AsyncExitStack() as running:
            for link, bus in zip(links, buses, strict=True):
                await running.enter_async_context(bus)
                await running.enter_async_context(link)
            with anyio.fail_after(10):
                while not all(bus._subscribed for bus in buses):
                    await anyio.sleep(0.05)
            boards[0].transition("svc", "i1", "open", 30.0)
            with anyio.fail_after(5):
                while not boards[1].hinted_open("svc", "i1"):
                    await anyio.sleep(0.02)
            assert not boards[0].hinted_open("svc", "i1"), "a replica ignores its own hints"
            boards[0].transition("svc", "i1", "closed", 0.0)
            with anyio.fail_after(5):
                while boards[1].hinted_open("svc", "i1"):
                    await anyio.sleep(0.02)


async def test_concurrency_slots_queue_then_refuse() -> None:
    from router.errors import BackendBusy
    from router.upstream.balancer import Slots

    slots = Slots("svc", limit=1, queue=1, queue_timeout=0.3)
    await slots.acquire()
    outcomes: list[str] = []

    async def waiter() -> None:
        try:
            await slots.acquire()
            outcomes.append("got a slot")
        except BackendBusy as exc:
            outcomes.append(exc.message)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(0.05)
        with pytest.raises(BackendBusy, match="1 calls in flight and 1 waiting"):
            await slots.acquire()  # the queue's one place is taken
    assert outcomes == ["server 'svc' is unavailable: no free slot within 0.3 s (1 calls in flight)"]
    slots.release()
    await slots.acquire()  # free again


async def test_a_full_instance_answers_busy_at_once(tmp_path: Path) -> None:
    with instances(tmp_path, 1) as running:
        servers = {"svc": {"url": running[0][0], "max_concurrency": 1, "max_queue": 0}}
        with run_router(tmp_path, servers) as router:
            async with aiohttp.ClientSession() as http, anyio.create_task_group() as tg:
                tg.start_soon(call_tool, http, router.mcp_url, "svc__slow", {"seconds": 1.5})
                await anyio.sleep(0.5)
                started = time.monotonic()
                reply = await call_tool(http, router.mcp_url, "svc__echo", {"text": "x"})
                assert time.monotonic() - started < 0.5
            assert reply["error"]["code"] == -32003
            assert "1 calls in flight and 0 waiting (the queue is full)" in reply["error"]["message"]


async def test_a_legacy_session_keeps_its_instance_on_every_replica(tmp_path: Path) -> None:
    """Affinity is saved with the session in NATS: a session continued on another replica
    reaches the instance it used first (3 instances, 6 sessions: chance alone would agree with
    probability 3^-6)."""
    from tests.support.cluster import McpHttp, cluster

    with (
        instances(tmp_path, 3) as running,
        cluster(tmp_path, {"svc": entry([u for u, _ in running])}, replicas=2) as group,
    ):
        first, second = (replica.mcp_url for replica in group.replicas)
        async with aiohttp.ClientSession() as http:
            sessions = [McpHttp(http) for _ in range(6)]
            pinned: list[str] = []
            for session in sessions:
                await session.initialize(first)
                seen = {
                    (await session.request(first, "tools/call", {"name": "svc__whoami"})).result["content"][
                        0
                    ]["text"]
                    for _ in range(3)
                }
                assert len(seen) == 1, "a session sticks to one instance on its replica"
                pinned.extend(seen)
            await anyio.sleep(0.5)  # the record is written after the reply; let it land
            for session, pid in zip(sessions, pinned, strict=True):
                for _ in range(3):
                    reply = await session.request(second, "tools/call", {"name": "svc__whoami"})
                    assert reply.result["content"][0]["text"] == pid


async def test_a_list_the_backend_refuses_is_left_out_not_the_backend(tmp_path: Path) -> None:
    """A server whose resources/list fails (it cannot reach the service its resources live in)
    while its tools list fine: the router serves its tools, lists no resources of it, warns, and
    asks again until the list comes back. Before, the whole server was unavailable."""
    down = tmp_path / "cms-is-down"
    down.write_text("")
    cms = sample_server_stdio_entry("cms")
    cms["args"] = [*cms["args"], "--refuse-resources-while", str(down)]
    with run_router(tmp_path, {"cms": cms}) as router:
        assert any(
            name.endswith("echo") for name in wait_until(lambda: tool_names(router.mcp_url), 10, "tools")
        )
        reply = rpc(router.mcp_url, "resources/list")
        assert reply["result"]["resources"] == [], reply
        assert "a list the backend refused is left out" in router.process.log_text()
        assert readyz(router)["backends"]["cms"]["refused"] == ["resources/list"]  # an operator sees it
        echo = next(name for name in tool_names(router.mcp_url) if name.endswith("echo"))
        called = rpc(router.mcp_url, "tools/call", {"name": echo, "arguments": {"text": "hi"}}, name=echo)
        assert not called["result"].get("isError"), called
        down.unlink()  # the service is back: the refused list is asked again (after 2 s, then 4 s ...)

        def resources() -> list[str]:
            return [r["uri"] for r in rpc(router.mcp_url, "resources/list")["result"]["resources"]]

        listed = wait_until(resources, 15, "the resources listed again")
        assert any(uri.endswith("mem://cms/hello") for uri in listed), listed
        assert "a refused list is served again" in router.process.log_text()
        assert "refused" not in readyz(router)["backends"]["cms"]


def test_the_console_shows_an_instance_s_refused_lists(tmp_path: Path) -> None:
    """The operator's console marks the instance whose resources/list is refused, under its
    health, as /readyz and `toolmesh status` do; the mark goes once the list is served again."""
    down = tmp_path / "cms-is-down"
    down.write_text("")
    cms = sample_server_stdio_entry("cms")
    cms["args"] = [*cms["args"], "--refuse-resources-while", str(down)]
    keys, env = guarded_env(tmp_path, {"ops": ["admin"]}, {"default": "allow"})
    with run_router(tmp_path, {"cms": cms}, env=env) as router:

        def live() -> str:
            request = urllib.request.Request(
                f"{router.base_url}/console/live", headers={"Authorization": f"Bearer {keys['ops']}"}
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                return str(response.read().decode())

        shown = wait_until(lambda: "lists refused" in live() and live(), 10, "the refused list shown")
        row = next(r for r in shown.split("<tr") if 'data-server="cms"' in r)
        assert "lists refused: resources/list" in row, row
        down.unlink()
        wait_until(lambda: "lists refused" not in live(), 15, "the mark gone once the list is served")


async def test_a_stdio_server_slower_to_start_than_the_connect_timeout_comes_up(tmp_path: Path) -> None:
    """A child that needs longer than `connect_timeout` to answer its handshake (many children
    starting at once on a small machine) is given twice as long on each try, up to eight
    times, instead of being restarted at the same deadline forever."""
    slow = sample_server_stdio_entry("slow")
    slow["args"] = [*slow["args"], "--start-delay", "2.5"]
    env = {"TOOLMESH_CONNECT_TIMEOUT": "1", "TOOLMESH_RECONNECT_MIN": "0.1"}
    with run_router(tmp_path, {"slow": slow}, env=env) as router:
        names = wait_until(lambda: tool_names(router.mcp_url), 30, "the slow server's tools")
        assert any(name.endswith("echo") for name in names)
        log = router.process.log_text()
        assert "no answer within the connect timeout" in log  # it did outlast the first wait
