"""The pool of a stdio backend's extra children (router.upstream.children), driven directly with
real child processes: the sample server for children that start, a command that exits at once
for children that cannot."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from router.upstream.children import Children, ChildSpec
from router.upstream.stdio import StdioChannel
from tests.support.procs import REPO_ROOT

pytestmark = pytest.mark.anyio

SAMPLE = ("-m", "tests.servers.sample", "--name", "kids", "--transport", "stdio")
FAILING = ("-c", "import sys; sys.exit(3)")
SAMPLING = ChildSpec("client-a", {"sampling": {}})
ELICITING = ChildSpec("client-b", {"elicitation": {}})


def channels(args: tuple[str, ...], made: list[StdioChannel]) -> Callable[[], StdioChannel]:
    def make() -> StdioChannel:
        channel = StdioChannel("kids", sys.executable, args, {}, str(REPO_ROOT))
        made.append(channel)
        return channel

    return make


@asynccontextmanager
async def pool(args: tuple[str, ...], made: list[StdioChannel], **options: float) -> AsyncIterator[Children]:
    children = Children(
        "kids",
        channels(args, made),
        protocol="legacy",
        connect_timeout=20,
        limit=int(options.get("limit", 2)),
        idle_timeout=options.get("idle", 60),
        backoff_min=options.get("backoff_min", 0.5),
        backoff_max=options.get("backoff_max", 2),
    )
    async with anyio.create_task_group() as tg:
        children.attach(tg)
        try:
            yield children
        finally:
            await children.close_all()
            tg.cancel_scope.cancel()


async def test_a_child_that_cannot_start_makes_the_pool_back_off() -> None:
    """A failed start sends the call to the main child, and no other start is tried until the
    backoff (doubling) has passed: a broken command does not spawn a process per call."""
    made: list[StdioChannel] = []
    async with pool(FAILING, made, backoff_min=0.5, backoff_max=2) as children:
        async with children.lease(SAMPLING) as session:
            assert session is None
        assert len(made) == 1 and len(children) == 0
        for _ in range(5):
            async with children.lease(SAMPLING) as session:
                assert session is None
        assert len(made) == 1  # backing off
        await anyio.sleep(0.7)
        async with children.lease(SAMPLING) as session:
            assert session is None
        assert len(made) == 2
        await anyio.sleep(0.7)  # the delay doubled to 1 s: still backing off
        async with children.lease(SAMPLING) as session:
            assert session is None
        assert len(made) == 2
    assert not any(channel.alive for channel in made)


async def test_children_are_leased_per_group_bounded_and_the_least_recently_used_idle_one_goes() -> None:
    made: list[StdioChannel] = []
    async with pool(SAMPLE, made, limit=1) as children:
        async with children.lease(SAMPLING) as first:
            assert first is not None and first.client_capabilities == {"sampling": {}}
            # the only place is taken by a busy child of another group: the main child serves
            async with children.lease(ELICITING) as other:
                assert other is None
            # the same group shares the busy child rather than going without
            async with children.lease(ChildSpec("client-c", {"sampling": {}})) as shared:
                assert shared is first
        async with children.lease(SAMPLING) as again:  # idle now: reused, not restarted
            assert again is first
        assert len(made) == 1
        async with children.lease(ELICITING) as second:  # evicts the idle {sampling} child
            assert second is not None and second.client_capabilities == {"elicitation": {}}
        assert len(made) == 2 and len(children) == 1
        with anyio.fail_after(10):
            await made[0].exited.wait()
        reply = await second.request("tools/list", None, 20)
        assert reply["result"]["tools"]
    assert not any(channel.alive for channel in made)


async def test_a_group_at_the_limit_shares_its_busy_child_and_leaves_other_groups_theirs() -> None:
    """A second concurrent call of a group that has a child, with no free place, shares that
    child: it does not close another group's idle child to start one more (which, under steady
    calls from several groups, restarted children all the time while calls waited for them)."""
    made: list[StdioChannel] = []
    async with pool(SAMPLE, made, limit=2) as children:
        async with children.lease(ELICITING) as other:
            assert other is not None
        async with children.lease(SAMPLING) as first:
            assert first is not None
            async with children.lease(ChildSpec("client-c", {"sampling": {}})) as second:
                assert second is first
        assert len(made) == 2 and len(children) == 2
        async with children.lease(ELICITING) as again:  # still there, not restarted
            assert again is other
        assert len(made) == 2
    assert not any(channel.alive for channel in made)


async def test_a_roots_client_gets_children_of_its_own() -> None:
    made: list[StdioChannel] = []
    async with pool(SAMPLE, made, limit=3) as children:
        async with children.lease(ChildSpec("erin", {"roots": {}})) as erin:
            assert erin is not None
        async with children.lease(ChildSpec("frank", {"roots": {}})) as frank:
            assert frank is not None and frank is not erin
        assert len(children) == 2
        await children.forget("erin")
        with anyio.fail_after(10):
            await made[0].exited.wait()
        assert len(children) == 1


async def test_clients_that_differ_only_in_data_no_server_tailors_to_share_one_child() -> None:
    """A client that changes its experimental capabilities (or adds keys the spec does not
    define) on every request used to start a process per request, evicting other clients'
    idle children; the child declares only what a server tailors its offer to."""
    made: list[StdioChannel] = []
    async with pool(SAMPLE, made, limit=2) as children:
        async with children.lease(ELICITING) as other:
            assert other is not None
        for n in range(6):
            capabilities = {"sampling": {"tools": {"n": n}, f"x{n}": {}}, "experimental": {"nonce": n}}
            async with children.lease(ChildSpec(f"client-{n}", capabilities)) as child:
                assert child is not None
                assert child.client_capabilities == {"sampling": {"tools": {}}}
        assert len(made) == 2  # one child for all six, and the other group's idle child kept
        async with children.lease(ELICITING) as again:
            assert again is other
    assert not any(channel.alive for channel in made)
