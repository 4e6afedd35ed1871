"""The MCP Streamable HTTP endpoint (`/mcp`) for both protocol eras: admit, parse, hand over.

A request is admitted first (`admission.py`: Host, Origin, identity). A POST is parsed once. Its
era is read off the message (`eras.is_modern_request`): a `_meta` protocol-version envelope
(or the 2026-07-28 version header without a session) means the stateless 2026-07-28 era
(`stateless_era.py`); anything else is the session-based 2025 era (`session_era.py`), which
starts with `initialize`. Either way the call itself goes through `calls.py`, whose reply is JSON
unless the backend sends something related to the request (progress, a log line) before its
response: then the reply turns into an SSE stream on the spot, since no byte of it has been sent
yet.

GET opens a legacy session's stream for messages the router sends on its own (list_changed), or
resumes a polled POST stream (`session_streams.py`); DELETE ends a session. Status codes follow
the spec: 400 malformed, 404 unknown session or (2026) unknown method, 405 GET/DELETE in the
2026 era, 406 bad Accept, 413 too large, 415 not JSON, 403 foreign Origin, 421 foreign Host.
"""

from __future__ import annotations

from typing import Any

import orjson

from router import eras
from router.errors import INVALID_PARAMS, PARSE_ERROR, RPCError
from router.guard.guard import Guard
from router.guard.identity import Authenticator
from router.nesting import nesting_error, too_deep
from router.observe.metrics import Metrics
from router.relay.dispatch import Dispatcher
from router.relay.meta_tools import tools_mode_of
from router.server.admission import (
    Admission,
    Admitted,
    Refusal,
    accepts_json_and_sse,
    accepts_sse,
    sends_json,
)
from router.server.bookkeeping import CallObserver
from router.server.calls import Calls
from router.server.events import EventStore, RemoteEvents
from router.server.replies import Receive, Scope, Send, decoded_headers, read_body, send_error, send_refusal
from router.server.security import OriginPolicy
from router.server.session_era import SessionEra
from router.server.session_streams import SessionStreams
from router.server.stateless_era import StatelessEra
from router.state.bus import ClientBus, LocalBus, MayRead
from router.state.listeners import ListenStreams
from router.state.sessions import SessionStore


class McpEndpoint:
    """`/mcp`, assembled from its parts: admission, the shared call path, the two eras and the
    session streams. `admission` and `calls` serve `/v1/tools` too (`tools_http.py`)."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        sessions: SessionStore,
        origins: OriginPolicy,
        metrics: Metrics,
        *,
        max_body_bytes: int,
        max_sessions: int,
        idle_timeout: float,
        bus: ClientBus | None = None,
        auth: Authenticator | None = None,
        guard: Guard | None = None,
        observer: CallObserver | None = None,
        trace: bool = True,
        listen_streams: ListenStreams | None = None,
        events: EventStore | None = None,
        remote_events: RemoteEvents | None = None,
        retry_ms: int = 1000,
        resumable_streams: bool = True,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        bus = bus or LocalBus(sessions)
        self.listen_streams = listen_streams if listen_streams is not None else ListenStreams()
        events = events if events is not None else EventStore()
        self.admission = Admission(origins, metrics, auth=auth, guard=guard, trace=trace)
        self.calls = Calls(dispatcher, metrics, events, observer=observer, retry_ms=retry_ms)
        self.session_era = SessionEra(
            self.calls,
            dispatcher,
            sessions,
            bus,
            metrics,
            max_sessions=max_sessions,
            idle_timeout=idle_timeout,
            resumable_streams=resumable_streams,
        )
        self.stateless_era = StatelessEra(self.calls, dispatcher, self.listen_streams)
        self.streams = SessionStreams(self.session_era, bus, events, remote_events)
        self.bus = bus

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, namespace: str | None = None
    ) -> None:
        """Serve one request; with `namespace`, as the virtual server `/mcp/{namespace}`."""
        headers = decoded_headers(scope)
        admitted = await self.admission.admit(scope, headers, namespace)
        if isinstance(admitted, Refusal):
            await send_refusal(send, admitted.status, admitted.reason, admitted.headers)
            return
        method = scope["method"]
        if method == "POST":
            await self._post(scope, receive, send, headers, admitted)
        elif method not in {"GET", "DELETE"}:
            await send_refusal(send, 405, "Method Not Allowed", [(b"allow", b"GET, POST, DELETE")])
        elif eras.is_modern_headers(headers):
            await send_refusal(send, 405, "Method Not Allowed", [(b"allow", b"POST")])  # no sessions
        elif method == "DELETE":
            await self.session_era.delete(send, headers, admitted)
        elif not accepts_sse(headers):
            await send_refusal(send, 406, "Not Acceptable: accept text/event-stream")
        else:
            await self.streams.get(receive, send, headers, admitted)

    async def _post(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], admitted: Admitted
    ) -> None:
        if not accepts_json_and_sse(headers):
            await send_refusal(
                send, 406, "Not Acceptable: accept both application/json and text/event-stream"
            )
            return
        if not sends_json(headers):
            await send_refusal(send, 415, "Unsupported Media Type: send application/json")
            return
        body = await read_body(receive, self.max_body_bytes, headers.get("content-length"))
        if body is None:
            await send_refusal(send, 413, "Request body too large")
            return
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            await send_error(send, None, RPCError(PARSE_ERROR, f"Parse error: {exc}"), 400)
            return
        problem = eras.jsonrpc_problem(message) or (nesting_error() if too_deep(body, message) else None)
        if problem is not None:
            await send_error(send, message.get("id") if isinstance(message, dict) else None, problem, 400)
            return
        try:
            tools_mode = tools_mode_of(scope.get("query_string") or b"")
        except ValueError as exc:
            await send_error(send, message.get("id"), RPCError(INVALID_PARAMS, str(exc)), 400)
            return
        if eras.is_modern_request(message, headers):
            await self.stateless_era.post(scope, receive, send, headers, message, admitted, tools_mode)
        else:
            await self.session_era.post(send, headers, message, admitted, tools_mode)

    def cancel(self, session_id: str, request_id: Any) -> bool:
        """End a legacy session's call running here; False if it does not run here."""
        return self.session_era.cancel(session_id, request_id)

    def broadcast(self, message: dict[str, Any], may_read: MayRead | None = None) -> int:
        """Hand a fan-out event (list_changed, resources/updated) to every interested client here:
        legacy GET streams (through the bus) and 2026-07-28 listen streams.

        Each replica broadcasts only to its own streams: every replica sees the same catalog
        changes, and every stream is held by one replica, so each client hears it once.
        """
        return self.bus.broadcast(message, may_read) + self.listen_streams.publish(message, may_read)
