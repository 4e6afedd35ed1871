"""The shared-state parts against a real nats-server, three "replicas" in one process.

Each replica here is what `app.py` builds with `--nats`: its own NATS connection, session store
and client bus. This is where the client-bound seam is exercised directly: a server-to-client
request (sampling) born on one replica, the client's stream on a second, its reply posted to a
third.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from router.cluster.bus import NatsBus
from router.cluster.link import NatsLink
from router.cluster.sessions import NatsSessionStore
from router.cluster.updates import Copies
from router.errors import RPCError
from router.state.sessions import SessionIds, SessionRecord, token_of
from tests.support.cluster import NatsServer, nats_server

pytestmark = pytest.mark.anyio

KEY = secrets.token_bytes(32)


@dataclass
class Replica:
    link: NatsLink
    store: NatsSessionStore
    bus: NatsBus
    ended: list[str] = field(default_factory=list)  # sessions the store heard end elsewhere


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path) as server:
        yield server


@pytest.fixture
async def replicas(nats: NatsServer) -> AsyncIterator[list[Replica]]:
    async with AsyncExitStack() as stack:
        group: list[Replica] = []
        for _ in range(3):
            link = NatsLink(
                nats.url, prefix=f"t{secrets.token_hex(2)}" if not group else group[0].link.prefix
            )
            holder: list[Replica] = []

            async def on_ended(session_id: str, holder: list[Replica] = holder) -> None:
                holder[0].ended.append(session_id)
                await holder[0].bus.session_ended(session_id)

            store = NatsSessionStore(link, SessionIds(KEY), idle_timeout=60, on_ended=[on_ended])
            replica = Replica(link, store, NatsBus(store, link))
            holder.append(replica)
            for service in (store, replica.bus, link):  # the link last: its first "up" reaches both
                await stack.enter_async_context(service)
            group.append(replica)
        with anyio.fail_after(5):
            for replica in group:
                await replica.store.ready.wait()
        yield group


async def _new_session(replica: Replica) -> str:
    record = SessionRecord(id=replica.store.ids.new(), protocol_version="2025-11-25")
    await replica.store.create(record)
    return record.id


async def test_a_sampling_request_reaches_a_stream_on_another_replica_and_its_reply_a_third(
    replicas: list[Replica],
) -> None:
    a, b, c = replicas
    session_id = await _new_session(a)
    held = await b.store.load(session_id)
    assert held is not None
    inbox = held.open_stream()
    await b.bus.stream_opened(held)
    request = {"jsonrpc": "2.0", "id": "s-1", "method": "sampling/createMessage", "params": {"maxTokens": 5}}
    replies = []

    async def ask() -> None:
        replies.append(await a.bus.request(session_id, request, timeout=5))

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask)
        with anyio.fail_after(5):
            seen = await inbox.receive()  # the client reads it from its stream on replica b
        assert seen == request
        answer = {
            "jsonrpc": "2.0",
            "id": "s-1",
            "result": {"role": "assistant", "content": {"type": "text", "text": "ok"}},
        }
        assert await c.bus.answer(session_id, answer)  # ... and posts its reply to replica c
    assert replies == [answer]
    # a reply nobody waits for is reported as such, quickly
    with anyio.fail_after(3):
        assert not await c.bus.answer(session_id, {"jsonrpc": "2.0", "id": "s-1", "result": {}})


async def test_a_request_to_a_client_without_a_stream_fails_clearly(replicas: list[Replica]) -> None:
    a, _, _ = replicas
    session_id = await _new_session(a)
    with pytest.raises(RPCError) as caught:
        await a.bus.request(session_id, {"jsonrpc": "2.0", "id": 1, "method": "roots/list"}, timeout=0.5)
    assert "did not answer" in caught.value.message or "no open stream" in caught.value.message


async def test_records_follow_writes_and_deletes_across_replicas(replicas: list[Replica]) -> None:
    a, b, c = replicas
    session_id = await _new_session(a)
    on_b = await b.store.load(session_id)
    assert on_b is not None
    inbox = on_b.open_stream()
    on_a = a.store.get(session_id)
    assert on_a is not None
    on_a.record.log_level = "debug"
    await a.store.save(on_a)
    with anyio.fail_after(10):
        while on_b.record.log_level != "debug":  # b's cache follows the watch, no lookup
            await anyio.sleep(0.01)
    assert await c.store.delete(session_id)
    with anyio.fail_after(10):
        async for _ in inbox:  # b's stream for the session is closed by the deletion
            pass
    assert b.store.get(session_id) is None
    with anyio.fail_after(10):  # a's cache hears of the deletion through its own watch, as b's did
        while a.store.get(session_id) is not None:
            await anyio.sleep(0.01)
    assert await a.store.load(session_id) is None
    assert await c.store.load(session_id) is None
    assert await b.store.load(c.store.ids.new()) is None  # valid but unknown id


async def test_a_replica_s_own_write_coming_back_keeps_what_a_request_changes_meanwhile(
    replicas: list[Replica],
) -> None:
    """Two resources/subscribe in a row: the second request holds the session's record while the
    first one's save is written. The watch hands the replica that write back, usually before its
    acknowledgement does; taken as news, it replaced the record the second request was changing,
    and that request's save then wrote the record without its subscription (a flake of the
    subscriptions test with NATS: the router never subscribed upstream to the second URI)."""
    a, b, _ = replicas
    session_id = await _new_session(a)
    on_a = a.store.get(session_id)
    on_b = await b.store.load(session_id)
    assert on_a is not None and on_b is not None
    for n in range(10):
        first, second = f"file:///{n}/first", f"file:///{n}/second"
        held = on_a.record  # what the first request changes, then saves
        held.subscriptions.append(first)
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.store.save, on_a)
            later = on_a.record  # the second request starts before that save is written
            await anyio.sleep(0.05)  # the first save's entry comes back through the watch
            later.subscriptions.append(second)
        await a.store.save(on_a)
        assert on_a.record is held, "the replica's own write replaced its cached record"
        assert on_a.record.subscriptions[-2:] == [first, second]
        with anyio.fail_after(10):  # and the bucket (another replica) has both
            while on_b.record.subscriptions[-2:] != [first, second]:
                await anyio.sleep(0.01)


async def _in_bucket(replica: Replica, session_id: str) -> bool:
    """Whether the bucket holds a live record for the session (asked of NATS, not of a cache)."""
    probe = NatsSessionStore(replica.link, replica.store.ids, idle_timeout=60)
    probe._kv = replica.store._kv  # the same bucket, without this replica's cache
    return await probe.load(session_id) is not None


async def test_a_save_racing_a_delete_elsewhere_does_not_bring_the_session_back(
    replicas: list[Replica],
) -> None:
    """A call on b finishes and saves its session just as the client's DELETE lands on c."""
    a, b, c = replicas
    for _ in range(10):  # both orders: b's watch has or has not yet seen the deletion
        session_id = await _new_session(a)
        on_b = await b.store.load(session_id)
        assert on_b is not None
        on_b.record.log_level = "info"
        assert await c.store.delete(session_id)
        await b.store.save(on_b)
        assert not await _in_bucket(a, session_id)
    # The watch on b stopped (it lags behind the bucket): only the compare-and-set saves us now.
    session_id = await _new_session(a)
    on_b = await b.store.load(session_id)
    assert on_b is not None
    assert b.store._watch_scope is not None
    b.store._watch_scope.cancel()
    ended = b.ended
    ended.clear()
    assert await c.store.delete(session_id)
    on_b.record.log_level = "info"
    await b.store.save(on_b)
    assert not await _in_bucket(a, session_id)
    assert ended == [session_id]  # b learned from the failed write that the session ended
    assert b.store.get(session_id) is None


async def _note(ended: list[str], session_id: str) -> None:
    ended.append(session_id)


async def test_a_write_over_a_newer_revision_retries_and_the_last_writer_wins(
    replicas: list[Replica],
) -> None:
    """A compare-and-set write that finds another replica's newer revision writes again over it
    (whole records, as a put would: the last writer wins) instead of failing or going unsynced."""
    a, b, _ = replicas
    session_id = await _new_session(a)
    on_a, on_b = a.store.get(session_id), await b.store.load(session_id)
    assert on_a is not None and on_b is not None
    assert b.store._watch_scope is not None
    b.store._watch_scope.cancel()  # so b keeps the older revision
    on_a.record.log_level = "debug"
    await a.store.save(on_a)
    on_b.record.subscriptions.append("file:///x")
    await b.store.save(on_b)
    assert b.store.unsynced == 0
    with anyio.fail_after(3):
        while on_a.record.subscriptions != ["file:///x"]:
            await anyio.sleep(0.01)
    assert on_a.record.log_level is None  # b's whole record, written last


async def test_a_record_that_aged_out_during_an_outage_is_written_anew(nats: NatsServer) -> None:
    """The bucket forgets a record nobody rewrote within the idle timeout (no delete marker):
    that is not an ending, so the replica still serving the session writes it again."""
    link = NatsLink(nats.url, prefix=f"t{secrets.token_hex(2)}")
    ended: list[str] = []
    store = NatsSessionStore(
        link, SessionIds(KEY), idle_timeout=1.0, on_ended=[lambda sid: _note(ended, sid)]
    )
    async with store, link:
        with anyio.fail_after(5):
            await store.ready.wait()
        session_id = store.ids.new()
        session = await store.create(SessionRecord(id=session_id, protocol_version="2025-11-25"))
        await anyio.sleep(1.6)  # past the bucket's max age: the record is gone, without a marker
        replica = Replica(link, store, NatsBus(store, link))
        assert not await _in_bucket(replica, session_id)
        session.record.log_level = "info"
        await store.save(session)
        assert await _in_bucket(replica, session_id)
        assert ended == [] and store.get(session_id) is session and store.unsynced == 0


def test_session_ids_are_signed_with_the_cluster_key() -> None:
    ids, other = SessionIds(KEY), SessionIds(secrets.token_bytes(32))
    session_id = ids.new()
    assert ids.valid(session_id)
    assert not other.valid(session_id)
    token, _, tag = session_id.partition(".")
    assert not ids.valid(token)
    assert not ids.valid(f"{token}.{tag[::-1]}")
    assert not ids.valid(f"{ids.new().partition('.')[0]}.{tag}")
    assert len({ids.new() for _ in range(1000)}) == 1000


def test_nats_settings_are_checked_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from router.cli import load_settings
    from router.errors import ConfigError

    monkeypatch.delenv("TOOLMESH_CLUSTER_KEY", raising=False)
    with pytest.raises(ConfigError) as no_key:
        load_settings({"nats": "nats://127.0.0.1:4222"})
    assert "TOOLMESH_CLUSTER_KEY" in str(no_key.value)
    with pytest.raises(ConfigError) as bad_url:
        load_settings({"nats": "127.0.0.1:4222", "cluster_key": "k" * 32})
    assert "nats://HOST:PORT" in str(bad_url.value)
    assert load_settings({"nats": "nats://127.0.0.1:4222", "cluster_key": "k" * 32}).nats


async def test_a_newer_stream_on_another_replica_closes_the_older_one(replicas: list[Replica]) -> None:
    a, b, c = replicas
    session_id = await _new_session(a)
    on_a, on_b = a.store.get(session_id), await b.store.load(session_id)
    assert on_a is not None and on_b is not None
    old = on_a.open_stream()
    await a.bus.stream_opened(on_a)
    new = on_b.open_stream()
    await b.bus.stream_opened(on_b)
    with anyio.fail_after(3):
        async for _ in old:  # a's stream is closed by b's claim
            pass
    assert on_a.outbox is None
    await a.bus.stream_closed(on_a)
    message = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": 1}}
    assert await c.bus.deliver(session_id, message)
    with anyio.fail_after(3):
        assert await new.receive() == message


async def test_stream_claims_do_not_trust_clocks(
    replicas: list[Replica], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newer stream wins even when the older one's replica has a clock an hour ahead."""
    a, b, _ = replicas
    session_id = await _new_session(a)
    on_a, on_b = a.store.get(session_id), await b.store.load(session_id)
    assert on_a is not None and on_b is not None
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # a's clock is far ahead
    old = on_a.open_stream()
    await a.bus.stream_opened(on_a)
    monkeypatch.setattr(time, "time", real)
    await anyio.sleep(0.2)  # a's claim has come back to it
    new = on_b.open_stream()
    await b.bus.stream_opened(on_b)
    with anyio.fail_after(3):
        async for _ in old:  # a's stream is closed by b's (newer) claim
            pass
    await anyio.sleep(0.2)
    assert on_b.outbox is not None, "the newer stream was closed"
    new.close()


async def test_a_late_older_claim_does_not_close_the_newer_stream(replicas: list[Replica]) -> None:
    """NATS orders messages per publisher only: across a NATS cluster, or a slow route, a replica
    may hear an older claim after a newer one. The claims' revisions decide, not their arrival."""
    a, b, _ = replicas
    session_id = await _new_session(a)
    on_a, on_b = a.store.get(session_id), await b.store.load(session_id)
    assert on_a is not None and on_b is not None
    old = on_a.open_stream()
    await a.bus.stream_opened(on_a)
    older = a.bus._claims[token_of(session_id)].revision
    assert older
    new = on_b.open_stream()
    await b.bus.stream_opened(on_b)
    with anyio.fail_after(3):
        async for _ in old:  # a's stream is closed by b's (newer) claim
            pass
    await a.bus.stream_closed(on_a)
    # a's claim heard again by b, now after b's own (as a NATS route may deliver it)
    await a.link.publish(a.bus._subject(session_id, "claim"), b"%s %d" % (a.bus.replica, older))
    await anyio.sleep(0.3)
    assert on_b.outbox is not None, "an older claim closed the newer stream"
    message = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": 2}}
    assert await a.bus.deliver(session_id, message)
    with anyio.fail_after(3):
        assert await new.receive() == message


async def test_a_claim_missed_while_away_is_caught_up_when_the_link_is_back(replicas: list[Replica]) -> None:
    """Claims are plain NATS messages: one published while a replica's connection is down never
    reaches it. The claims bucket keeps the last claim, so the replica catches up on reconnect."""
    a, b, _ = replicas
    session_id = await _new_session(a)
    on_a, on_b = a.store.get(session_id), await b.store.load(session_id)
    assert on_a is not None and on_b is not None
    old = on_a.open_stream()
    await a.bus.stream_opened(on_a)
    assert a.bus._claim_sub is not None
    await a.bus._claim_sub.unsubscribe()  # a hears no claims now, as while its link is down
    on_b.open_stream()
    await b.bus.stream_opened(on_b)
    await anyio.sleep(0.3)
    assert on_a.outbox is not None  # a missed b's claim
    await a.bus._on_link(True)  # a's link is back
    with anyio.fail_after(3):
        async for _ in old:  # a's older stream is closed by the claim it catches up on
            pass
    assert on_b.outbox is not None


async def test_streams_opened_at_once_on_two_replicas_leave_exactly_one(replicas: list[Replica]) -> None:
    a, b, _ = replicas
    for _ in range(10):
        session_id = await _new_session(a)
        on_a, on_b = a.store.get(session_id), await b.store.load(session_id)
        assert on_a is not None and on_b is not None
        on_a.open_stream()
        on_b.open_stream()
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.bus.stream_opened, on_a)
            tg.start_soon(b.bus.stream_opened, on_b)
        await anyio.sleep(0.3)
        assert (on_a.outbox is None) != (on_b.outbox is None), "both or neither stream kept"


def test_copies_of_one_update_are_matched_one_to_one() -> None:
    copies = Copies(window=0.5)
    # replicas a and b both heard two updates of u: each is delivered once, whatever the order
    assert copies.first("u", "a", now=0.00)
    assert not copies.first("u", "b", now=0.01)
    assert copies.first("u", "b", now=0.02)
    assert not copies.first("u", "a", now=0.03)
    # only a heard two updates: both are delivered
    assert copies.first("v", "a", now=0.0)
    assert copies.first("v", "a", now=0.1)
    # a report later than the window is a new update
    assert copies.first("w", "a", now=0.0)
    assert copies.first("w", "b", now=0.6)
    # other URIs never match
    assert copies.first("x", "a", now=0.0)
    assert copies.first("y", "b", now=0.0)
