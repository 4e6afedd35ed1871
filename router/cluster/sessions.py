"""Legacy sessions shared by every replica: records in a JetStream key-value bucket.

The bucket (`<prefix>_sessions`, one entry per session keyed by the id's random token) ages
entries out after the idle timeout; a replica that serves a session rewrites its record at most
every quarter of that timeout, in the background, so an active session never expires and the
request that touched it never waits on NATS.

Each replica keeps only the sessions it uses: a bounded cache (`session_cache` entries, least
recently used dropped first) of the same `LocalSession` objects the in-memory store holds. A
request for a session not held here fetches its record from the bucket (one JetStream direct
get), so memory follows this replica's own sessions, not the cluster's. One watch per replica
follows the bucket's new writes from the moment it starts (not the entries already there) and
acts only on keys it holds: a deletion anywhere closes the local copy and its stream, a newer
record from another replica replaces the cached one. After a reconnect the held keys are read
again (whatever changed meanwhile was not watched). The watch also keeps the last records
written for sessions not held here, a thousand for at most ten seconds: behind a balancer that
hashes on the session id, a session's first request after `initialize` usually reaches another
replica than the one that created it, and is then a decode instead of a get. A held copy is trusted for one idle timeout
after this replica last knew it current (its own write, the watch, a fetch): the bucket ages
records out without telling watchers, so an older copy is fetched again before it is served.
Dropping a session from the cache is not ending it: its record stays in the bucket for the next
request; only what this replica held for it (its own upstream sessions) is released, as for a
session idle here. Sessions whose GET stream is open here, and sessions not yet written to the
bucket, are never dropped.

With NATS down the store serves from its cache; sessions created meanwhile are kept locally and
written to the bucket when the link is back. A session this replica does not hold cannot be
loaded then: `SessionUnavailable` tells the client to retry instead of to re-initialize.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

import anyio
from nats.aio.msg import Msg
from nats.js import api
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from router.cluster.link import NatsLink
from router.cluster.session_entries import (
    DELETED,
    News,
    decode,
    encode,
    latest_revision,
    newest,
    operation_of,
)
from router.lifecycle import Service
from router.state.sessions import (
    LocalSession,
    MemorySessionStore,
    SessionIds,
    SessionRecord,
    SessionUnavailable,
    token_of,
)

log = logging.getLogger("toolmesh.sessions")

BUCKET = "sessions"
# Tries of one record write while other replicas keep writing it in between.
WRITE_ATTEMPTS = 4
EndedListener = Callable[[str], Awaitable[None]]
# The watch keeps the last RECENT records written for sessions not held here, each for RECENT_AGE
# seconds: the first request after `initialize` on another replica is then a decode, not a get.
RECENT = 1024
RECENT_AGE = 10.0


@dataclass(slots=True)
class CachedSession(LocalSession):
    """A session this replica holds, with what it knows of the bucket's copy."""

    revision: int = 0  # the bucket revision of the record held here (0: not written yet)
    written: float = -math.inf  # monotonic time of this replica's last write (refresh pacing)
    current: float = -math.inf  # monotonic time the held record was last known current
    ended: bool = False  # deleted (here or elsewhere): never written again


class NatsSessionStore(MemorySessionStore, Service):
    """A bounded write-through cache over the shared bucket; the cache is what the warm path reads."""

    def __init__(
        self,
        link: NatsLink,
        ids: SessionIds,
        idle_timeout: float,
        *,
        capacity: int = 10_000,
        on_delete: Callable[[SessionRecord], None] | None = None,
        on_ended: Sequence[EndedListener] = (),
        on_record_changed: Callable[[], None] | None = None,
    ) -> None:
        """`capacity`: the most sessions held here (see the module docstring for which are never
        dropped). `on_delete` hears every end of a session here, and every drop from the cache
        (as in `MemorySessionStore`: release what this replica held for it); `on_ended` the ends
        that happened on another replica; `on_record_changed` a record another replica changed
        in a way that may need new upstream subscriptions here."""
        super().__init__(ids, on_delete)
        if capacity < 1:
            raise ValueError("the session cache must hold at least one session")
        self.link = link
        self.idle_timeout = idle_timeout
        self.refresh_every = idle_timeout / 4
        self.capacity = capacity
        self._recent_age = min(RECENT_AGE, idle_timeout / 4)  # well inside the record's TTL
        self.on_ended = tuple(on_ended)
        self.on_record_changed = on_record_changed
        self._kv: KeyValue | None = None
        self.ready = anyio.Event()  # set once the bucket is open (the first time NATS is up)
        self._cache: OrderedDict[str, CachedSession] = OrderedDict()  # least recently used first
        self._sessions = self._cache  # type: ignore[assignment]  # the parent's dict, ordered
        self._unsynced: set[str] = set()
        # Per session, the records this replica is writing now. The watch often delivers a write
        # before its acknowledgement resumes the writer (so before the session's revision says
        # so): such an entry is this replica's own record coming back, not news to replace the
        # cached one with.
        self._writing: dict[str, list[bytes]] = {}
        self._tokens: dict[str, str] = {}  # bucket key -> session id, for the watch
        self._fetching: dict[str, list[News]] = {}  # bucket key -> what the watch saw meanwhile
        # Records of sessions not held here the watch delivered last: (value, revision, when).
        self._recent: OrderedDict[str, tuple[bytes, int, float]] = OrderedDict()
        self.evicted = 0  # sessions dropped from the cache to keep it within its capacity
        self._refresh_send, self._refresh_receive = anyio.create_memory_object_stream[str](4096)
        self._watch_scope: anyio.CancelScope | None = None
        self._tg: anyio.abc.TaskGroup | None = None

    # -- background ---------------------------------------------------------------------------

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Keep the watch alive while the link is up, and write refreshes queued by requests."""
        self._tg = tg
        self.link.watch(self._on_link)
        if self.link.connected:
            await self._on_link(True)
        tg.start_soon(self._write_refreshes)

    async def _write_refreshes(self) -> None:
        async for session_id in self._refresh_receive:
            session = self._cache.get(session_id)
            if session is not None:
                await self._write(session)

    async def _on_link(self, up: bool) -> None:
        if self._watch_scope is not None:
            self._watch_scope.cancel()
            self._watch_scope = None
        self._recent.clear()  # the watch has a gap now: what it delivered may be stale
        if not up or self._tg is None:
            return
        try:
            self._kv = await self.link.key_value(BUCKET, ttl=self.idle_timeout)
        except Exception as exc:
            log.warning("session bucket unavailable", extra={"error": str(exc)})
            return
        first = not self.ready.is_set()
        self.ready.set()
        watching = anyio.Event()
        self._tg.start_soon(self._watch, watching)
        await watching.wait()
        if not first:
            self._tg.start_soon(self._reread)
        for session_id in list(self._unsynced):
            self._unsynced.discard(session_id)  # a write that fails again puts it back
            session = self._cache.get(session_id)
            if session is not None:
                await self._write(session)

    async def _watch(self, watching: anyio.Event) -> None:
        """Follow the bucket's writes from now on (one ordered consumer), for the keys held here."""
        js = self.link.js
        bucket = f"{self.link.prefix}_{BUCKET}"
        prefix = f"$KV.{bucket}."
        send, receive = anyio.create_memory_object_stream[Msg](math.inf)

        async def arrived(msg: Msg) -> None:
            with contextlib.suppress(anyio.ClosedResourceError):  # one racing the unsubscribe
                send.send_nowait(msg)

        with send, receive, anyio.CancelScope() as scope:
            self._watch_scope = scope
            sub = None
            try:
                assert js is not None
                sub = await js.subscribe(
                    f"{prefix}>",
                    stream=f"KV_{bucket}",
                    cb=arrived,
                    ordered_consumer=True,
                    deliver_policy=api.DeliverPolicy.NEW,
                    inactive_threshold=300.0,
                )
                watching.set()
                async for msg in receive:
                    operation = operation_of(msg)
                    await self._on_entry(
                        msg.subject[len(prefix) :], operation, msg.metadata.sequence.stream, msg.data
                    )
            except Exception as exc:
                log.warning("session watch ended; restarting on reconnect", extra={"error": str(exc)})
            finally:
                watching.set()
                if sub is not None:
                    with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                        await sub.unsubscribe()

    async def _reread(self) -> None:
        """After a reconnect: read the held keys again (the watch missed what changed meanwhile)."""
        for session_id in list(self._cache):
            token = token_of(session_id)
            news = self._fetching.setdefault(token, [])
            try:
                operation, revision, value = await self._fetch(token)
            except KeyNotFoundError:
                continue  # aged out while away: the next write (if it is used) writes it anew
            except Exception:
                return  # gone again; the next reconnect tries again
            finally:
                if self._fetching.get(token) is news:
                    del self._fetching[token]
            operation, revision, value = newest((operation, revision, value), news)
            await self._on_entry(token, operation, revision, value)

    async def _fetch(self, token: str) -> News:
        """The bucket's entry for `token`: (None, revision, value), or ("DEL", 0, b"") if it was
        deleted; KeyNotFoundError if there is none."""
        kv = self._kv
        assert kv is not None
        try:
            entry = await kv.get(token)
        except KeyNotFoundError as missing:
            if missing.op is not None:  # nats-py folds a delete marker in here
                return ("DEL", 0, b"")
            raise
        if entry.value is None:
            raise KeyNotFoundError
        return (None, entry.revision or 0, entry.value)

    def _keep_recent(self, key: str, operation: str | None, revision: int, value: bytes) -> None:
        """Keep the last few records written elsewhere for a moment: behind a balancer hashing on
        the session id, a session's first request after `initialize` usually reaches another
        replica than the one that created it, a few milliseconds after the create."""
        if operation in DELETED:
            self._recent.pop(key, None)
            return
        self._recent[key] = (value, revision, time.monotonic())
        self._recent.move_to_end(key)
        if len(self._recent) > RECENT:
            self._recent.popitem(last=False)

    async def _on_entry(self, key: str, operation: str | None, revision: int, value: bytes) -> None:
        fetching = self._fetching.get(key)
        if fetching is not None:
            fetching.append((operation, revision, value))
        session_id = self._tokens.get(key)
        if session_id is None:
            self._keep_recent(key, operation, revision, value)
            return
        session = self._cache.get(session_id)
        if session is None:
            return
        if operation in DELETED:
            await self._ended_elsewhere(session_id)
            return
        if revision < session.revision:
            return  # older news
        session.current = time.monotonic()
        if revision == session.revision:
            return  # our own write coming back
        if value in self._writing.get(session_id, ()):
            # Our own write, ahead of its acknowledgement. Replacing the record here would drop
            # what a request in flight is changing on the object it holds (a second
            # resources/subscribe, say) and the save that follows would write the loss.
            session.revision = revision
            return
        before, session.record = session.record.subscriptions, decode(value)
        session.revision = revision
        if self.on_record_changed is not None and session.record.subscriptions != before:
            self.on_record_changed()  # e.g. new upstream subscriptions for this replica

    # -- the SessionStore seam ----------------------------------------------------------------

    async def create(self, record: SessionRecord) -> LocalSession:
        now = time.monotonic()
        session = CachedSession(record, written=now, current=now)
        self._remember(session)
        kv = self._kv
        if kv is None or not self.link.connected:
            self._unsynced.add(record.id)
            return session
        data = encode(record)
        try:
            with self._pending(record.id, data):
                session.revision = await kv.create(token_of(record.id), data)
        except Exception as exc:
            log.warning("session kept locally until NATS is back", extra={"error": str(exc)})
            self._unsynced.add(record.id)
        return session

    def get(self, session_id: str) -> LocalSession | None:
        session = self._cache.get(session_id)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.current > self.idle_timeout and session.outbox is None and self.link.connected:
            # The bucket may have aged the record out since this replica last knew it current:
            # drop the copy, and let `load` ask the bucket.
            self._forget(session_id)
            return None
        self._cache.move_to_end(session_id)
        session.last_seen = now
        if now - session.written > self.refresh_every:
            session.written = now
            # a full queue means a burst of refreshes: the next request queues this one again
            with contextlib.suppress(anyio.WouldBlock):
                self._refresh_send.send_nowait(session_id)
        return session

    async def load(self, session_id: str) -> LocalSession | None:
        session = self.get(session_id)
        if session is not None:
            return session
        token = token_of(session_id)
        recent = self._recent.pop(token, None)
        if recent is not None and time.monotonic() - recent[2] < self._recent_age:
            operation, revision, value = None, recent[1], recent[0]  # just written elsewhere
        else:
            operation, revision, value = await self._fetch_for_load(token)
        if operation in DELETED:
            return None
        session = self._cache.get(session_id)  # a concurrent load got there first
        if session is not None:
            return session
        record = decode(value)
        if record.id != session_id:
            return None
        now = time.monotonic()
        session = CachedSession(record, revision=revision, written=now, current=now)
        self._remember(session)
        return session

    async def _fetch_for_load(self, token: str) -> News:
        kv = self._kv
        if kv is None or not self.link.connected:
            raise SessionUnavailable("the session store (NATS) is unreachable from this replica; retry")
        news: list[News] = self._fetching.setdefault(token, [])
        try:
            found = await self._fetch(token)
        except KeyNotFoundError:
            found = ("DEL", 0, b"")
        except Exception as exc:
            raise SessionUnavailable(f"the session store did not answer ({exc}); retry") from None
        finally:
            if self._fetching.get(token) is news:
                del self._fetching[token]
        # A write or delete the watch delivered while the fetch was in flight may be newer.
        return newest(found, news)

    async def save(self, session: LocalSession) -> None:
        await self._write(session)

    async def delete(self, session_id: str) -> bool:
        known = self._forget(session_id, ended=True)
        kv = self._kv
        if kv is None or not self.link.connected:
            return known
        try:
            await kv.delete(token_of(session_id))
        except Exception as exc:
            log.warning("session delete not shared", extra={"error": str(exc)})
        return True

    def sweep(self, idle_timeout: float) -> int:
        """Drop cached sessions idle here; the bucket's TTL ends them everywhere."""
        cutoff = time.monotonic() - idle_timeout
        stale = [sid for sid, s in self._cache.items() if s.last_seen < cutoff and s.outbox is None]
        for session_id in stale:
            self._forget(session_id)
        return len(stale)

    def has_room(self, limit: int, idle_timeout: float) -> bool:
        """Room for one more session: the cache drops its least recently used session to make
        it, so only sessions it may not drop count against `limit`."""
        # The least recently used is usually droppable (`_remember` moves pinned ones past it).
        return len(self._cache) < limit or any(self._droppable(sid, s) for sid, s in self._cache.items())

    def _droppable(self, session_id: str, session: CachedSession) -> bool:
        return session.outbox is None and session_id not in self._unsynced

    def _remember(self, session: CachedSession) -> None:
        """Hold `session` as the most recently used; drop the least recently used over capacity."""
        session_id = session.record.id
        self._cache[session_id] = session
        self._cache.move_to_end(session_id)
        token = token_of(session_id)
        self._tokens[token] = session_id
        self._recent.pop(token, None)  # kept by the watch while it was fetched: stale once held
        for _ in range(len(self._cache)):
            if len(self._cache) <= self.capacity:
                return
            oldest_id, oldest = next(iter(self._cache.items()))
            if oldest is session:
                return  # everything older is pinned: over capacity until those end
            if self._droppable(oldest_id, oldest):
                self._forget(oldest_id)
                self.evicted += 1
            else:
                self._cache.move_to_end(oldest_id)

    def _forget(self, session_id: str, *, ended: bool = False) -> bool:
        self._tokens.pop(token_of(session_id), None)
        self._unsynced.discard(session_id)
        session = self._cache.get(session_id)
        if session is not None and ended:
            session.ended = True
        return self.drop(session_id)

    async def _write(self, session: LocalSession) -> None:
        """Write the record over the revision this replica last saw, never blindly.

        A request may finish (and save its session) after the client ended the session on
        another replica: a plain put would bring the deleted record back. So a record this
        replica knows ended is not written, and a write that finds the entry changed re-reads
        it: deleted means the session ended elsewhere, otherwise the write is retried over the
        newer revision (the last writer wins, as with a put). A session dropped from the cache
        while a call on it ran is still written (its revision came with it)."""
        assert isinstance(session, CachedSession)
        if session.ended:
            return  # ended (here, or by the watch) while the request that saved it ran
        kv = self._kv
        session_id = session.record.id
        if kv is None or not self.link.connected:
            self._keep_unsynced(session)
            return
        token = token_of(session_id)
        last = session.revision  # 0: the key must not exist (nor a delete marker)
        try:
            for _ in range(WRITE_ATTEMPTS):
                # Encoded per attempt: a retry must not write older data than a save since.
                data = encode(session.record)
                try:
                    with self._pending(session_id, data):
                        revision = await kv.update(token, data, last)
                except KeyWrongLastSequenceError:
                    latest = await latest_revision(kv, token)
                    if latest is None:
                        session.ended = True
                        await self._ended_elsewhere(session_id)
                        return
                    last = latest
                    continue
                session.revision = revision
                session.written = session.current = time.monotonic()
                return
        except Exception as exc:
            log.debug("session write failed; retried later", extra={"error": str(exc)})
        self._keep_unsynced(session)  # failed, or other replicas kept writing in between

    @contextlib.contextmanager
    def _pending(self, session_id: str, data: bytes) -> Iterator[None]:
        """While `data` is being written for the session, the watch knows it as this replica's."""
        writing = self._writing.setdefault(session_id, [])
        writing.append(data)
        try:
            yield
        finally:
            writing.remove(data)
            if not writing:
                del self._writing[session_id]

    def _keep_unsynced(self, session: CachedSession) -> None:
        """Hold a record the bucket has not got (never dropped) until the link writes it."""
        session_id = session.record.id
        self._unsynced.add(session_id)
        if self._cache.get(session_id) is None:
            self._remember(session)

    async def _ended_elsewhere(self, session_id: str) -> None:
        """The session was deleted on another replica: drop it here and tell the listeners (once,
        though both the watch and a failed write may find out)."""
        if not self._forget(session_id, ended=True):
            return
        for listener in self.on_ended:
            await listener(session_id)

    @property
    def unsynced(self) -> int:
        """Sessions kept only here because NATS was down when they were written."""
        return len(self._unsynced)
