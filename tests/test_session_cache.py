"""Each replica holds only the sessions it uses: a bounded cache over the shared bucket.

Replicas here are `NatsSessionStore`s on their own NATS connections to a real nats-server (as
`app.py` builds them with `--nats`), one with a small cache. What the cache must never change:
every session is served correctly by every replica, a deletion anywhere is seen everywhere, and
a record the bucket no longer has (deleted, or aged out) is never served from a cached copy.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest

from router.cluster.link import NatsLink
from router.cluster.sessions import RECENT, NatsSessionStore
from router.state.sessions import SessionIds, SessionRecord
from tests.support.cluster import NatsServer, nats_server

pytestmark = pytest.mark.anyio

KEY = secrets.token_bytes(32)
SMALL = 4  # the small replica's cache


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path) as server:
        yield server


async def _stores(
    stack: AsyncExitStack, nats: NatsServer, capacities: list[int], idle_timeout: float = 60
) -> list[NatsSessionStore]:
    prefix = f"t{secrets.token_hex(2)}"
    stores = []
    for capacity in capacities:
        link = NatsLink(nats.url, prefix=prefix)
        store = NatsSessionStore(link, SessionIds(KEY), idle_timeout=idle_timeout, capacity=capacity)
        for service in (store, link):  # the link last: its first "up" reaches the store
            await stack.enter_async_context(service)
        stores.append(store)
    with anyio.fail_after(5):
        for store in stores:
            await store.ready.wait()
    return stores


@pytest.fixture
async def stores(nats: NatsServer) -> AsyncIterator[list[NatsSessionStore]]:
    """A replica with a large cache (where sessions start), one with a small one, and a third."""
    async with AsyncExitStack() as stack:
        yield await _stores(stack, nats, [1000, SMALL, 1000])


async def _new(store: NatsSessionStore, name: str) -> str:
    record = SessionRecord(id=store.ids.new(), protocol_version="2025-11-25", client_info={"name": name})
    await store.create(record)
    return record.id


async def test_a_replica_with_a_cache_of_n_serves_n_plus_k_sessions_correctly(
    stores: list[NatsSessionStore],
) -> None:
    big, small, _ = stores
    sessions = {await _new(big, f"client-{n}"): f"client-{n}" for n in range(SMALL + 6)}
    for _ in range(2):  # the second round finds every session evicted by the first: re-fetched
        for session_id, name in sessions.items():
            session = await small.load(session_id)
            assert session is not None and session.record.client_info == {"name": name}
            assert len(small) <= SMALL
    assert small.evicted == 2 * len(sessions) - SMALL
    # the held ones are the most recently used, and are served without a fetch
    held = list(sessions)[-SMALL:]
    assert sorted(s.record.id for s in small.all()) == sorted(held)
    assert all(small.get(session_id) is not None for session_id in held)


async def test_an_evicted_session_is_fetched_again_with_the_latest_record(
    stores: list[NatsSessionStore],
) -> None:
    big, small, _ = stores
    first = await _new(big, "first")
    assert await small.load(first) is not None
    for n in range(SMALL):  # pushes `first` out of the small cache
        assert await small.load(await _new(big, f"other-{n}")) is not None
    assert small.get(first) is None
    on_big = big.get(first)
    assert on_big is not None
    on_big.record.log_level = "debug"  # changed while the small replica did not hold it
    await big.save(on_big)
    again = await small.load(first)
    assert again is not None and again.record.log_level == "debug"
    # a write from the replica that evicted it earlier still lands (compare-and-set on revision)
    again.record.subscriptions.append("file:///a")
    await small.save(again)
    with anyio.fail_after(5):
        while on_big.record.subscriptions != ["file:///a"]:  # the big replica's watch follows
            await anyio.sleep(0.01)


async def test_a_deletion_reaches_a_replica_that_holds_the_session(stores: list[NatsSessionStore]) -> None:
    big, small, third = stores
    session_id = await _new(big, "gone")
    held = await small.load(session_id)
    assert held is not None
    inbox = held.open_stream()
    assert await third.delete(session_id)
    with anyio.fail_after(5):
        async for _ in inbox:  # the stream closes when the small replica's watch sees the delete
            pass
    assert small.get(session_id) is None
    assert await small.load(session_id) is None
    with anyio.fail_after(5):
        while big.get(session_id) is not None:
            await anyio.sleep(0.01)


async def test_a_replica_that_never_saw_a_session_serves_it_and_holds_nothing_else(
    stores: list[NatsSessionStore],
) -> None:
    big, small, third = stores
    created = [await _new(big, f"c{n}") for n in range(20)]
    await anyio.sleep(0.2)  # the watch has delivered every create to every replica by now
    assert len(third) == 0 and not third._tokens  # none held: it serves none of them
    session = await third.load(created[7])
    assert session is not None and session.record.client_info == {"name": "c7"}
    assert len(third) == 1
    assert await small.load(third.ids.new()) is None  # valid but unknown id
    deleted = await _new(big, "deleted")
    assert await big.delete(deleted)
    await anyio.sleep(0.2)
    assert await third.load(deleted) is None  # the watch's delete forgot the create it had kept


async def test_records_kept_of_sessions_not_held_are_bounded(stores: list[NatsSessionStore]) -> None:
    """What the watch keeps of the records other replicas just wrote (so that a first request
    after `initialize` elsewhere is a decode) stays within a fixed count, whatever the cluster."""
    big, _, third = stores
    for n in range(RECENT + 100):
        await _new(big, f"r{n}")
    await anyio.sleep(0.5)
    assert len(third._recent) == RECENT and len(third) == 0


async def test_a_deletion_while_the_watch_was_away_is_found_on_reconnect(
    stores: list[NatsSessionStore],
) -> None:
    big, small, third = stores
    deleted, changed = await _new(big, "deleted"), await _new(big, "changed")
    assert await small.load(deleted) is not None
    held = await small.load(changed)
    assert held is not None
    assert small._watch_scope is not None
    small._watch_scope.cancel()  # as when the link goes away
    await anyio.sleep(0.1)
    assert await third.delete(deleted)
    on_third = await third.load(changed)
    assert on_third is not None
    on_third.record.log_level = "error"
    await third.save(on_third)
    await anyio.sleep(0.2)
    assert small.get(deleted) is not None  # not watched meanwhile: not known yet
    await small._on_link(True)  # the link is back: the held keys are read again
    with anyio.fail_after(5):
        while small.get(deleted) is not None or held.record.log_level != "error":
            await anyio.sleep(0.01)


async def test_a_copy_is_not_served_after_the_bucket_aged_the_record_out(
    nats: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with AsyncExitStack() as stack:
        a, b = await _stores(stack, nats, [10, 10], idle_timeout=1.0)
        session_id = await _new(a, "aging")
        fetch = b._fetch

        async def fetched_as_the_watch_delivers_the_create(token: str) -> tuple[str | None, int, bytes]:
            found = await fetch(token)
            await b._on_entry(token, found[0], found[1], found[2])  # not held yet: kept as recent
            return found

        monkeypatch.setattr(b, "_fetch", fetched_as_the_watch_delivers_the_create)
        b._recent.clear()  # as if the watch had not delivered the create before the request
        assert await b.load(session_id) is not None
        await anyio.sleep(1.6)  # nobody used it: the bucket forgot it, without telling watchers
        assert b.get(session_id) is None
        assert await b.load(session_id) is None
        assert await a.load(session_id) is None


async def test_a_full_cache_makes_room_for_new_sessions_unless_its_sessions_have_streams(
    stores: list[NatsSessionStore],
) -> None:
    _, small, _ = stores
    sessions = [await _new(small, f"s{n}") for n in range(SMALL)]
    assert small.has_room(limit=SMALL, idle_timeout=60)  # the least recently used would go
    for session_id in sessions:
        held = small.get(session_id)
        assert held is not None
        held.open_stream()
    assert not small.has_room(limit=SMALL, idle_timeout=60)  # none may go: initialize is refused
    extra = await _new(small, "extra")  # over capacity, none dropped: they have streams
    assert len(small) == SMALL + 1 and small.evicted == 0 and small.get(extra) is not None
