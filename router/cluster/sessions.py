"""Legacy sessions shared by every replica: records in a JetStream key-value bucket.

The bucket (`<prefix>_sessions`, one entry per session keyed by the id's random token) ages
entries out after the idle timeout; a replica that serves a session rewrites its record at most
every quarter of that timeout, in the background, so an active session never expires and the
request that touched it never waits on NATS. Each replica keeps the sessions it has served in a
local cache (the same `LocalSession` objects the in-memory store holds) and follows the bucket
with one watch: a deletion anywhere closes the local copy and its stream, a newer record from
another replica replaces the cached one. The same watch hands every replica the records of
sessions it has not served yet, kept as bytes for one idle timeout, so the first request a
replica sees for a session usually costs a decode, not a round trip to NATS.

With NATS down the store serves from its cache; sessions created meanwhile are kept locally and
written to the bucket when the link is back. A session this replica has never seen cannot be
loaded then: `SessionUnavailable` tells the client to retry instead of to re-initialize.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence

import anyio
import orjson
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from router.cluster.link import NatsLink
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
RECORD_FIELDS = frozenset(field.name for field in dataclasses.fields(SessionRecord))
EndedListener = Callable[[str], Awaitable[None]]


def encode(record: SessionRecord) -> bytes:
    return orjson.dumps(record)


def decode(data: bytes) -> SessionRecord:
    raw = orjson.loads(data)
    return SessionRecord(**{key: value for key, value in raw.items() if key in RECORD_FIELDS})


class NatsSessionStore(MemorySessionStore, Service):
    """A write-through cache over the shared bucket; the cache is what the warm path reads."""

    def __init__(
        self,
        link: NatsLink,
        ids: SessionIds,
        idle_timeout: float,
        *,
        on_delete: Callable[[SessionRecord], None] | None = None,
        on_ended: Sequence[EndedListener] = (),
        on_record_changed: Callable[[], None] | None = None,
    ) -> None:
        """`on_delete` hears every end of a session here (as in `MemorySessionStore`); `on_ended`
        the ends that happened on another replica; `on_record_changed` a record another replica
        changed in a way that may need new upstream subscriptions here."""
        super().__init__(ids, on_delete)
        self.link = link
        self.idle_timeout = idle_timeout
        self.refresh_every = idle_timeout / 4
        self.on_ended = tuple(on_ended)
        self.on_record_changed = on_record_changed
        self._kv: KeyValue | None = None
        self.ready = anyio.Event()  # set once the bucket is open (the first time NATS is up)
        self._revisions: dict[str, int] = {}
        # Per session, the records this replica is writing now. The watch often delivers a write
        # before its acknowledgement resumes the writer (so before `_revisions` knows it): such an
        # entry is this replica's own record coming back, not news to replace the cached one with.
        self._writing: dict[str, list[bytes]] = {}
        self._written: dict[str, float] = {}  # monotonic time of the last write, per session
        self._unsynced: set[str] = set()
        self._tokens: dict[str, str] = {}  # bucket key -> session id, for the watch
        # Records the watch delivered for sessions not served here yet: a cold request finds its
        # record here, without a round trip. Bounded by the idle timeout (see `sweep`).
        self._seen: dict[str, tuple[bytes, int, float]] = {}
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
            session = self._sessions.get(session_id)
            if session is not None:
                await self._write(session)

    async def _on_link(self, up: bool) -> None:
        if self._watch_scope is not None:
            self._watch_scope.cancel()
            self._watch_scope = None
        if not up or self._tg is None:
            return
        try:
            self._kv = await self.link.key_value(BUCKET, ttl=self.idle_timeout)
        except Exception as exc:
            log.warning("session bucket unavailable", extra={"error": str(exc)})
            return
        self.ready.set()
        self._tg.start_soon(self._watch)
        for session_id in list(self._unsynced):
            self._unsynced.discard(session_id)  # a write that fails again puts it back
            session = self._sessions.get(session_id)
            if session is not None:
                await self._write(session)

    async def _watch(self) -> None:
        kv = self._kv
        assert kv is not None
        with anyio.CancelScope() as scope:
            self._watch_scope = scope
            try:
                watcher = await kv.watchall(include_history=False)
                async for entry in watcher:
                    if entry is None:
                        continue  # end of the initial values
                    await self._on_entry(entry.key, entry.operation, entry.revision, entry.value)
            except Exception as exc:
                log.warning("session watch ended; restarting on reconnect", extra={"error": str(exc)})

    async def _on_entry(
        self, key: str, operation: str | None, revision: int | None, value: bytes | None
    ) -> None:
        session_id = self._tokens.get(key)
        if session_id is None:
            if operation in {"DEL", "PURGE"}:
                self._seen.pop(key, None)
            elif value is not None:
                self._seen[key] = (value, revision or 0, time.monotonic())
            return
        if operation in {"DEL", "PURGE"}:
            await self._ended_elsewhere(session_id)
            return
        if revision is None or value is None or revision <= self._revisions.get(session_id, 0):
            return  # our own write coming back, or older news
        if value in self._writing.get(session_id, ()):
            # Our own write, ahead of its acknowledgement. Replacing the record here would drop
            # what a request in flight is changing on the object it holds (a second
            # resources/subscribe, say) and the save that follows would write the loss.
            self._revisions[session_id] = revision
            return
        session = self._sessions.get(session_id)
        if session is not None:
            before, session.record = session.record.subscriptions, decode(value)
            self._revisions[session_id] = revision
            if self.on_record_changed is not None and session.record.subscriptions != before:
                self.on_record_changed()  # e.g. new upstream subscriptions for this replica

    # -- the SessionStore seam ----------------------------------------------------------------

    async def create(self, record: SessionRecord) -> LocalSession:
        session = await super().create(record)
        self._tokens[token_of(record.id)] = record.id
        kv = self._kv
        if kv is None or not self.link.connected:
            self._unsynced.add(record.id)
            return session
        data = encode(record)
        try:
            with self._pending(record.id, data):
                self._revisions[record.id] = await kv.create(token_of(record.id), data)
            self._written[record.id] = time.monotonic()
        except Exception as exc:
            log.warning("session kept locally until NATS is back", extra={"error": str(exc)})
            self._unsynced.add(record.id)
        return session

    def get(self, session_id: str) -> LocalSession | None:
        session = super().get(session_id)
        if (
            session is not None
            and session.last_seen - self._written.get(session_id, 0.0) > self.refresh_every
        ):
            self._written[session_id] = session.last_seen
            # a full queue means a burst of refreshes: the next request queues this one again
            with contextlib.suppress(anyio.WouldBlock):
                self._refresh_send.send_nowait(session_id)
        return session

    async def load(self, session_id: str) -> LocalSession | None:
        session = self.get(session_id)
        if session is not None:
            return session
        token = token_of(session_id)
        seen = self._seen.pop(token, None)
        if seen is not None:
            value, revision = seen[0], seen[1]
        else:  # not (yet) delivered by the watch: ask the bucket
            kv = self._kv
            if kv is None or not self.link.connected:
                raise SessionUnavailable("the session store (NATS) is unreachable from this replica; retry")
            try:
                entry = await kv.get(token)
            except KeyNotFoundError:
                return None
            except Exception as exc:
                raise SessionUnavailable(f"the session store did not answer ({exc}); retry") from None
            if entry.value is None:
                return None
            value, revision = entry.value, entry.revision or 0
        record = decode(value)
        if record.id != session_id:
            return None
        session = self._sessions.get(session_id)  # a concurrent load got there first
        if session is None:
            session = LocalSession(record)
            self._sessions[session_id] = session
            self._tokens[token] = session_id
            self._revisions[session_id] = revision
            self._written[session_id] = time.monotonic()
        return session

    async def save(self, session: LocalSession) -> None:
        await self._write(session)

    async def delete(self, session_id: str) -> bool:
        known = self._forget(session_id)
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
        stale = [sid for sid, s in self._sessions.items() if s.last_seen < cutoff and s.outbox is None]
        for session_id in stale:
            self._forget(session_id)
        old = [token for token, (_, _, received) in self._seen.items() if received < cutoff]
        for token in old:
            del self._seen[token]
        return len(stale)

    def _forget(self, session_id: str) -> bool:
        self._tokens.pop(token_of(session_id), None)
        self._revisions.pop(session_id, None)
        self._written.pop(session_id, None)
        self._unsynced.discard(session_id)
        return self.drop(session_id)

    async def _write(self, session: LocalSession) -> None:
        """Write the record over the revision this replica last saw, never blindly.

        A request may finish (and save its session) after the client ended the session on
        another replica: a plain put would bring the deleted record back. So a record this
        replica no longer holds is not written, and a write that finds the entry changed re-reads
        it: deleted means the session ended elsewhere, otherwise the write is retried over the
        newer revision (the last writer wins, as with a put)."""
        kv = self._kv
        session_id = session.record.id
        if self._sessions.get(session_id) is not session:
            return  # ended (here, or by the watch) while the request that saved it ran
        if kv is None or not self.link.connected:
            self._unsynced.add(session_id)
            return
        token = token_of(session_id)
        last = self._revisions.get(session_id, 0)  # 0: the key must not exist (nor a delete marker)
        try:
            for _ in range(WRITE_ATTEMPTS):
                # Encoded per attempt: a retry must not write older data than a save since.
                data = encode(session.record)
                try:
                    with self._pending(session_id, data):
                        revision = await kv.update(token, data, last)
                except KeyWrongLastSequenceError:
                    latest = await _latest_revision(kv, token)
                    if latest is None:
                        await self._ended_elsewhere(session_id)
                        return
                    last = latest
                    continue
                self._revisions[session_id] = revision
                self._written[session_id] = time.monotonic()
                return
        except Exception as exc:
            log.debug("session write failed; retried later", extra={"error": str(exc)})
        self._unsynced.add(session_id)  # failed, or other replicas kept writing in between

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

    async def _ended_elsewhere(self, session_id: str) -> None:
        """The session was deleted on another replica: drop it here and tell the listeners (once,
        though both the watch and a failed write may find out)."""
        if not self._forget(session_id):
            return
        for listener in self.on_ended:
            await listener(session_id)

    @property
    def unsynced(self) -> int:
        """Sessions kept only here because NATS was down when they were written."""
        return len(self._unsynced)


async def _latest_revision(kv: KeyValue, token: str) -> int | None:
    """The entry's revision now; 0 if it aged out of the bucket while NATS was away (write it
    anew), None if it was deleted: the session ended on another replica."""
    try:
        return (await kv.get(token)).revision or 0
    except KeyNotFoundError as missing:
        return None if missing.op is not None else 0  # nats-py folds a delete marker in here
