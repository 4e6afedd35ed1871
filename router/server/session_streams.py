"""GET on `/mcp` (session era): a session's stream of router messages, or a resumed POST stream.

Without `Last-Event-ID`, or with a number (an id of a GET stream's own events, which are not
kept), the GET opens the session's stream for messages the router sends on its own
(list_changed, resources/updated, requests to the client), through the client bus. With the id
of a polled 2025-11-25 POST stream (`<stream>.<seq>`) it replays that stream after the id and
follows it to its response: from this replica's event store, or, with replicas, from the one
that keeps it (`server/events.py` `RemoteEvents`, implemented over NATS in `router/cluster/events.py`).
"""

from __future__ import annotations

from typing import Any

from router.errors import INVALID_REQUEST, RPCError
from router.nesting import client_json
from router.server.admission import Admitted
from router.server.events import EventStore, RemoteEvents, ResumeRefused
from router.server.replies import Receive, Send, send_error
from router.server.session_era import SessionEra
from router.server.streams import KEEPALIVE_SECONDS, drain, follow, send_body, serve_sse, sse
from router.state.bus import ClientBus
from router.state.sessions import LocalSession


class SessionStreams:
    def __init__(
        self,
        era: SessionEra,
        bus: ClientBus,
        events: EventStore,
        remote_events: RemoteEvents | None = None,
    ) -> None:
        self.era = era
        self.bus = bus
        self.events = events
        # With replicas: resumes streams whose events another replica keeps.
        self.remote_events = remote_events

    async def get(self, receive: Receive, send: Send, headers: dict[str, str], admitted: Admitted) -> None:
        session = await self.era.session_or_reply(send, headers, admitted)
        if session is None:
            return
        last_event_id = headers.get("last-event-id")
        if last_event_id is not None and not last_event_id.isdigit():
            await self._resume(receive, send, session, last_event_id)
            return
        # A number is an id of this GET stream's own events, which are not kept: a client
        # reconnecting it gets a new stream (replay is optional), not an error that would leave it
        # without one.
        inbox = session.open_stream()
        await self.bus.stream_opened(session)

        def frame(event: dict[str, Any]) -> bytes:
            session.next_event += 1
            data = client_json(event)
            return sse(data, str(session.next_event)) if data is not None else b""

        async def deliver() -> None:
            await drain(send, inbox, frame, KEEPALIVE_SECONDS)

        async def closed() -> None:
            session.detach(inbox)
            await self.bus.stream_closed(session)

        await serve_sse(receive, send, deliver, on_end=closed)

    async def _resume(self, receive: Receive, send: Send, session: LocalSession, last_event_id: str) -> None:
        """Replay a polled request stream after `last_event_id`, then follow it to its response."""
        found = self.events.find(session.record.id, last_event_id)
        if found is None:
            keeper = self.events.keeper(last_event_id)
            if keeper is not None and self.remote_events is not None:
                await self._resume_elsewhere(receive, send, session, keeper, last_event_id)
                return
            # Not 404: that would tell the client its session is gone, and it is not.
            error = RPCError(INVALID_REQUEST, "Unknown or expired Last-Event-ID: send the request again")
            await send_error(send, None, error, 410)
            return
        log, seq = found
        await serve_sse(receive, send, lambda: follow(send, log, seq))

    async def _resume_elsewhere(
        self, receive: Receive, send: Send, session: LocalSession, keeper: str, last_event_id: str
    ) -> None:
        """Replay a stream whose events another replica keeps (see `RemoteEvents`)."""

        assert self.remote_events is not None
        try:
            replay = await self.remote_events.open(keeper, session.record.id, last_event_id)
        except ResumeRefused as exc:
            await send_error(send, None, RPCError(INVALID_REQUEST, exc.message), exc.status)
            return

        async def write(event_id: str | None, data: bytes) -> None:
            await send_body(send, sse(data, event_id) if event_id is not None else b": keepalive\n\n")

        async with replay:
            await serve_sse(receive, send, lambda: replay.follow(write))
