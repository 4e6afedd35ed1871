"""The stateless 2026-07-28 era of `/mcp`: every POST carries all it needs, no session.

Which POSTs are of this era is `eras.is_modern_request`. A request is checked against its `_meta`
envelope and routing headers in the spec's order (`eras.check`); a notification is accepted with
202; `subscriptions/listen` opens a long-lived listen stream (`listen.py`); any other request is
a call whose cancellation is the client closing its response stream. This era has no GET streams
and no DELETE.
"""

from __future__ import annotations

from typing import Any

from router import eras
from router.eras import HTTP_STATUS, LOG_LEVEL_KEY, MODERN, forwarded_headers
from router.errors import RPCError
from router.relay.attempts import REQUEST_ID_HEADER, attempt_key
from router.relay.context import CallContext
from router.relay.dispatch import Dispatcher
from router.server.admission import Admitted
from router.server.calls import Calls
from router.server.http11 import DISCONNECT_EXTENSION
from router.server.listen import serve_listen
from router.server.replies import Receive, Scope, Send, send_error, send_plain
from router.server.streams import KEEPALIVE_SECONDS
from router.state.listeners import ListenStreams


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
        tools_mode: str | None = None,
    ) -> None:
        """`tools_mode`: the URL's `tools` parameter, read on every request of this era."""
        try:
            checked = eras.check(message, headers, scope["headers"])
        except RPCError as exc:
            await send_error(send, message.get("id"), exc, HTTP_STATUS.get(exc.code, 400))
            return
        if "id" not in message:
            await send_plain(send, 202, b"")
            return
        if message["method"] == "subscriptions/listen":
            await self._listen(receive, send, message, admitted, tools_mode)
            return
        level = message["params"]["_meta"].get(LOG_LEVEL_KEY)
        ctx = CallContext(
            MODERN,
            client_capabilities=checked.client_capabilities,
            log_level=level if isinstance(level, str) else None,
            forward_headers=forwarded_headers(headers) or None,
            attempt=attempt_key(None, headers.get(REQUEST_ID_HEADER), message["id"]),
            tools_mode=tools_mode,
        )
        hook = (scope.get("extensions") or {}).get(DISCONNECT_EXTENSION)
        await self.calls.respond(send, ctx, message, admitted, watch=receive, on_disconnect=hook)

    async def _listen(
        self,
        receive: Receive,
        send: Send,
        message: dict[str, Any],
        admitted: Admitted,
        tools_mode: str | None,
    ) -> None:
        listen_ctx = CallContext(MODERN, agent=admitted.agent, view=admitted.view)
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
            admitted.namespace,
            tools_mode,
        )
