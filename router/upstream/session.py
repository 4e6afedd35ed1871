"""One MCP session with a backend instance, in whichever era the backend speaks.

`connect()` negotiates: with protocol "auto" it asks `server/discover` first (2026-07-28) and
falls back to the `initialize` handshake (2025-xx) if the backend does not know it. Afterwards
`request()` wraps each message for that era: the per-request `_meta` envelope and routing headers
for 2026-07-28, the session id and version headers for the legacy era. A backend that forgets our
session (404) is re-initialized once and the request retried: it never reached the server.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Mapping
from typing import Any

import anyio

from router import __version__
from router.catalog.record import UpstreamProtocol
from router.eras import (
    LATEST_LEGACY_VERSION,
    LEGACY,
    MODERN,
    MODERN_VERSION,
    SERVER_INFO_KEY,
    Era,
    envelope,
    is_legacy_version,
    is_modern,
    is_modern_version,
    name_of,
    routing_headers,
    session_headers,
    speaks_modern,
    without_envelope,
)
from router.errors import (
    UNSUPPORTED_PROTOCOL_VERSION,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BackendUnreachable,
    SessionExpired,
)
from router.upstream.base import Channel, Message, MessageHandler, as_object, error_of
from router.upstream.deadlines import deadlines

log = logging.getLogger("toolmesh.upstream")

CLIENT_INFO = {"name": "toolmesh", "version": __version__}


class UpstreamSession:
    def __init__(
        self,
        server: str,
        channel: Channel,
        *,
        protocol: UpstreamProtocol = "auto",
        capabilities: Mapping[str, Any] | None = None,
        connect_timeout: float = 10.0,
        probe_timeout: float = 3.0,
        prefer_legacy: bool = False,
    ) -> None:
        self.server = server
        self.channel = channel
        self.protocol = protocol
        self.client_capabilities = dict(capabilities or {})
        self.connect_timeout = connect_timeout
        self.probe_timeout = probe_timeout
        self.prefer_legacy = prefer_legacy
        self.era: Era = LEGACY
        self.protocol_version = LATEST_LEGACY_VERSION
        self.capabilities: dict[str, Any] = {}
        self.server_info: dict[str, Any] = {}
        self.instructions: str | None = None
        self.session_id: str | None = None
        self._ids = itertools.count(1)
        self._legacy_headers: dict[str, str] = {}
        self._envelope: dict[str, Any] = {}
        # Set when a probed backend refused `initialize` for its version: it speaks 2026-07-28
        # only. A stdio child that did so may hold to the era it refused (the SDK's server
        # does), so the next child is asked `server/discover` first (see Backend._learn_era).
        self.refused_legacy = False

    # -- handshake ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Negotiate the era. HTTP backends are asked `server/discover` first (a legacy server
        answers 400 at once); stdio backends are offered `initialize` first, because a silent
        legacy child would stall a discover probe and a dual-era child locks to its first era."""
        with anyio.fail_after(self.connect_timeout):
            if self.protocol == "legacy":
                await self._initialize()
            elif is_modern_version(self.protocol):
                if not await self._discover():
                    raise BackendUnavailable(
                        self.server, "it does not speak 2026-07-28 (server/discover failed)"
                    )
            elif self.prefer_legacy:
                if not await self._initialize(strict=False) and not await self._discover():
                    raise BackendUnavailable(self.server, "neither initialize nor server/discover succeeded")
            elif not await self._discover():
                await self._initialize()

    async def _discover(self) -> bool:
        """Try the 2026-07-28 era; True if the backend speaks it."""
        self._envelope = envelope(self.client_capabilities, CLIENT_INFO)
        message = self._message("server/discover", {"_meta": self._envelope})
        try:
            with anyio.fail_after(self.probe_timeout):
                reply = await self.channel.request(message, routing_headers("server/discover"))
        except BackendUnreachable:
            raise
        except (TimeoutError, BackendUnavailable):
            return False
        result = reply.get("result")
        if not isinstance(result, dict) or not speaks_modern(result):
            return False
        self.era, self.protocol_version = MODERN, MODERN_VERSION
        self.capabilities = as_object(result.get("capabilities"))
        self.server_info = as_object(as_object(result.get("_meta")).get(SERVER_INFO_KEY))
        self.instructions = result.get("instructions")
        return True

    async def _initialize(self, strict: bool = True) -> bool:
        """The legacy handshake; with strict=False a refusal returns False instead of raising."""
        params = {
            "protocolVersion": LATEST_LEGACY_VERSION,
            "capabilities": self.client_capabilities,
            "clientInfo": CLIENT_INFO,
        }
        reply = await self.channel.request(self._message("initialize", params), {})
        result = reply.get("result")
        if not isinstance(result, dict):
            self.refused_legacy = error_of(reply).get("code") == UNSUPPORTED_PROTOCOL_VERSION
            if not strict:
                return False
            error = error_of(reply).get("message", "no result")
            raise BackendUnavailable(self.server, f"initialize failed: {error}")
        version = result.get("protocolVersion")
        if not is_legacy_version(version):
            raise BackendUnavailable(
                self.server, f"it answered with unsupported protocol version {version!r}"
            )
        self.era, self.protocol_version = LEGACY, version
        self.capabilities = as_object(result.get("capabilities"))
        self.server_info = as_object(result.get("serverInfo"))
        self.instructions = result.get("instructions")
        self.session_id = getattr(self.channel, "issued_session_id", None)
        self._legacy_headers = session_headers(version, self.session_id)
        await self.channel.notify(
            {"jsonrpc": "2.0", "method": "notifications/initialized"}, self._legacy_headers
        )
        return True

    # -- traffic ------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        timeout: float,
        on_message: MessageHandler | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        param_headers: Mapping[str, str] | None = None,
        client_meta: Mapping[str, Any] | None = None,
    ) -> Message:
        """Send one request and return the raw response message; raises BackendError subclasses.

        `headers` go with this request in either era; `param_headers` (a 2026-07-28 client's
        `Mcp-Param-*`) and `client_meta` (a legacy client's envelope, `Client.envelope`) only to
        2026-07-28 backends."""
        args = (method, params, timeout, on_message, headers, param_headers, client_meta)
        try:
            return await self._request_once(*args)
        except SessionExpired:
            log.info("backend forgot our session; initializing again", extra={"server": self.server})
            await self.connect()
            return await self._request_once(*args)

    async def _request_once(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        timeout: float,
        on_message: MessageHandler | None,
        extra_headers: Mapping[str, str] | None = None,
        param_headers: Mapping[str, str] | None = None,
        client_meta: Mapping[str, Any] | None = None,
    ) -> Message:
        # Trace context also rides in `_meta` (SEP-414), where a stdio child and a 2026-07-28
        # backend look for it; our span is its parent, replacing any the client sent.
        trace = extra_headers.get("traceparent") if extra_headers else None
        if self.era == MODERN:
            # The client's envelope wins over the router's own, and the client's own `_meta` keys
            # over both, so the backend sees the client's real capabilities.
            meta = {**self._envelope, **(client_meta or {}), **((params or {}).get("_meta") or {})}
            if trace is not None:
                meta["traceparent"] = trace
            params = {**(params or {}), "_meta": meta}
            headers = routing_headers(method, name_of(method, params))
            if param_headers:
                headers.update(param_headers)
        else:
            headers = self._legacy_headers
            has_meta = params is not None and "_meta" in params
            if params is not None and has_meta:
                params = without_envelope(params)
            # Over HTTP the header carries it, unless the client's `_meta` has a stale one.
            if trace is not None and (has_meta or not getattr(self.channel, "carries_headers", False)):
                params = _with_traceparent(params, trace)
        if extra_headers:
            headers = {**headers, **extra_headers}
        message = self._message(method, params)
        scope = deadlines.scope(timeout)
        try:
            with scope:
                return await self.channel.request(message, headers, on_message)
        except anyio.get_cancelled_exc_class():
            await self._cancel_upstream(message["id"], "cancelled by the client")
            raise
        finally:
            deadlines.release(scope)
        # Only reached when the scope swallowed its own cancellation: the deadline passed.
        await self._cancel_upstream(message["id"], "timed out")
        raise BackendTimeout(self.server, timeout)

    async def _cancel_upstream(self, request_id: Any, reason: str) -> None:
        """Tell the backend to stop working on a request nobody waits for any more.

        A 2026-07-28 HTTP backend already saw its response stream close, which is the
        cancellation in that era; everyone else gets `notifications/cancelled`."""
        if is_modern(self.era) and getattr(self.channel, "stream_close_cancels", False):
            return
        cancelled: Message = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": request_id, "reason": reason},
        }
        if is_modern(self.era):
            cancelled["params"]["_meta"] = self._envelope
        with anyio.move_on_after(2, shield=True), contextlib.suppress(BackendError, SessionExpired):
            await self.channel.notify(cancelled, self.headers_for("notifications/cancelled"))

    async def listen(self, notifications: Mapping[str, Any], on_message: MessageHandler) -> Message:
        """Open a 2026-07-28 `subscriptions/listen` stream; returns when the backend ends it."""
        params = {"_meta": self._envelope, "notifications": dict(notifications)}
        message = self._message("subscriptions/listen", params)
        return await self.channel.request(message, routing_headers("subscriptions/listen"), on_message)

    async def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        message: Message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = dict(params)
        await self.channel.notify(message, self.headers_for(method))

    async def respond(self, request_id: Any, reply: Message) -> None:
        """Answer (`{"result": ...}` or `{"error": ...}`) a request the backend sent on this session."""
        message: Message = {"jsonrpc": "2.0", "id": request_id, **reply}
        with contextlib.suppress(BackendError, SessionExpired):
            await self.channel.notify(message, self.headers_for("response"))

    def headers_for(self, method: str) -> dict[str, str]:
        return routing_headers(method) if is_modern(self.era) else self._legacy_headers

    async def close(self) -> None:
        if not is_modern(self.era) and self.session_id is not None:
            with anyio.move_on_after(2, shield=True):
                await self.channel.end_session(self._legacy_headers)

    def _message(self, method: str, params: Mapping[str, Any] | None) -> Message:
        message: Message = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params is not None:
            message["params"] = params
        return message


def _with_traceparent(params: Mapping[str, Any] | None, traceparent: str) -> Mapping[str, Any]:
    """`params` with `_meta.traceparent` set (a copy; the client's other `_meta` keys stay)."""
    meta = (params or {}).get("_meta")
    return {
        **(params or {}),
        "_meta": {**as_object(meta), "traceparent": traceparent},
    }
