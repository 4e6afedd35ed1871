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
from typing import Any, Literal

import anyio

from router import __version__
from router.errors import (
    UNSUPPORTED_PROTOCOL_VERSION,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BackendUnreachable,
    SessionExpired,
)
from router.protocol import (
    CLIENT_CAPABILITIES_KEY,
    CLIENT_INFO_KEY,
    ENVELOPE_KEYS,
    LEGACY_VERSIONS,
    MODERN_VERSION,
    NAME_BEARING,
    PROTOCOL_VERSION_KEY,
    SERVER_INFO_KEY,
    Era,
    encode_header_value,
)
from router.upstream.base import Channel, Message, MessageHandler
from router.upstream.deadlines import deadlines

log = logging.getLogger("toolmesh.upstream")

CLIENT_INFO = {"name": "toolmesh", "version": __version__}


class UpstreamSession:
    def __init__(
        self,
        server: str,
        channel: Channel,
        *,
        protocol: Literal["auto", "legacy", "2026-07-28"] = "auto",
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
        self.era: Era = "legacy"
        self.protocol_version = LEGACY_VERSIONS[0]
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
            elif self.protocol == MODERN_VERSION:
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
        self._envelope = {
            PROTOCOL_VERSION_KEY: MODERN_VERSION,
            CLIENT_CAPABILITIES_KEY: self.client_capabilities,
            CLIENT_INFO_KEY: CLIENT_INFO,
        }
        message = self._message("server/discover", {"_meta": self._envelope})
        try:
            with anyio.fail_after(self.probe_timeout):
                reply = await self.channel.request(message, self._modern_headers("server/discover", None))
        except BackendUnreachable:
            raise
        except (TimeoutError, BackendUnavailable):
            return False
        result = reply.get("result")
        if not isinstance(result, dict) or MODERN_VERSION not in result.get("supportedVersions", ()):
            return False
        self.era, self.protocol_version = "modern", MODERN_VERSION
        self.capabilities = result.get("capabilities") or {}
        self.server_info = (result.get("_meta") or {}).get(SERVER_INFO_KEY) or {}
        self.instructions = result.get("instructions")
        return True

    async def _initialize(self, strict: bool = True) -> bool:
        """The legacy handshake; with strict=False a refusal returns False instead of raising."""
        params = {
            "protocolVersion": LEGACY_VERSIONS[0],
            "capabilities": self.client_capabilities,
            "clientInfo": CLIENT_INFO,
        }
        reply = await self.channel.request(self._message("initialize", params), {})
        result = reply.get("result")
        if not isinstance(result, dict):
            self.refused_legacy = (reply.get("error") or {}).get("code") == UNSUPPORTED_PROTOCOL_VERSION
            if not strict:
                return False
            error = (reply.get("error") or {}).get("message", "no result")
            raise BackendUnavailable(self.server, f"initialize failed: {error}")
        version = result.get("protocolVersion")
        if version not in LEGACY_VERSIONS:
            raise BackendUnavailable(
                self.server, f"it answered with unsupported protocol version {version!r}"
            )
        self.era, self.protocol_version = "legacy", version
        self.capabilities = result.get("capabilities") or {}
        self.server_info = result.get("serverInfo") or {}
        self.instructions = result.get("instructions")
        self.session_id = getattr(self.channel, "issued_session_id", None)
        self._legacy_headers = {"mcp-protocol-version": version}
        if self.session_id is not None:
            self._legacy_headers["mcp-session-id"] = self.session_id
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
    ) -> Message:
        """Send one request and return the raw response message; raises BackendError subclasses.

        `headers` go with this request in either era; `param_headers` (a 2026-07-28 client's
        `Mcp-Param-*`) only to 2026-07-28 backends."""
        try:
            return await self._request_once(method, params, timeout, on_message, headers, param_headers)
        except SessionExpired:
            log.info("backend forgot our session; initializing again", extra={"server": self.server})
            await self.connect()
            return await self._request_once(method, params, timeout, on_message, headers, param_headers)

    async def _request_once(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        timeout: float,
        on_message: MessageHandler | None,
        extra_headers: Mapping[str, str] | None = None,
        param_headers: Mapping[str, str] | None = None,
    ) -> Message:
        # Trace context also rides in `_meta` (SEP-414), where a stdio child and a 2026-07-28
        # backend look for it; our span is its parent, replacing any the client sent.
        trace = extra_headers.get("traceparent") if extra_headers else None
        if self.era == "modern":
            # A 2026-07-28 client's own envelope wins, so the backend sees its real capabilities.
            meta = {**self._envelope, **((params or {}).get("_meta") or {})}
            if trace is not None:
                meta["traceparent"] = trace
            params = {**(params or {}), "_meta": meta}
            name_key = NAME_BEARING.get(method)
            headers = self._modern_headers(method, params.get(name_key) if name_key else None)
            if param_headers:
                headers.update(param_headers)
        else:
            headers = self._legacy_headers
            client_meta = False
            if params and "_meta" in params:
                params = _without_envelope(params)
                client_meta = True
            # Over HTTP the header carries it, unless the client's `_meta` has a stale one.
            if trace is not None and (client_meta or not getattr(self.channel, "carries_headers", False)):
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
        if self.era == "modern" and getattr(self.channel, "stream_close_cancels", False):
            return
        cancelled: Message = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": request_id, "reason": reason},
        }
        if self.era == "modern":
            cancelled["params"]["_meta"] = self._envelope
        with anyio.move_on_after(2, shield=True), contextlib.suppress(BackendError, SessionExpired):
            await self.channel.notify(cancelled, self.headers_for("notifications/cancelled"))

    async def listen(self, notifications: Mapping[str, Any], on_message: MessageHandler) -> Message:
        """Open a 2026-07-28 `subscriptions/listen` stream; returns when the backend ends it."""
        params = {"_meta": self._envelope, "notifications": dict(notifications)}
        message = self._message("subscriptions/listen", params)
        return await self.channel.request(
            message, self._modern_headers("subscriptions/listen", None), on_message
        )

    async def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        message: Message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = dict(params)
        await self.channel.notify(message, self.headers_for(method))

    def headers_for(self, method: str) -> dict[str, str]:
        return self._modern_headers(method, None) if self.era == "modern" else self._legacy_headers

    async def close(self) -> None:
        if self.era == "legacy" and self.session_id is not None:
            with anyio.move_on_after(2, shield=True):
                await self.channel.end_session(self._legacy_headers)

    def _message(self, method: str, params: Mapping[str, Any] | None) -> Message:
        message: Message = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params is not None:
            message["params"] = params
        return message

    @staticmethod
    def _modern_headers(method: str, name: Any) -> dict[str, str]:
        headers = {"mcp-protocol-version": MODERN_VERSION, "mcp-method": method}
        if isinstance(name, str):
            headers["mcp-name"] = encode_header_value(name)
        return headers


def _with_traceparent(params: Mapping[str, Any] | None, traceparent: str) -> Mapping[str, Any]:
    """`params` with `_meta.traceparent` set (a copy; the client's other `_meta` keys stay)."""
    meta = (params or {}).get("_meta")
    return {
        **(params or {}),
        "_meta": {**(meta if isinstance(meta, dict) else {}), "traceparent": traceparent},
    }


def _without_envelope(params: Mapping[str, Any]) -> Mapping[str, Any]:
    """A 2026-07-28 client's `_meta` envelope, removed before the params go to a legacy session."""
    meta = params["_meta"]
    if not isinstance(meta, dict) or ENVELOPE_KEYS.isdisjoint(meta):
        return params
    rest = {key: value for key, value in meta.items() if key not in ENVELOPE_KEYS}
    stripped = {**params, "_meta": rest}
    if not rest:
        del stripped["_meta"]
    return stripped
