"""The MCP Streamable HTTP endpoint (`/mcp`) for both protocol eras.

A POST is parsed once. Its era is read off the message: a `_meta` protocol-version envelope (or
the 2026-07-28 version header without a session) means the stateless 2026-07-28 era; anything
else is the session-based 2025 era, which starts with `initialize`. The reply is JSON unless the
backend sends something related to the request (progress, a log line) before its response: then
the reply turns into an SSE stream on the spot, since no byte of it has been sent yet.

GET opens a legacy session's stream for messages the router sends on its own (list_changed);
DELETE ends a session. Status codes follow the spec: 400 malformed, 404 unknown session or
(2026) unknown method, 405 GET/DELETE in the 2026 era, 406 bad Accept, 413 too large, 415 not
JSON, 403 foreign Origin, 421 foreign Host.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import orjson

from router import eras
from router.eras import (
    HTTP_STATUS,
    LEGACY_VERSIONS,
    LOG_LEVEL_KEY,
    MODERN_VERSION,
    PROTOCOL_VERSION_KEY,
    forwarded_headers,
)
from router.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    RPCError,
)
from router.guard.agent import ANONYMOUS, Agent, AuthError
from router.guard.identity import Authenticator
from router.guard.policy import OPEN, Guard, View
from router.observe import tracing
from router.observe.calls import CallObserver
from router.observe.metrics import Metrics
from router.relay.context import CallContext, Result
from router.relay.dispatch import Dispatcher
from router.server.events import EventStore
from router.server.http11 import DISCONNECT_EXTENSION
from router.server.listen import serve_listen
from router.server.replies import (
    JSON_HEADERS,
    Receive,
    Scope,
    Send,
    cancel_on_disconnect,
    decoded_headers,
    error_bytes,
    read_body,
    response_bytes,
    send_error,
    send_plain,
    send_reply,
)
from router.server.security import OriginPolicy
from router.server.streams import (
    KEEPALIVE_SECONDS,
    ReplyStream,
    drain,
    follow,
    send_body,
    serve_sse,
    sse,
)
from router.state.bus import ClientBus, LocalBus, MayRead
from router.state.listeners import ListenStreams
from router.state.sessions import LocalSession, SessionRecord, SessionStore, SessionUnavailable

if TYPE_CHECKING:
    from router.state.events_link import SharedEvents

log = logging.getLogger("toolmesh.server")

SESSION_NOT_FOUND = -32001
# Legacy versions whose clients resume streams with Last-Event-ID after a polling close.
POLLING_VERSIONS = frozenset({"2025-11-25"})
CANCELLED = RPCError(-32800, "Request cancelled")
T = TypeVar("T")
# The server protocol's disconnect hook (server/http11.py): given a callback, or None to clear it.
DisconnectHook = Callable[[Callable[[], None] | None], None]


@dataclass(frozen=True, slots=True)
class Admitted:
    """Who sent the HTTP request being served, decided once by `McpEndpoint.admit` (for `/mcp`
    and `/v1/tools` alike)."""

    agent: Agent
    view: View
    trace: tracing.Trace | None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is turned away before it is read: an HTTP status, a reason, extra headers."""

    status: int
    reason: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


_NOBODY = Admitted(ANONYMOUS, OPEN, None)
# Set once per HTTP request in `McpEndpoint.__call__` (each request runs in its own task).
_caller: contextvars.ContextVar[Admitted | None] = contextvars.ContextVar("toolmesh_caller", default=None)


def _current() -> Admitted:
    return _caller.get() or _NOBODY


class McpEndpoint:
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
        retry_ms: int = 1000,
        resumable_streams: bool = True,
    ) -> None:
        self.auth = auth
        self.guard = guard
        self.observer = observer
        self.trace = trace
        self.dispatcher = dispatcher
        self.sessions = sessions
        self.bus: ClientBus = bus or LocalBus(sessions)
        self.listen_streams = listen_streams if listen_streams is not None else ListenStreams()
        self.events = events if events is not None else EventStore()
        # With replicas: resumes streams whose events another replica keeps.
        self.shared_events: SharedEvents | None = None
        self.retry_ms = retry_ms
        self.resumable_streams = resumable_streams
        # Calls in progress by (session id, request id), for notifications/cancelled.
        self._inflight: dict[tuple[str, Any], anyio.CancelScope] = {}
        self.origins = origins
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = decoded_headers(scope)
        caller = await self.admit(scope, headers)
        if isinstance(caller, Refusal):
            await send_plain(send, caller.status, caller.reason.encode(), caller.headers)
            return
        _caller.set(caller)
        method = scope["method"]
        if method == "POST":
            await self._post(scope, receive, send, headers)
        elif method == "GET":
            await self._get(receive, send, headers)
        elif method == "DELETE":
            await self._delete(send, headers)
        else:
            await send_plain(send, 405, b"Method Not Allowed", [(b"allow", b"GET, POST, DELETE")])

    async def admit(self, scope: Scope, headers: dict[str, str]) -> Admitted | Refusal:
        """Who is asking, or why they may not ask: Host and Origin checks, then identity.

        Every endpoint that calls tools admits through here (also `/v1/tools`), so they share
        one set of checks; each renders a refusal in its own format."""
        if not self.origins.host_ok(headers.get("host")):
            return Refusal(421, "Invalid Host header")
        if not self.origins.origin_ok(headers.get("origin")):
            return Refusal(403, "Invalid Origin header")
        agent = ANONYMOUS
        if self.auth is not None:
            try:
                agent = await self.auth.authenticate(headers, scope.get("client"))
            except AuthError as exc:
                self.metrics.auth_failures.labels(exc.reason).inc()
                challenge = [(b"www-authenticate", self.auth.challenge(headers, exc))]
                return Refusal(401, exc.description, challenge)
        view = self.guard.view(agent) if self.guard is not None else OPEN
        trace = tracing.start(headers.get("traceparent")) if self.trace else None
        return Admitted(agent, view, trace)

    # -- POST ---------------------------------------------------------------------------------

    async def _post(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> None:
        accept = headers.get("accept", "")
        wildcard = "*/*" in accept
        if not ((wildcard or "application/json" in accept) and (wildcard or "text/event-stream" in accept)):
            await send_plain(send, 406, b"Not Acceptable: accept both application/json and text/event-stream")
            return
        if not headers.get("content-type", "").startswith("application/json"):
            await send_plain(send, 415, b"Unsupported Media Type: send application/json")
            return
        body = await read_body(receive, self.max_body_bytes)
        if body is None:
            await send_plain(send, 413, b"Request body too large")
            return
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            await send_error(send, None, RPCError(PARSE_ERROR, f"Parse error: {exc}"), 400)
            return
        problem = eras.jsonrpc_problem(message)
        if problem is not None:
            await send_error(send, message.get("id") if isinstance(message, dict) else None, problem, 400)
            return
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        modern = (isinstance(meta, dict) and PROTOCOL_VERSION_KEY in meta) or (
            headers.get("mcp-protocol-version") == MODERN_VERSION and "mcp-session-id" not in headers
        )
        if modern:
            await self._post_modern(scope, receive, send, headers, message)
        else:
            await self._post_legacy(send, headers, message)

    async def _post_legacy(self, send: Send, headers: dict[str, str], message: dict[str, Any]) -> None:
        method = message.get("method")
        if method == "initialize":
            await self._initialize(send, message)
            return
        session_id = headers.get("mcp-session-id")
        if session_id is None:
            error = RPCError(
                INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required; send initialize first"
            )
            await send_error(send, message.get("id"), error, 400)
            return
        session = await self._find(send, session_id, message.get("id"))
        if session is None:
            return
        version = headers.get("mcp-protocol-version")
        if version is not None and version not in LEGACY_VERSIONS:
            error = RPCError(INVALID_REQUEST, f"Bad Request: unsupported MCP-Protocol-Version {version!r}")
            await send_error(send, message.get("id"), error, 400)
            return
        if method == "notifications/cancelled":
            request_id = (message.get("params") or {}).get("requestId")
            if not self.cancel(session_id, request_id):  # the call runs on another replica
                await self.bus.cancel(session_id, request_id)
        if method is None or "id" not in message:
            if method is None:  # the client's reply to a request we sent it, wherever it waits
                await self.bus.answer(session_id, message)
            await send_plain(send, 202, b"")  # notifications and responses: accepted
            return
        record = session.record
        ctx = CallContext(
            "legacy",
            client_capabilities=record.client_capabilities,
            log_level=record.log_level,
            session_id=record.id,
            affinity=record.affinity,
            subscriptions=record.subscriptions,
            upstream=record.upstream,
        )
        resumable = self.resumable_streams and record.protocol_version in POLLING_VERSIONS
        subscriptions, upstream = list(record.subscriptions), dict(record.upstream)
        affinity = dict(record.affinity)
        await self._respond(send, ctx, message, record.id if resumable else None)
        if (
            record.log_level != ctx.log_level
            or record.subscriptions != subscriptions
            or record.upstream != upstream
            or record.affinity != affinity  # so another replica picks the same instance
        ):
            record.log_level = ctx.log_level
            await self.sessions.save(session)

    async def _initialize(self, send: Send, message: dict[str, Any]) -> None:
        params = message.get("params")
        if "id" not in message or not isinstance(params, dict):
            await send_error(
                send, message.get("id"), RPCError(INVALID_PARAMS, "initialize needs an id and params"), 400
            )
            return
        if len(self.sessions) >= self.max_sessions:
            # Only sessions already past their idle timeout make room: ending live ones would let
            # any client evict every other client's session.
            self.sessions.sweep(self.idle_timeout)
        if len(self.sessions) >= self.max_sessions:
            error = RPCError(
                INTERNAL_ERROR,
                f"too many sessions (max_sessions = {self.max_sessions}); end unused sessions with "
                "DELETE, or retry later",
            )
            await send_error(send, message["id"], error, 503, [(b"retry-after", b"5")])
            return
        requested = params.get("protocolVersion")
        version = requested if requested in LEGACY_VERSIONS else LEGACY_VERSIONS[0]
        record = SessionRecord(
            id=self.sessions.ids.new(),
            protocol_version=version,
            client_info=params.get("clientInfo") or {},
            client_capabilities=params.get("capabilities") or {},
            identity={"agent": _current().agent.id, "groups": sorted(_current().agent.groups)},
        )
        await self.sessions.create(record)
        self.metrics.sessions.set(len(self.sessions))
        body = response_bytes(message["id"], self.dispatcher.initialize_result(version))
        await send_reply(send, 200, body, [*JSON_HEADERS, (b"mcp-session-id", record.id.encode())])

    async def _post_modern(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], message: dict[str, Any]
    ) -> None:
        try:
            checked = eras.check(message, headers, scope["headers"])
        except RPCError as exc:
            await send_error(send, message.get("id"), exc, HTTP_STATUS.get(exc.code, 400))
            return
        if "id" not in message:
            await send_plain(send, 202, b"")
            return
        if message["method"] == "subscriptions/listen":
            caller = _current()
            listen_ctx = CallContext("modern", agent=caller.agent, view=caller.view)
            try:
                self.dispatcher.check_listen(listen_ctx, message.get("params") or {})
            except RPCError as exc:
                await send_error(send, message["id"], exc, HTTP_STATUS.get(exc.code, 400))
                return
            await serve_listen(
                self.listen_streams,
                receive,
                send,
                message,
                KEEPALIVE_SECONDS,
                self.dispatcher.on_subscriptions,
                caller.agent,
            )
            return
        level = message["params"]["_meta"].get(LOG_LEVEL_KEY)
        ctx = CallContext(
            "modern",
            client_capabilities=checked.client_capabilities,
            log_level=level if isinstance(level, str) else None,
            forward_headers=forwarded_headers(headers) or None,
        )
        hook = (scope.get("extensions") or {}).get(DISCONNECT_EXTENSION)
        await self._respond(send, ctx, message, watch=receive, on_disconnect=hook)

    async def _respond(
        self,
        send: Send,
        ctx: CallContext,
        message: dict[str, Any],
        resumable_for: str | None = None,
        watch: Receive | None = None,
        on_disconnect: DisconnectHook | None = None,
    ) -> None:
        """Dispatch and write the reply, upgrading to SSE if related messages arrive first.

        With `resumable_for` (a 2025-11-25 session's id) a backend's polling close is passed on.
        A legacy call ends early on the client's `notifications/cancelled`; a 2026-07-28 call
        (`watch` given) when the client closes the response stream, its era's cancellation: told
        by the server protocol's `on_disconnect` hook, or else by a task waiting on `watch`."""
        started = time.perf_counter()
        stream = ReplyStream(send, self.events if resumable_for else None, resumable_for, self.retry_ms)
        await stream.prime()
        ctx.emit = stream.emit
        caller = _current()
        method = message["method"]
        params = message.get("params") or {}
        trace = caller.trace
        if trace is not None and trace.parent_id is None and "_meta" in params:
            trace = tracing.continue_from_meta(trace, params["_meta"])
        ctx.agent, ctx.view, ctx.trace = caller.agent, caller.view, trace
        scope = anyio.CancelScope()
        key = (ctx.session_id, message["id"]) if ctx.session_id is not None else None
        if key is not None:
            self._inflight[key] = scope
        try:
            done = await self.unless_gone(self._dispatch(ctx, message), scope, watch, on_disconnect)
        finally:
            if key is not None:
                self._inflight.pop(key, None)
        status, outcome, body, result, code = done or (
            200,
            "cancelled",
            error_bytes(message["id"], CANCELLED),
            None,
            CANCELLED.code,
        )
        elapsed = time.perf_counter() - started
        if stream.is_stream:
            await stream.finish(body)
        else:
            await send_reply(send, status, body, JSON_HEADERS)
        # Bookkeeping after the reply has left (server/http11.py writes a complete response at once).
        self.finished(ctx, method, params, outcome, elapsed, result, code)

    async def unless_gone(
        self,
        call: Awaitable[T],
        scope: anyio.CancelScope,
        watch: Receive | None,
        on_disconnect: DisconnectHook | None,
    ) -> T | None:
        """What `call` returns, or None if it was cancelled first: through `scope` (a legacy
        client's `notifications/cancelled`) or, with `watch`, when the client goes away, as the
        server protocol's `on_disconnect` hook tells, or else a task waiting on `watch`."""
        try:
            with scope:
                if watch is None:
                    return await call
                if on_disconnect is not None:
                    on_disconnect(scope.cancel)
                    return await call
                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel_on_disconnect, watch, scope)
                    result = await call
                    tg.cancel_scope.cancel()
                    return result
        finally:
            if on_disconnect is not None:
                on_disconnect(None)
        return None

    def finished(
        self,
        ctx: CallContext,
        method: str,
        params: dict[str, Any],
        outcome: str,
        elapsed: float,
        result: Result | None,
        code: int | None,
    ) -> None:
        """After the reply has left: the request metrics, and the call's metrics and audit record."""
        self.metrics.observe_request(method, outcome, elapsed)
        if self.observer is not None:
            self.observer.finished(ctx, method, params, result, code, elapsed)

    async def _dispatch(
        self, ctx: CallContext, message: dict[str, Any]
    ) -> tuple[int, str, bytes, Result | None, int | None]:
        """(HTTP status, outcome, body, result, error code) of one request."""
        try:
            result: Result = await self.dispatcher.dispatch(
                ctx, message["method"], message.get("params") or {}
            )
            return 200, "ok", response_bytes(message["id"], result, modern=ctx.era == "modern"), result, None
        except RPCError as exc:
            status = HTTP_STATUS.get(exc.code, 200) if ctx.era == "modern" else 200
            return status, "error", error_bytes(message["id"], exc), None, exc.code

    def cancel(self, session_id: str, request_id: Any) -> bool:
        """End a legacy session's call running here; False if it does not run here."""
        scope = self._inflight.get((session_id, request_id)) if isinstance(request_id, str | int) else None
        if scope is None:
            return False
        scope.cancel()
        return True

    # -- GET and DELETE -----------------------------------------------------------------------

    async def _get(self, receive: Receive, send: Send, headers: dict[str, str]) -> None:
        if headers.get("mcp-protocol-version") == MODERN_VERSION and "mcp-session-id" not in headers:
            await send_plain(send, 405, b"Method Not Allowed", [(b"allow", b"POST")])
            return
        if "text/event-stream" not in headers.get("accept", "") and "*/*" not in headers.get("accept", ""):
            await send_plain(send, 406, b"Not Acceptable: accept text/event-stream")
            return
        session = await self._session_or_reply(send, headers)
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
            return sse(orjson.dumps(event), str(session.next_event))

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
            if keeper is not None and self.shared_events is not None:
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
        """Replay a stream whose events another replica keeps (state/events_link.py)."""
        from router.state.events_link import ResumeRefused  # with NATS only: keeps nats unloaded

        assert self.shared_events is not None
        try:
            replay = await self.shared_events.open(keeper, session.record.id, last_event_id)
        except ResumeRefused as exc:
            await send_error(send, None, RPCError(INVALID_REQUEST, exc.message), exc.status)
            return

        async def write(event_id: str | None, data: bytes) -> None:
            await send_body(send, sse(data, event_id) if event_id is not None else b": keepalive\n\n")

        async with replay:
            await serve_sse(receive, send, lambda: replay.follow(write))

    async def _delete(self, send: Send, headers: dict[str, str]) -> None:
        if headers.get("mcp-protocol-version") == MODERN_VERSION and "mcp-session-id" not in headers:
            await send_plain(send, 405, b"Method Not Allowed", [(b"allow", b"POST")])
            return
        session = await self._session_or_reply(send, headers)
        if session is None:
            return
        await self.sessions.delete(session.record.id)
        self.metrics.sessions.set(len(self.sessions))
        await send_plain(send, 200, b"")

    async def _session_or_reply(self, send: Send, headers: dict[str, str]) -> LocalSession | None:
        session_id = headers.get("mcp-session-id")
        if session_id is None:
            await send_error(
                send, None, RPCError(INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required"), 400
            )
            return None
        return await self._find(send, session_id, None)

    async def _find(self, send: Send, session_id: str, request_id: Any) -> LocalSession | None:
        """The session, from this replica or the shared store; otherwise reply 404 (or 503) and None.

        A forged or mangled id fails its signature check here, before any store is asked; a
        session this replica holds had its id checked when it was created or loaded.
        """
        session = self.sessions.get(session_id)
        if session is None and self.sessions.ids.valid(session_id):
            try:
                session = await self.sessions.load(session_id)
            except SessionUnavailable as exc:
                await send_error(send, request_id, RPCError(INTERNAL_ERROR, str(exc)), 503)
                return None
        if session is None or session.record.agent != _current().agent.id:  # another agent's: not found
            error = RPCError(SESSION_NOT_FOUND, "Session not found: initialize a new session")
            await send_error(send, request_id, error, 404)
            return None
        return session

    # -- fan-out ------------------------------------------------------------------------------

    def broadcast(self, message: dict[str, Any], may_read: MayRead | None = None) -> int:
        """Hand a fan-out event (list_changed, resources/updated) to every interested client here:
        legacy GET streams (through the bus) and 2026-07-28 listen streams.

        Each replica broadcasts only to its own streams: every replica sees the same catalog
        changes, and every stream is held by one replica, so each client hears it once.
        """
        return self.bus.broadcast(message, may_read) + self.listen_streams.publish(message, may_read)
