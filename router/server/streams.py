"""SSE on the client side: a POST's reply stream, long-lived streams, and the replay of a polled one.

`ReplyStream` is a POST's reply: plain JSON, or an SSE stream once a related message has to go
first; for 2025-11-25 sessions a resumable stream from the start (see its docstring).
`serve_sse` holds a long-lived response (a session's GET stream, a listen stream, a replay) and
`drain` writes an inbox into it; `follow` serves a client's GET with `Last-Event-ID` from the
event store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from router.nesting import client_json
from router.server.events import EventLog, EventStore
from router.server.replies import Receive, Send, cancel_on_disconnect
from router.upstream.base import STREAM_PAUSED

SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]
KEEPALIVE_SECONDS = 15.0


async def serve_sse(
    receive: Receive,
    send: Send,
    produce: Callable[[], Awaitable[bytes | None]],
    on_end: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """A 200 SSE response whose events `produce` writes, until it returns (optionally the last
    bytes of the response) or the client leaves (a client that went away while we wrote is not
    an error). `on_end` runs before the response is closed, however it ends, so nothing is
    handed to a stream that is already over."""
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    # The head goes now, not with the first event: a session's GET stream may have nothing to say
    # for a while (a keepalive every 15 s), and a client waiting for the head thinks it hangs.
    await send_body(send, b"")
    last: bytes | None = None
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_on_disconnect, receive, tg.cancel_scope)
            with contextlib.suppress(OSError):
                last = await produce()
            tg.cancel_scope.cancel()
    finally:
        if on_end is not None:
            with anyio.CancelScope(shield=True):
                await on_end()
    with contextlib.suppress(OSError):
        await send_body(send, last or b"", more=False)


async def drain(
    send: Send, inbox: MemoryObjectReceiveStream[Any], frame: Callable[[Any], bytes], keepalive: float
) -> None:
    """Write every message of `inbox` as `frame` encodes it, and a keepalive comment after
    `keepalive` quiet seconds, until the inbox ends (the router closed the stream)."""
    while True:
        with anyio.move_on_after(keepalive):
            try:
                message = await inbox.receive()
            except anyio.EndOfStream:
                return
            await send_body(send, frame(message))
            continue
        await send_body(send, b": keepalive\n\n")


async def follow(send: Send, log: EventLog, seq: int) -> None:
    while True:
        changed = log.changed
        batch = log.after(seq)
        for event_id, data in batch:
            if data:
                await send_body(send, sse(data, event_id))
        if batch:  # not log.last_seq: events kept while we were writing are sent next round
            seq = int(batch[-1][0].rpartition(".")[2])
        if log.done:
            return
        with anyio.move_on_after(KEEPALIVE_SECONDS):
            await changed.wait()
            continue
        await send_body(send, b": keepalive\n\n")


class ReplyStream:
    """A POST's reply: JSON, or an SSE stream once a related message arrives first.

    For a 2025-11-25 session (`events` given) the reply is a resumable SSE stream from the start:
    a priming event (id, `retry`), then every event with an id, kept in the event store until
    the response went out, so a client whose stream dropped can GET the rest with
    `Last-Event-ID`. A backend's polling close is mirrored: the response ends after what was
    sent so far, and the rest of the call waits in the store for the client's GET.

    The priming event goes out with the first thing written after it (a related message, a
    polling close, or the response): on the wire it is still first, and a quick call costs one
    write, as a JSON reply does. A long call that sends nothing meanwhile has no event id to
    resume from until it does."""

    __slots__ = (
        "events",
        "live",
        "log",
        "priming",
        "retry_ms",
        "send",
        "session_id",
        "started",
        "stream_id",
    )

    def __init__(
        self, send: Send, events: EventStore | None = None, session_id: str | None = None, retry_ms: int = 0
    ) -> None:
        self.send = send
        self.started = False
        self.live = True
        self.events, self.session_id, self.retry_ms = events, session_id, retry_ms
        self.log: EventLog | None = None
        self.stream_id: str | None = None
        self.priming = b""

    async def prime(self) -> None:
        """Make this a resumable stream with its priming event (2025-11-25 sessions).

        The event log is opened only when something has to be kept (a related message or a
        polling close); a call whose response comes first costs no store work at all."""
        if self.events is None or self.session_id is None:
            return
        self.stream_id = self.events.new_stream_id()
        self.priming = f"id: {self.stream_id}.0\nretry: {self.retry_ms}\ndata: \n\n".encode()

    def _opened_log(self) -> EventLog | None:
        if self.log is None and self.events is not None and self.stream_id is not None:
            self.log = self.events.open(self.session_id or "", self.stream_id)
            self.events.append(self.log, b"")  # the priming event, id <stream>.0
        return self.log

    @property
    def is_stream(self) -> bool:
        """Does the reply go out as SSE (it started as one, or it is resumable)?"""
        return self.started or self.stream_id is not None

    async def emit(self, message: dict[str, Any]) -> None:
        if message.get("method") == STREAM_PAUSED:
            await self._pause()
            return
        data = client_json(message)
        if data is None:
            return
        log = self._opened_log()
        event_id = self.events.append(log, data) if log is not None and self.events else None
        if self.live:
            await self._start()
            await self._write(sse(data, event_id))

    async def _start(self) -> None:
        if not self.started:
            self.started = True
            await self.send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})

    async def _write(self, chunk: bytes, more: bool = True) -> None:
        if self.priming:
            chunk, self.priming = self.priming + chunk, b""
        with contextlib.suppress(OSError):  # the client left; it may come back with Last-Event-ID
            await send_body(self.send, chunk, more)

    async def _pause(self) -> None:
        if self._opened_log() is None or not self.live:
            return  # this client cannot resume: keep its stream open, the channel resumes upstream
        self.live = False
        await self._start()
        await self._write(b"", more=False)

    async def finish(self, body: bytes) -> None:
        if self.log is None and self.stream_id is not None:  # nothing went before: nothing to keep
            await self._start()
            await self._write(sse(body, f"{self.stream_id}.1"), more=False)
            return
        if self.log is not None and self.events is not None:
            event_id = self.events.append(self.log, body, final=True)
            if self.live:
                await self._start()
                await self._write(sse(body, event_id), more=False)
                self.events.forget(self.log)  # delivered: nothing left to resume
            return
        await self._write(sse(body), more=False)


def sse(data: bytes, event_id: str | None = None) -> bytes:
    head = b"id: " + event_id.encode() + b"\n" if event_id is not None else b""
    return head + b"event: message\ndata: " + data + b"\n\n"


async def send_body(send: Send, body: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})
