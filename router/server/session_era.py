"""The session-based 2025 era of `/mcp`: initialize, session lookup, calls, cancellation, DELETE.

A client starts with `initialize` (turned away with 503 beyond `max_sessions`, after sessions
past their idle timeout made room) and sends the `Mcp-Session-Id` it got with every later
request. A session is found on this replica or loaded from the shared store; another agent's
session is not found, as a forged id is. A call can be ended by the client's
`notifications/cancelled`, here or, through the client bus, on the replica that runs it. What a
call changed in its session (log level, subscriptions, upstream sessions, affinity) is saved
after the reply.
"""

from __future__ import annotations

from typing import Any

import anyio

from router.eras import LATEST_LEGACY_VERSION, LEGACY, is_legacy_version, resumes_polled_streams
from router.errors import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, RPCError
from router.observe.metrics import Metrics
from router.relay.attempts import REQUEST_ID_HEADER, attempt_key
from router.relay.context import CallContext
from router.relay.dispatch import Dispatcher
from router.server.admission import Admitted
from router.server.calls import Calls
from router.server.replies import JSON_HEADERS, Send, response_bytes, send_error, send_plain, send_reply
from router.state.bus import ClientBus
from router.state.sessions import (
    LocalSession,
    SessionRecord,
    SessionStore,
    SessionUnavailable,
    capabilities_problem,
    kept_client_info,
)
from router.upstream.deadlines import cancel_scope

SESSION_NOT_FOUND = -32001


class SessionEra:
    def __init__(
        self,
        calls: Calls,
        dispatcher: Dispatcher,
        sessions: SessionStore,
        bus: ClientBus,
        metrics: Metrics,
        *,
        max_sessions: int,
        idle_timeout: float,
        resumable_streams: bool = True,
    ) -> None:
        self.calls = calls
        self.dispatcher = dispatcher
        self.sessions = sessions
        self.bus = bus
        self.metrics = metrics
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.resumable_streams = resumable_streams
        # Calls in progress by (session id, request id), for notifications/cancelled.
        self._inflight: dict[tuple[str, Any], anyio.CancelScope] = {}

    async def post(
        self,
        send: Send,
        headers: dict[str, str],
        message: dict[str, Any],
        admitted: Admitted,
        tools_mode: str | None = None,
    ) -> None:
        """`tools_mode`: the URL's `tools` parameter, which `initialize` fixes for the session."""
        method = message.get("method")
        if method == "initialize":
            await self.initialize(send, message, admitted, tools_mode)
            return
        session_id = headers.get("mcp-session-id")
        if session_id is None:
            error = RPCError(
                INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required; send initialize first"
            )
            await send_error(send, message.get("id"), error, 400)
            return
        session = await self.find(send, session_id, message.get("id"), admitted)
        if session is None:
            return
        version = headers.get("mcp-protocol-version")
        if version is not None and not is_legacy_version(version):
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
        await self._call(send, session, message, admitted, headers.get(REQUEST_ID_HEADER))

    async def _call(
        self,
        send: Send,
        session: LocalSession,
        message: dict[str, Any],
        admitted: Admitted,
        request_id: str | None,
    ) -> None:
        record = session.record
        ctx = CallContext(
            LEGACY,
            client_capabilities=record.client_capabilities,
            log_level=record.log_level,
            session_id=record.id,
            affinity=record.affinity,
            subscriptions=record.subscriptions,
            upstream=record.upstream,
            attempt=attempt_key(record.id, request_id, message["id"]),
            tools_mode=record.tools_mode,
        )
        resumable = self.resumable_streams and resumes_polled_streams(record.protocol_version)
        subscriptions, upstream = list(record.subscriptions), dict(record.upstream)
        affinity = dict(record.affinity)
        scope = cancel_scope()
        key = (record.id, message["id"])
        self._inflight[key] = scope
        try:
            await self.calls.respond(
                send, ctx, message, admitted, scope=scope, resumable_for=record.id if resumable else None
            )
        finally:
            self._inflight.pop(key, None)
        if (
            record.log_level != ctx.log_level
            or record.subscriptions != subscriptions
            or record.upstream != upstream
            or record.affinity != affinity  # so another replica picks the same instance
        ):
            record.log_level = ctx.log_level
            await self.sessions.save(session)

    async def initialize(
        self, send: Send, message: dict[str, Any], admitted: Admitted, tools_mode: str | None = None
    ) -> None:
        params = message.get("params")
        if "id" not in message or not isinstance(params, dict):
            await send_error(
                send, message.get("id"), RPCError(INVALID_PARAMS, "initialize needs an id and params"), 400
            )
            return
        if not self.sessions.has_room(self.max_sessions, self.idle_timeout):
            error = RPCError(
                INTERNAL_ERROR,
                f"too many sessions (max_sessions = {self.max_sessions}); end unused sessions with "
                "DELETE, or retry later",
            )
            await send_error(send, message["id"], error, 503, [(b"retry-after", b"5")])
            return
        capabilities = params.get("capabilities") or {}
        problem = capabilities_problem(capabilities)
        if problem is not None:
            await send_error(send, message["id"], RPCError(INVALID_PARAMS, problem), 400)
            return
        requested = params.get("protocolVersion")
        version = requested if is_legacy_version(requested) else LATEST_LEGACY_VERSION
        record = SessionRecord(
            id=self.sessions.ids.new(),
            protocol_version=version,
            client_info=kept_client_info(params.get("clientInfo")),
            client_capabilities=capabilities,
            identity=identity_of(admitted),
            tools_mode=tools_mode,
        )
        await self.sessions.create(record)
        body = response_bytes(message["id"], self.dispatcher.initialize_result(version, admitted.view))
        await send_reply(send, 200, body, [*JSON_HEADERS, (b"mcp-session-id", record.id.encode())])

    def cancel(self, session_id: str, request_id: Any) -> bool:
        """End a session's call running here; False if it does not run here."""
        scope = self._inflight.get((session_id, request_id)) if isinstance(request_id, str | int) else None
        if scope is None:
            return False
        scope.cancel()
        return True

    async def delete(self, send: Send, headers: dict[str, str], admitted: Admitted) -> None:
        session = await self.session_or_reply(send, headers, admitted)
        if session is None:
            return
        await self.sessions.delete(session.record.id)
        await send_plain(send, 200, b"")

    async def session_or_reply(
        self, send: Send, headers: dict[str, str], admitted: Admitted
    ) -> LocalSession | None:
        """The session a GET or DELETE names; otherwise the error reply has gone out and None."""
        session_id = headers.get("mcp-session-id")
        if session_id is None:
            await send_error(
                send, None, RPCError(INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required"), 400
            )
            return None
        return await self.find(send, session_id, None, admitted)

    async def find(
        self, send: Send, session_id: str, request_id: Any, admitted: Admitted
    ) -> LocalSession | None:
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
        if session is None or not belongs(session, admitted):  # another agent's: not found
            error = RPCError(SESSION_NOT_FOUND, "Session not found: initialize a new session")
            await send_error(send, request_id, error, 404)
            return None
        return session


def identity_of(admitted: Admitted) -> dict[str, Any]:
    """Who opened a session, kept in its record: the agent, its groups and, for a session opened
    at `/mcp/{namespace}`, the namespace (the session is that endpoint's and no other's)."""
    identity: dict[str, Any] = {"agent": admitted.agent.id, "groups": sorted(admitted.agent.groups)}
    if admitted.namespace is not None:
        identity["namespace"] = admitted.namespace
    return identity


def belongs(session: LocalSession, admitted: Admitted) -> bool:
    """Is this request the session's own: the same agent, at the endpoint that opened it?"""
    identity = session.record.identity or {}
    return session.record.agent == admitted.agent.id and identity.get("namespace") == admitted.namespace
