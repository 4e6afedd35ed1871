"""The stateless 2026-07-28 era of `/mcp`: every POST carries all it needs, no session.

A request is checked against its `_meta` envelope and routing headers in the spec's order
(`router/eras.py`); a notification is accepted with 202; `subscriptions/listen` opens a
long-lived listen stream (`listen.py`); any other request is a call whose cancellation is the
client closing its response stream. This era has no GET streams and no DELETE.
"""

from __future__ import annotations

from typing import Any

from router import eras
from router.eras import (
    HTTP_STATUS,
    LOG_LEVEL_KEY,
    MODERN_VERSION,
    PROTOCOL_VERSION_KEY,
    forwarded_headers,
)
from router.errors import RPCError
from router.relay.context import CallContext
from router.relay.dispatch import Dispatcher
from router.server.admission import Admitted
from router.server.calls import Calls
from router.server.http11 import DISCONNECT_EXTENSION
from router.server.listen import serve_listen
from router.server.replies import Receive, Scope, Send, send_error, send_plain
from router.server.streams import KEEPALIVE_SECONDS
from router.state.listeners import ListenStreams


def is_stateless(message: dict[str, Any], headers: dict[str, str]) -> bool:
    """Is this POST of the 2026-07-28 era? Its `_meta` carries a protocol version, or it has the
    2026-07-28 version header and no session."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return (isinstance(meta, dict) and PROTOCOL_VERSION_KEY in meta) or (
        headers.get("mcp-protocol-version") == MODERN_VERSION and "mcp-session-id" not in headers
    )


class StatelessEra:
    def __init__(self, calls: Calls, dispatcher: Dispatcher, listen_streams: ListenStreams) -> None:
        self.calls = calls
        self.dispatcher = dispatcher
        self.listen_streams = listen_streams

    async def post(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        message: dict[str, Any],
        admitted: Admitted,
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
            await self._listen(receive, send, message, admitted)
            return
        level = message["params"]["_meta"].get(LOG_LEVEL_KEY)
        ctx = CallContext(
            "modern",
            client_capabilities=checked.client_capabilities,
            log_level=level if isinstance(level, str) else None,
            forward_headers=forwarded_headers(headers) or None,
        )
        hook = (scope.get("extensions") or {}).get(DISCONNECT_EXTENSION)
        await self.calls.respond(send, ctx, message, admitted, watch=receive, on_disconnect=hook)

    async def _listen(
        self, receive: Receive, send: Send, message: dict[str, Any], admitted: Admitted
    ) -> None:
        listen_ctx = CallContext("modern", agent=admitted.agent, view=admitted.view)
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
            admitted.agent,
        )
