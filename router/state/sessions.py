"""Legacy-era client sessions (2025-xx `initialize`): the record and where it is kept.

The record is plain data so that a shared store can hold it; what only makes sense on this
replica (the client's open GET stream) is kept beside it in `LocalSession`. The in-memory store
is the embedded default; `SessionStore` is the seam a shared store implements.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

OUTBOX_SIZE = 256
# What a session keeps of its client, so a session costs about a kilobyte however large the
# client's `initialize` was (a body may be 4 MB): the capabilities it declared, up to this size
# (real clients declare a few hundred bytes; a larger set is refused, not cut, since the router
# passes them on to backends), and of `clientInfo` only the short fields that name the client.
MAX_CAPABILITIES_BYTES = 8 * 1024
CLIENT_INFO_FIELDS = ("name", "title", "version")
CLIENT_INFO_CHARS = 256


def capabilities_problem(capabilities: Any) -> str | None:
    """Why an `initialize`'s `capabilities` cannot be kept for its session (None: they can)."""
    if not isinstance(capabilities, dict):
        return "Invalid params: `capabilities` must be an object"
    size = len(orjson.dumps(capabilities))
    if size > MAX_CAPABILITIES_BYTES:
        return (
            f"Invalid params: `capabilities` is {size} bytes, over the {MAX_CAPABILITIES_BYTES} a "
            "session keeps; declare only the capabilities the client has"
        )
    return None


def kept_client_info(client_info: Any) -> dict[str, str]:
    """The fields of a client's `clientInfo` a session keeps: its name, title and version, each
    cut to 256 characters (icons and anything else are not kept)."""
    if not isinstance(client_info, dict):
        return {}
    return {
        key: value[:CLIENT_INFO_CHARS]
        for key in CLIENT_INFO_FIELDS
        if isinstance(value := client_info.get(key), str)
    }


@dataclass(slots=True)
class SessionRecord:
    id: str
    protocol_version: str
    client_info: dict[str, Any] = field(default_factory=dict)
    client_capabilities: dict[str, Any] = field(default_factory=dict)
    log_level: str | None = None
    affinity: dict[str, str] = field(default_factory=dict)  # server -> upstream instance last used
    created: float = field(default_factory=time.time)
    identity: dict[str, Any] | None = (
        None  # the agent that opened it ({"agent", "groups"}); only it may use it
    )
    # Resource URIs (as exposed to the client) it subscribed to with resources/subscribe.
    subscriptions: list[str] = field(default_factory=list)
    # Per backend (`server/instance`): what this session is bound to there: {"session_id": ...}
    # of the upstream session the router opened for this client, where it opened one.
    upstream: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The tools mode asked for on the URL at initialize (`/mcp?tools=search`), kept for the session.
    tools_mode: str | None = None

    @property
    def agent(self) -> str:
        return str((self.identity or {}).get("agent", "anonymous"))


@dataclass(slots=True)
class LocalSession:
    """A session as this replica holds it: the record plus its live stream, if any."""

    record: SessionRecord
    last_seen: float = field(default_factory=time.monotonic)
    outbox: MemoryObjectSendStream[dict[str, Any]] | None = None
    inbox: MemoryObjectReceiveStream[dict[str, Any]] | None = None
    next_event: int = 0

    def open_stream(self) -> MemoryObjectReceiveStream[dict[str, Any]]:
        """Attach a new GET stream; an older one is closed (one stream per session)."""
        self.close()
        self.outbox, self.inbox = anyio.create_memory_object_stream[dict[str, Any]](OUTBOX_SIZE)
        return self.inbox

    def detach(self, inbox: MemoryObjectReceiveStream[dict[str, Any]]) -> None:
        """The GET stream behind `inbox` ended; forget it unless a newer one replaced it."""
        if self.inbox is inbox:
            self.close()

    def push(self, message: dict[str, Any]) -> bool:
        """Queue a server-initiated message for the GET stream; False if there is none or it is full."""
        if self.outbox is None:
            return False
        try:
            self.outbox.send_nowait(message)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        return True

    def close(self) -> None:
        if self.outbox is not None:
            self.outbox.close()
        self.outbox = self.inbox = None


class SessionUnavailable(Exception):
    """The session may exist but its record cannot be reached now (shared store down): retry."""


class SessionStore(Protocol):
    """Where sessions live. `get` is local only; `load` may ask a shared store."""

    ids: SessionIds

    async def create(self, record: SessionRecord) -> LocalSession: ...
    def get(self, session_id: str) -> LocalSession | None: ...
    async def load(self, session_id: str) -> LocalSession | None: ...
    async def save(self, session: LocalSession) -> None: ...
    async def delete(self, session_id: str) -> bool: ...
    def sweep(self, idle_timeout: float) -> int: ...
    def has_room(self, limit: int, idle_timeout: float) -> bool: ...
    def __len__(self) -> int: ...
    def all(self) -> list[LocalSession]: ...


class MemorySessionStore:
    """Sessions in a dict, bounded by `max_sessions` and swept when idle."""

    def __init__(
        self, ids: SessionIds | None = None, on_delete: Callable[[SessionRecord], None] | None = None
    ) -> None:
        """`on_delete` is told of every session that ends (DELETE or idle sweep), to release
        what it held."""
        self.ids = ids or SessionIds(secrets.token_bytes(32))
        self._sessions: dict[str, LocalSession] = {}
        self.on_delete = on_delete

    async def create(self, record: SessionRecord) -> LocalSession:
        session = LocalSession(record)
        self._sessions[record.id] = session
        return session

    def get(self, session_id: str) -> LocalSession | None:
        session = self._sessions.get(session_id)
        if session is not None:
            session.last_seen = time.monotonic()
        return session

    async def load(self, session_id: str) -> LocalSession | None:
        return self.get(session_id)

    async def save(self, session: LocalSession) -> None:
        """Nothing to do: the record is the one in the dict."""

    async def delete(self, session_id: str) -> bool:
        return self.drop(session_id)

    def drop(self, session_id: str) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        session.close()
        if self.on_delete is not None:
            self.on_delete(session.record)
        return True

    def sweep(self, idle_timeout: float) -> int:
        """End sessions idle for longer than `idle_timeout` that hold no open stream."""
        cutoff = time.monotonic() - idle_timeout
        stale = [sid for sid, s in self._sessions.items() if s.last_seen < cutoff and s.outbox is None]
        for session_id in stale:
            self.drop(session_id)
        return len(stale)

    def has_room(self, limit: int, idle_timeout: float) -> bool:
        """Room for one more session under `limit`, once sessions past their idle timeout are
        ended. Only those make room: ending live ones would let any client evict every other
        client's session."""
        if len(self._sessions) >= limit:
            self.sweep(idle_timeout)
        return len(self._sessions) < limit

    def __len__(self) -> int:
        return len(self._sessions)

    def all(self) -> list[LocalSession]:
        return list(self._sessions.values())


class SessionIds:
    """Session ids: 128 random bits plus an HMAC tag made with the cluster key.

    `<token>.<tag>`, both URL-safe base64 (visible ASCII, as the spec requires, and valid as a
    NATS subject token and KV key). A replica checks the tag before any lookup, so a forged or
    mistyped id costs one HMAC, never a store round trip. The tag is 96 bits: guessing one is
    as hopeless as guessing a token.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def new(self) -> str:
        token = secrets.token_urlsafe(16)
        return f"{token}.{self._tag(token)}"

    def valid(self, session_id: str) -> bool:
        token, dot, tag = session_id.partition(".")
        return bool(dot) and len(token) == 22 and hmac.compare_digest(tag, self._tag(token))

    def _tag(self, token: str) -> str:
        digest = hmac.new(self._key, token.encode(), hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(digest).decode()


def token_of(session_id: str) -> str:
    """The random part of a (valid) session id: the key under which shared stores keep it."""
    return session_id.partition(".")[0]
