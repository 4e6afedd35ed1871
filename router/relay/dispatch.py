"""The request flow: method -> handler -> (index lookup -> backend call -> rewrite back).

One handler per MCP method. List methods are answered from the aggregated index and never touch a
backend; named methods resolve their target with one lookup and forward the client's params with
only the name swapped. A handler returns either a dict or pre-serialized JSON bytes (lists), and
raises RPCError for anything the client should see as a JSON-RPC error.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from router import __version__
from router.catalog.index import Index, ListKind, Target
from router.errors import INVALID_PARAMS, METHOD_NOT_FOUND, RPCError
from router.guard.identity import ANONYMOUS, Agent
from router.guard.policy import OPEN, Kind, View
from router.guard.ratelimit import agent_of
from router.observe.tracing import Trace
from router.protocol import MODERN_VERSION, SERVER_INFO_KEY
from router.relay import rewrite
from router.relay.cursors import CursorCodec
from router.upstream.backend import Backend
from router.upstream.balancer import Instance
from router.upstream.base import Message, MessageHandler
from router.upstream.pool import BackendPool

Era = Literal["legacy", "modern"]
Result = dict[str, Any] | bytes
SERVER_INFO = {"name": "toolmesh", "version": __version__}
# Result fields only the 2026-07-28 era defines; a 2026 backend's results lose them on the way to
# a 2025 client.
MODERN_ONLY_FIELDS = frozenset({"resultType", "ttlMs", "cacheScope"})
# Methods whose `uri` names a resource the agent must be allowed to read (subscriptions).
URI_GUARDED = frozenset({"resources/subscribe", "resources/unsubscribe"})
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


@dataclass(slots=True)
class CallContext:
    """What a handler may know about the request beyond its params."""

    era: Era
    emit: MessageHandler | None = None
    client_capabilities: dict[str, Any] = field(default_factory=dict)
    log_level: str | None = None
    agent: Agent = ANONYMOUS
    view: View = OPEN  # what this agent may see and use (router/guard/policy.py)
    trace: Trace | None = None
    session_id: str | None = None
    # Filled in by the handler for the audit record and metrics: what the request reached.
    server: str | None = None
    instance: str | None = None
    target: str | None = None
    affinity: dict[str, str] | None = None  # server -> instance this legacy session last used

    def attempting(self, instance: Instance) -> None:
        """The caller is trying `instance` (the last one tried is what the audit records)."""
        self.instance = instance.instance_id


Handler = Callable[[CallContext, dict[str, Any]], Awaitable[Result]]

LISTS: dict[str, ListKind] = {
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
}
CAPABILITY_OF: dict[str, str] = {
    "prompts/list": "prompts",
    "prompts/get": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resources",
    "resources/read": "resources",
    "completion/complete": "completions",
    "logging/setLevel": "logging",
}


class Limiter(Protocol):
    """The rate-limit check (router.guard.ratelimit): raises RateLimited; decides locally when it can."""

    async def check(self, agent: str, server: str, tool: str) -> None: ...


class Dispatcher:
    def __init__(
        self,
        pool: BackendPool,
        cursors: CursorCodec,
        page_size: int,
        list_ttl_ms: int,
        *,
        forward_identity: bool = False,
    ) -> None:
        self.pool = pool
        self.forward_identity = forward_identity
        self.limiter: Limiter | None = None
        self.cursors = cursors
        self.page_size = page_size
        self.list_ttl_ms = list_ttl_ms
        self._progress_ids = itertools.count(1)
        self._handlers: dict[str, Handler] = {
            "ping": self._ping,
            "tools/call": self._call_tool,
            "prompts/get": self._get_prompt,
            "resources/read": self._read_resource,
            "completion/complete": self._complete,
            "logging/setLevel": self._set_level,
            "server/discover": self._discover,
        }
        for method, kind in LISTS.items():
            self._handlers[method] = self._lister(kind)

    @property
    def index(self) -> Index:
        return self.pool.index

    async def dispatch(self, ctx: CallContext, method: str, params: dict[str, Any]) -> Result:
        handler = self._handlers.get(method)
        if handler is None or (method == "server/discover" and ctx.era != "modern"):
            raise RPCError(METHOD_NOT_FOUND, f"Method not found: {method}")
        capability = CAPABILITY_OF.get(method)
        if capability is not None and capability not in self.capabilities():
            raise RPCError(METHOD_NOT_FOUND, f"Method not found: {method} (no server offers {capability})")
        if not ctx.view.open:
            self._guard_subscriptions(ctx, method, params)
        return await handler(ctx, params)

    def _guard_subscriptions(self, ctx: CallContext, method: str, params: dict[str, Any]) -> None:
        """Subscriptions in both eras: a hidden URI fails like one that does not exist."""
        if method in URI_GUARDED:
            self._resource_target(ctx, params.get("uri"))
        elif method == "subscriptions/listen":
            wanted = (params.get("notifications") or {}).get("resourceSubscriptions") or ()
            for uri in wanted if isinstance(wanted, list) else ():
                self._resource_target(ctx, uri)

    def capabilities(self) -> dict[str, Any]:
        return self.index.capability_union()

    def initialize_result(self, version: str) -> dict[str, Any]:
        return {
            "protocolVersion": version,
            "capabilities": self.capabilities(),
            "serverInfo": SERVER_INFO,
            "instructions": self._instructions(),
        }

    def _instructions(self) -> str:
        servers = ", ".join(sorted(self.index.servers)) or "none yet"
        return f"toolmesh routes to these MCP servers: {servers}."

    # -- handlers -----------------------------------------------------------------------------

    async def _ping(self, ctx: CallContext, params: dict[str, Any]) -> Result:
        return {}

    async def _discover(self, ctx: CallContext, params: dict[str, Any]) -> Result:
        return {
            "supportedVersions": [MODERN_VERSION],
            "capabilities": self.capabilities(),
            "instructions": self._instructions(),
            "_meta": {SERVER_INFO_KEY: SERVER_INFO},
            "ttlMs": self.list_ttl_ms,
            "cacheScope": "public",
        }

    def _lister(self, kind: ListKind) -> Handler:
        key = kind.encode()

        async def list_items(ctx: CallContext, params: dict[str, Any]) -> Result:
            pages = ctx.view.pages(self.index, kind, self.page_size)
            cursor = params.get("cursor")
            page = 0 if cursor is None else self.cursors.decode(kind, cursor)
            if page >= len(pages):
                raise RPCError(INVALID_PARAMS, "invalid cursor: the list is shorter now; start again")
            body = b'{"' + key + b'":' + pages[page]
            if page + 1 < len(pages):
                body += b',"nextCursor":' + orjson.dumps(self.cursors.encode(kind, page + 1))
            if ctx.era == "modern":
                body += b',"ttlMs":' + str(self.list_ttl_ms).encode() + b',"cacheScope":"public"'
            return body + b"}"

        return list_items

    async def _call_tool(self, ctx: CallContext, params: dict[str, Any]) -> Result:
        target = self._named(ctx, "tools", params.get("name"))
        if self.limiter is not None:
            await self.limiter.check(agent_of(ctx), target.server, target.name)
        result = await self._forward(ctx, target, "tools/call", {**params, "name": target.name})
        result = rewrite.rewrite_tool_result(self.index.naming, target.server, result)
        if ctx.view.open:
            return result
        content = ctx.view.filter_content(self.index, result.get("content"))
        return result if content is result.get("content") else {**result, "content": content}

    async def _get_prompt(self, ctx: CallContext, params: dict[str, Any]) -> Result:
        target = self._named(ctx, "prompts", params.get("name"))
        result = await self._forward(ctx, target, "prompts/get", {**params, "name": target.name})
        result = rewrite.rewrite_prompt_result(self.index.naming, target.server, result)
        messages = result.get("messages")
        if ctx.view.open or not isinstance(messages, list):
            return result
        kept = [
            m
            for m in messages
            if not isinstance(m, dict) or ctx.view.filter_content(self.index, [m.get("content")])
        ]
        return result if len(kept) == len(messages) else {**result, "messages": kept}

    async def _read_resource(self, ctx: CallContext, params: dict[str, Any]) -> Result:
        target = self._resource_target(ctx, params.get("uri"))
        result = await self._forward(ctx, target, "resources/read", {**params, "uri": target.name})
        return rewrite.rewrite_read_result(self.index.naming, target.server, result)

    async def _complete(self, ctx: CallContext, params: dict[str, Any]) -> Result:
        ref = params.get("ref")
        if not isinstance(ref, dict):
            raise RPCError(INVALID_PARAMS, "completion/complete needs `ref` (ref/prompt or ref/resource)")
        if ref.get("type") == "ref/prompt":
            target = self._named(ctx, "prompts", ref.get("name"))
            new_ref = {**ref, "name": target.name}
        elif ref.get("type") == "ref/resource":
            target = self._resource_target(ctx, ref.get("uri"))
            new_ref = {**ref, "uri": target.name}
        else:
            raise RPCError(
                INVALID_PARAMS, f"unknown ref type {ref.get('type')!r}; use ref/prompt or ref/resource"
            )
        return await self._forward(ctx, target, "completion/complete", {**params, "ref": new_ref})

    async def _set_level(self, ctx: CallContext, params: dict[str, Any]) -> Result:
        level = params.get("level")
        if level not in LOG_LEVELS:
            raise RPCError(INVALID_PARAMS, f"level must be one of {', '.join(LOG_LEVELS)}")
        ctx.log_level = level
        return {}

    # -- plumbing -----------------------------------------------------------------------------

    def _named(self, ctx: CallContext, kind: Kind, name: Any) -> Target:
        """The target of a tool or prompt name; a hidden one fails exactly like an unknown one."""
        table = self.index.tools if kind == "tools" else self.index.prompts
        target = table.get(name) if isinstance(name, str) else None
        ctx.target = name if isinstance(name, str) else None
        if target is None or not ctx.view.allows(kind, target.server, str(name)):
            raise self._unknown(kind[:-1], name, ctx.view.visible(self.index, kind))
        return target

    def _resource_target(self, ctx: CallContext, uri: Any) -> Target:
        if not isinstance(uri, str):
            raise RPCError(INVALID_PARAMS, "`uri` must be a string")
        ctx.target = uri
        target = self.index.resolve_uri(uri)
        if target is None or not ctx.view.allows("resources", target.server, uri):
            raise RPCError(INVALID_PARAMS, f"Resource not found: {uri}", {"uri": uri})
        return target

    async def _forward(
        self, ctx: CallContext, target: Target, method: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        ctx.server = target.server
        relay = _Relay(ctx, params) if ctx.emit is not None else None
        if relay is not None:
            params = relay.upstream_params(next(self._progress_ids))
        reply = await self.pool.caller.call(
            target.server,
            method,
            params,
            tool=target.name if method == "tools/call" else None,
            handler_for=relay.handler_for if relay is not None else None,
            affinity=ctx.affinity,
            headers=self._upstream_headers(ctx),
            on_attempt=ctx.attempting,
        )
        result = reply.get("result")
        if isinstance(result, dict):
            if ctx.era == "legacy" and "resultType" in result:
                return {key: value for key, value in result.items() if key not in MODERN_ONLY_FIELDS}
            return result
        error = reply.get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), int):
            raise RPCError(error["code"], str(error.get("message", "")), error.get("data"))
        raise RPCError(-32603, f"server '{target.server}' sent a malformed response")

    def _upstream_headers(self, ctx: CallContext) -> dict[str, str] | None:
        """Per-request headers for HTTP backends: trace context and, if enabled, who is asking.

        The agent's own Authorization never goes upstream: client headers are not forwarded at
        all, and a backend's credentials come from its catalog entry (router/catalog/config_file.py).
        """
        if ctx.trace is None and not self.forward_identity:
            return None
        headers: dict[str, str] = {}
        if ctx.trace is not None:
            headers["traceparent"] = ctx.trace.traceparent()
        if self.forward_identity:
            headers["x-toolmesh-agent"] = ctx.agent.id
            headers["x-toolmesh-groups"] = ",".join(sorted(ctx.agent.groups))
        return headers

    def _unknown(self, kind: str, name: Any, table: dict[str, Target]) -> RPCError:
        if not isinstance(name, str):
            return RPCError(INVALID_PARAMS, f"`name` of the {kind} must be a string")
        close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return RPCError(
            INVALID_PARAMS, f"Unknown {kind}: {name!r}{hint}", {"name": name, "suggestions": close}
        )


class _Relay:
    """Carries a call's related messages (progress, logs) back to the client's stream.

    The client's progress token is replaced upstream by one unique to the router, because one
    upstream session serves many clients and two of them may pick the same token.
    """

    __slots__ = ("backend", "ctx", "params", "token")

    def __init__(self, ctx: CallContext, params: dict[str, Any]) -> None:
        self.ctx, self.params = ctx, params
        self.backend: Backend | None = None
        meta = params.get("_meta")
        self.token = meta.get("progressToken") if isinstance(meta, dict) else None

    def handler_for(self, instance: Instance) -> MessageHandler:
        """The message handler for one attempt: requests are answered by the instance that asked."""
        self.backend = instance.backend
        return self.on_message

    def upstream_params(self, unique: int) -> dict[str, Any]:
        if self.token is None:
            return self.params
        return {**self.params, "_meta": {**self.params["_meta"], "progressToken": f"tm-{unique}"}}

    async def on_message(self, message: Message) -> None:
        assert self.ctx.emit is not None
        method = message.get("method")
        if "id" in message:
            assert self.backend is not None
            await self.backend.answer_request(message)
            return
        if method == "notifications/progress":
            if self.token is None:
                return
            message = {**message, "params": {**message.get("params", {}), "progressToken": self.token}}
        elif method == "notifications/message" and not self._level_allows(message):
            return
        await self.ctx.emit(message)

    def _level_allows(self, message: Message) -> bool:
        wanted = self.ctx.log_level
        level = (message.get("params") or {}).get("level")
        if wanted is None or level not in LOG_LEVELS:
            return True
        return LOG_LEVELS.index(level) >= LOG_LEVELS.index(wanted)
