"""Legacy-era client sessions (2025-xx `initialize`): the record and where it is kept.

The record is plain data so that a shared store can hold it; what only makes sense on this
replica (the client's open GET stream) is kept beside it in `LocalSession`. The in-memory store
is the embedded default; `SessionStore` is the seam a shared store implements.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

OUTBOX_SIZE = 256


@dataclass(slots=True)
class SessionRecord:
    id: str
    protocol_version: str
    client_info: dict[str, Any] = field(default_factory=dict)
    client_capabilities: dict[str, Any] = field(default_factory=dict)
    log_level: str | None = None
    created: float = field(default_factory=time.time)


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


class SessionStore(Protocol):
    def create(self, record: SessionRecord) -> LocalSession: ...
    def get(self, session_id: str) -> LocalSession | None: ...
    def delete(self, session_id: str) -> bool: ...
    def sweep(self, idle_timeout: float) -> int: ...
    def __len__(self) -> int: ...
    def all(self) -> list[LocalSession]: ...


class MemorySessionStore:
    """Sessions in a dict, bounded by `max_sessions` and swept when idle."""

    def __init__(self) -> None:
        self._sessions: dict[str, LocalSession] = {}

    def create(self, record: SessionRecord) -> LocalSession:
        session = LocalSession(record)
        self._sessions[record.id] = session
        return session

    def get(self, session_id: str) -> LocalSession | None:
        session = self._sessions.get(session_id)
        if session is not None:
            session.last_seen = time.monotonic()
        return session

    def delete(self, session_id: str) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        session.close()
        return True

    def sweep(self, idle_timeout: float) -> int:
        """End sessions idle for longer than `idle_timeout` that hold no open stream."""
        cutoff = time.monotonic() - idle_timeout
        stale = [sid for sid, s in self._sessions.items() if s.last_seen < cutoff and s.outbox is None]
        for session_id in stale:
            self.delete(session_id)
        return len(stale)

    def __len__(self) -> int:
        return len(self._sessions)

    def all(self) -> list[LocalSession]:
        return list(self._sessions.values())


def new_session_id() -> str:
    """128 bits from the OS CSPRNG, URL-safe, visible ASCII as the spec requires."""
    return secrets.token_urlsafe(16)
