"""One request through the dispatcher and back: the part both eras and `/v1/tools` share.

`Calls.respond` dispatches a JSON-RPC request and writes its reply: JSON, or an SSE stream once
a related message (progress, a log line) has to go first (`streams.ReplyStream`). A call ends
early when its cancel scope is cancelled: by a legacy client's `notifications/cancelled` (the
session era holds the scope), or, for a 2026-07-28 call and `/v1/tools`, when the client goes
away (`unless_gone`). The request's metrics and the call's audit record are written after the
reply has left (`finished`), since `server/http11.py` writes a complete response at once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

import anyio

from router.eras import HTTP_STATUS, is_modern
from router.errors import RPCError
from router.observe import tracing
from router.observe.metrics import Metrics
from router.relay.context import CallContext, Result
from router.relay.dispatch import Dispatcher
from router.server.admission import Admitted
from router.server.bookkeeping import CallObserver
from router.server.events import EventStore
from router.server.replies import (
    JSON_HEADERS,
    Receive,
    Send,
    cancel_on_disconnect,
    error_bytes,
    response_bytes,
    send_reply,
)
from router.server.streams import ReplyStream
from router.upstream.deadlines import cancel_scope

CANCELLED = RPCError(-32800, "Request cancelled")
T = TypeVar("T")
# The server protocol's disconnect hook (server/http11.py): given a callback, or None to clear it.
DisconnectHook = Callable[[Callable[[], None] | None], None]


class Reply(NamedTuple):
    """How one request ended, for the wire and for the bookkeeping after it."""

    status: int  # the HTTP status of the reply
    outcome: str  # "ok", "error" or "cancelled" (a metric label)
    body: bytes  # the JSON-RPC response or error
    result: Result | None  # the result, when there is one
    code: int | None  # the JSON-RPC error code, when there is one


class Calls:
    def __init__(
        self,
        dispatcher: Dispatcher,
        metrics: Metrics,
        events: EventStore,
        *,
        observer: CallObserver | None = None,
        retry_ms: int = 1000,
    ) -> None:
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.events = events
        self.observer = observer
        self.early = observer if observer is not None and observer.early is not None else None
        self.retry_ms = retry_ms

    async def respond(
        self,
        send: Send,
        ctx: CallContext,
        message: dict[str, Any],
        admitted: Admitted,
        *,
        scope: anyio.CancelScope | None = None,
        resumable_for: str | None = None,
        watch: Receive | None = None,
        on_disconnect: DisconnectHook | None = None,
    ) -> None:
        """Dispatch and write the reply, upgrading to SSE if related messages arrive first.

        With `resumable_for` (a 2025-11-25 session's id) a backend's polling close is passed on.
        `scope` ends the call early when cancelled; with `watch` (a 2026-07-28 call) so does the
        client closing the response stream, its era's cancellation: told by the server
        protocol's `on_disconnect` hook, or else by a task waiting on `watch`."""
        started = time.perf_counter()
        stream = ReplyStream(send, self.events if resumable_for else None, resumable_for, self.retry_ms)
        await stream.prime()
        ctx.emit = stream.emit
        method = message["method"]
        params = message.get("params") or {}
        trace = admitted.trace
        if trace is not None and trace.parent_id is None and "_meta" in params:
            trace = tracing.continue_from_meta(trace, params["_meta"])
        ctx.agent, ctx.view, ctx.trace = admitted.agent, admitted.view, trace
        done = await self.unless_gone(
            self.reply_to(ctx, message), scope or cancel_scope(), watch, on_disconnect
        )
        reply = done or Reply(200, "cancelled", error_bytes(message["id"], CANCELLED), None, CANCELLED.code)
        elapsed = time.perf_counter() - started
        if self.early is not None:  # a usage spool: the call is on disk before its reply leaves
            self.early.before_reply(ctx, method, params, reply.result, reply.code, elapsed)
        if stream.is_stream:
            await stream.finish(reply.body)
        else:
            await send_reply(send, reply.status, reply.body, JSON_HEADERS)
        self.finished(ctx, method, params, reply.outcome, elapsed, reply.result, reply.code)

    async def reply_to(self, ctx: CallContext, message: dict[str, Any]) -> Reply:
        """The reply to one request, an error included."""
        try:
            result: Result = await self.dispatcher.dispatch(
                ctx, message["method"], message.get("params") or {}
            )
            encoded = ctx.result_json if ctx.result_sent is result else b""  # a tool result, measured
            body = response_bytes(message["id"], result, is_modern(ctx.era), encoded)
            return Reply(200, "ok", body, result, None)
        except RPCError as exc:
            status = HTTP_STATUS.get(exc.code, 200) if is_modern(ctx.era) else 200
            return Reply(status, "error", error_bytes(message["id"], exc), None, exc.code)

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
