"""Resumable SSE streams for 2025-11-25 clients: event ids, `retry`, `Last-Event-ID`.

When a backend closes a request's stream early (SSE polling, 2025-11-25), the router does the
same to its client: it sends a priming event (an id, `retry`, no data) and ends the response.
What the call produces afterwards (progress, questions to the client, the response) is kept here,
and the client's GET with `Last-Event-ID` replays it and follows the stream until the response.

Memory is bounded: at most `max_streams` streams (the oldest are forgotten first) of at most
`max_events` events each; a resumption of a forgotten stream gets 410 and the client sends its
request again (not 404, which would tell it that its session is gone).

With replicas (`replica` given) a stream id starts with the replica that keeps its events,
`<replica>.<random>`, so event ids are `<replica>.<random>.<seq>`: a resumption that reaches
another replica knows where to fetch them: from `RemoteEvents`, which `router/cluster/events.py`
implements over NATS (this module names only the protocol, so the server never imports cluster).
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self

import anyio

_STREAM_PREFIX = secrets.token_urlsafe(6)
_SEQ = re.compile(r"[0-9]{1,18}")
_stream_numbers = itertools.count(1)

GONE = (
    "the router replica that held this stream is gone, and the events it kept with it; "
    "the request's outcome is unknown: send it again"
)
UNKNOWN = "Unknown or expired Last-Event-ID: send the request again"
# (event id, data) to write, or None for a keepalive
Write = Callable[[str | None, bytes], Awaitable[None]]


class ResumeRefused(Exception):
    """Why a resumption cannot be served, as the HTTP status and message the client gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Replay(Protocol):
    """A stream another replica keeps, followed from here until its response (or silence)."""

    async def follow(self, write: Write) -> None: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class RemoteEvents(Protocol):
    """Streams whose events another replica keeps (the replica named in the event id)."""

    async def open(self, keeper: str, session_id: str, last_event_id: str) -> Replay:
        """The stream after `last_event_id`; `ResumeRefused` if it cannot be had."""
        ...


@dataclass(eq=False)
class EventLog:
    """One polled request stream: its events in order, and whether its response is among them."""

    stream_id: str
    session_id: str
    events: list[tuple[str, bytes]] = field(default_factory=list)
    first_seq: int = 0
    done: bool = False
    changed: anyio.Event = field(default_factory=anyio.Event)

    def event_id(self, seq: int) -> str:
        return f"{self.stream_id}.{seq}"

    def after(self, seq: int) -> list[tuple[str, bytes]]:
        start = max(0, seq + 1 - self.first_seq)
        return self.events[start:]

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.events) - 1


class EventStore:
    def __init__(self, max_streams: int = 1000, max_events: int = 1000, replica: str = "") -> None:
        self.max_streams = max_streams
        self.max_events = max_events
        self.replica = replica
        self._prefix = f"{replica}." if replica else ""
        self._logs: OrderedDict[str, EventLog] = OrderedDict()

    def new_stream_id(self) -> str:
        """Unique per replica (a counter, no system entropy per request); guessing one gains
        nothing, since a stream is only ever resumed by the session that owns it."""
        return f"{self._prefix}{_STREAM_PREFIX}{next(_stream_numbers):x}"

    def keeper(self, last_event_id: str) -> str | None:
        """The other replica an event id says keeps its stream; None if it is this one or none."""
        parts = last_event_id.split(".")
        if len(parts) != 3 or not self.replica or parts[0] == self.replica:
            return None
        return parts[0]

    def open(self, session_id: str, stream_id: str | None = None) -> EventLog:
        log = EventLog(stream_id or self.new_stream_id(), session_id)
        self._logs[log.stream_id] = log
        while len(self._logs) > self.max_streams:
            self._logs.popitem(last=False)
        return log

    def append(self, log: EventLog, data: bytes, *, final: bool = False) -> str:
        """Keep one event (`data` is the JSON of the message; b"" primes); returns its id."""
        seq = log.first_seq + len(log.events)
        event_id = log.event_id(seq)
        log.events.append((event_id, data))
        if len(log.events) > self.max_events:
            drop = len(log.events) - self.max_events
            del log.events[:drop]
            log.first_seq += drop
        log.done = log.done or final
        log.changed.set()
        log.changed = anyio.Event()
        return event_id

    def find(self, session_id: str, last_event_id: str) -> tuple[EventLog, int] | None:
        """The stream `last_event_id` belongs to (if it is this session's) and the sequence number."""
        stream_id, _, seq_text = last_event_id.rpartition(".")
        log = self._logs.get(stream_id)
        # ASCII digits only, and no more than a sequence number can have: `isdigit` alone is true
        # for "²" and for 5000 nines, which `int` refuses (a 500 for a forged header).
        if log is None or log.session_id != session_id or not _SEQ.fullmatch(seq_text):
            return None
        return log, int(seq_text)

    def forget(self, log: EventLog) -> None:
        self._logs.pop(log.stream_id, None)
