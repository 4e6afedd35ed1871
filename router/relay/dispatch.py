"""The request flow: method -> handler -> (index lookup -> backend call -> rewrite back).

One handler per MCP method. List methods are answered from the aggregated index and never touch a
backend; named methods resolve their target with one lookup and forward the client's params with
only the name swapped. A handler returns either a dict or pre-serialized JSON bytes (lists), and
raises RPCError for anything the client should see as a JSON-RPC error.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from anyio.abc import TaskGroup

from router import __version__
from router.catalog.index import Index, ListKind, Target
from router.eras import (
    LOG_LEVELS,
    MODERN_VERSION,
    SERVER_INFO_KEY,
    is_modern,
    method_in_era,
)
from router.errors import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    CallInterrupted,
    PolicyDenied,
    RateLimited,
    RPCError,
)
from router.guard.backend_tokens import BackendSigner
from router.guard.budgets import Budgets, Held
from router.guard.conditions import CallFacts
from router.guard.credential_keys import KeyedSecrets
from router.guard.policy_document import Kind
from router.guard.ratelimit import agent_of
from router.guard.views import OPEN, NamespaceView, View
from router.lifecycle import Service
from router.relay import output_limit, rewrite
from router.relay.asking import Asker
from router.relay.attempts import CallRecords
from router.relay.capabilities import Capabilities
from router.relay.context import CallContext, Result
from router.relay.cursors import CursorCodec
from router.relay.era_bridge import ForwardParked
from router.relay.forward import Forwarder
from router.relay.meta_tools import META_NAMES, ToolSearch, unknown_tool
from router.relay.output_limit import OutputLimits
from router.relay.parking import Parking
from router.upstream.base import Message
from router.upstream.pool import BackendPool

log = logging.getLogger("toolmesh.relay")

SERVER_INFO = {"name": "toolmesh", "version": __version__}
# Methods whose `uri` names a resource the agent must be allowed to read (subscriptions).
URI_GUARDED = frozenset({"resources/subscribe", "resources/unsubscribe"})


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
    "resources/subscribe": "resources",
    "resources/unsubscribe": "resources",
}


class Limiter(Protocol):
    """The rate-limit check (router.guard.ratelimit): raises RateLimited; decides locally when it can."""

    async def check(self, agent: str, server: str, tool: str) -> None: ...


class Dispatcher(Service):
    def __init__(
        self,
        pool: BackendPool,
        cursors: CursorCodec,
        page_size: int,
        list_ttl_ms: int,
        *,
        forward_identity: bool = False,
        asker: Asker | None = None,
        parking: Parking | None = None,
        on_subscriptions: Callable[[], None] | None = None,
        limiter: Limiter | None = None,
        forward_parked: ForwardParked | None = None,
        records: CallRecords | None = None,
        output_limits: OutputLimits | None = None,
        tool_search: ToolSearch | None = None,
        signer: BackendSigner | None = None,
        secrets: KeyedSecrets | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        """`forward_parked` (with shared state) carries a retry of a call parked on another
        replica there; see `EraBridge`. `records` (with shared state) keep a load balancer's
        retry of a call whose replica died from running it twice; see `relay/attempts.py`.
        `tool_search` serves search mode (meta_tools.py)."""
        self.records = records
        self.pool = pool
        self.tool_search = tool_search
        self.limiter = limiter
        self.budgets = budgets  # checked only for a view that has budgets (guard/budgets.py)
        self.output_limits = output_limits or OutputLimits(0)
        self.cursors = cursors
        self.page_size = page_size
        self.list_ttl_ms = list_ttl_ms
        self.asker = asker
        self.forwarder = Forwarder(
            pool,
            asker,
            parking,
            forward_parked,
            forward_identity=forward_identity,
            signer=signer,
            secrets=secrets,
        )
        self.on_subscriptions = on_subscriptions
        self.capability_calls = Capabilities(pool.caller.all_open, pool.caller.may_repeat)
        self._handlers: dict[str, Handler] = {
            "ping": self._ping,
            "tools/call": self._call_tool,
            "prompts/get": self._get_prompt,
            "resources/read": self._read_resource,
            "completion/complete": self._complete,
            "logging/setLevel": self._set_level,
            "server/discover": self._discover,
            "resources/subscribe": self._subscribe,
            "resources/unsubscribe": self._unsubscribe,
        }
        for method, kind in LISTS.items():
            self._handlers[method] = self._lister(kind)

    @property
    def index(self) -> Index:
        return self.pool.index

    async def start(self, tg: TaskGroup) -> None:
        """Hold the task group backends' questions are answered in, while the service is entered.

        A question (sampling, elicitation, roots) may take the client minutes, so it runs beside
        its call instead of blocking the channel's reader. One long-lived group instead of one per
        call keeps the common call, which asks nothing, free of task group set-up."""
        self.forwarder.questions = tg

    async def stop(self) -> None:
        self.forwarder.questions = None

    async def dispatch(self, ctx: CallContext, method: str, params: dict[str, Any]) -> Result:
        handler = self._handlers.get(method)
        if handler is None or not method_in_era(method, ctx.era):
            raise RPCError(METHOD_NOT_FOUND, f"Method not found: {method}")
        capability = CAPABILITY_OF.get(method)
        if capability is not None and capability not in self.capabilities():
            raise RPCError(METHOD_NOT_FOUND, f"Method not found: {method} (no server offers {capability})")
        if not ctx.view.open:
            self._guard_subscriptions(ctx, method, params)
        return await handler(ctx, params)

    def check_listen(self, ctx: CallContext, params: dict[str, Any]) -> None:
        """What dispatch checks for a subscriptions/listen stream, which the server serves itself:
        for a guarded agent, that every URI it names is one the agent may see."""
        if not ctx.view.open:
            self._guard_subscriptions(ctx, "subscriptions/listen", params)

    def _guard_subscriptions(self, ctx: CallContext, method: str, params: dict[str, Any]) -> None:
        """Subscriptions in both eras: a hidden URI fails like one that does not exist."""
        if method in URI_GUARDED:
            self._resource_target(ctx, params.get("uri"))
        elif method == "subscriptions/listen":
            # A filter that is no object asks for nothing (as `Interest.from_filter` reads it).
            notifications = params.get("notifications")
            wanted = notifications.get("resourceSubscriptions") if isinstance(notifications, dict) else None
            for uri in wanted if isinstance(wanted, list) else ():
                self._resource_target(ctx, uri)

    def capabilities(self) -> dict[str, Any]:
        return self.index.capability_union()

    def initialize_result(self, version: str, view: View = OPEN) -> dict[str, Any]:
        return {
            "protocolVersion": version,
            "capabilities": self.capabilities(),
            "serverInfo": self._server_info(view),
            "instructions": self._instructions(view),
        }

    def _server_info(self, view: View) -> dict[str, Any]:
        """Who answers: toolmesh, or inside a namespace the virtual server it declares."""
        if isinstance(view, NamespaceView):
            return {**SERVER_INFO, "name": view.namespace.title}
        return SERVER_INFO

    def _instructions(self, view: View) -> str:
        if isinstance(view, NamespaceView) and view.namespace.spec.instructions is not None:
            return view.namespace.spec.instructions
        servers = ", ".join(sorted(self.index.servers)) or "none yet"
        return f"toolmesh routes to these MCP servers: {servers}."

    # -- handlers -----------------------------------------------------------------------------

    async def _ping(self, ctx: CallContext, params: dict[str, Any]) -> Result:
        return {}

    async def _discover(self, ctx: CallContext, params: dict[str, Any]) -> Result:
        return {
            "supportedVersions": [MODERN_VERSION],
            "capabilities": self.capabilities(),
            "instructions": self._instructions(ctx.view),
            "_meta": {SERVER_INFO_KEY: self._server_info(ctx.view)},
            "ttlMs": self.list_ttl_ms,
            "cacheScope": "public",
        }

    def _lister(self, kind: ListKind) -> Handler:
        key = kind.encode()

        async def list_items(ctx: CallContext, params: dict[str, Any]) -> Result:
            index = self.index
            search = self.tool_search if kind == "tools" else None
            searched = search.listed(ctx.tools_mode, ctx.view, index) if search is not None else None
            pages = [searched] if searched is not None else ctx.view.pages(index, kind, self.page_size)
            cursor = params.get("cursor")
            page = 0 if cursor is None else self.cursors.decode(kind, cursor)
            if page >= len(pages):
                raise RPCError(INVALID_PARAMS, "invalid cursor: the list is shorter now; start again")
            body = b'{"' + key + b'":' + pages[page]
            if page + 1 < len(pages):
                body += b',"nextCursor":' + orjson.dumps(self.cursors.encode(kind, page + 1))
            if is_modern(ctx.era):
                body += b',"ttlMs":' + str(self.list_ttl_ms).encode() + b',"cacheScope":"public"'
            return body + b"}"

        return list_items

    async def _call_tool(self, ctx: CallContext, params: dict[str, Any]) -> Result:
        name = params.get("name")
        arguments = params.get("arguments")
        if arguments is not None and not isinstance(arguments, dict):  # else forwarded, or made {}
            raise RPCError(
                INVALID_PARAMS, "Invalid params: `arguments` must be an object, the tool's arguments by name"
            )
        if self.tool_search is not None and isinstance(name, str) and name in META_NAMES:
            index = self.index
            if self.tool_search.searching(ctx.tools_mode, ctx.view, index):
                return await self.tool_search.call(ctx, index, params, self._call_tool)
        if not ctx.view.open and ctx.view.capabilities and isinstance(name, str):
            found = ctx.view.capability(self.index, name)
            if found is not None:  # one exposed tool, several providers (relay/capabilities.py)
                ctx.target = name
                spec, usable = found

                async def on(target: Target, call: dict[str, Any], provider: str) -> dict[str, Any]:
                    if ctx.view.conditional:  # a provider is called only where the rules allow it
                        await self._check_conditions(ctx, target, {**call, "name": provider})
                    return await self._tool_on(ctx, target, call, name)

                return await self.capability_calls.call(name, spec, usable, params, on)
        target = self._named(ctx, "tools", name)
        if ctx.view.conditional:  # rules with a `when` look at this call (guard/conditions.py)
            await self._check_conditions(ctx, target, params)
        call = {**params, "name": target.name}
        if not ctx.view.open:  # overrides may fix or default arguments (guard/views.py)
            completed = ctx.view.arguments(self.index, str(name), arguments)
            if completed is not arguments:
                call["arguments"] = completed
        return await self._tool_on(ctx, target, call, str(name))

    async def _tool_on(
        self, ctx: CallContext, target: Target, call: dict[str, Any], name: str
    ) -> dict[str, Any]:
        """Call one tool of one server (`call` already names it as the server knows it)."""
        ctx.server = target.server
        self.pool.caller.refuse_if_open(target.server)  # every breaker open: fail before anything
        budgets = self.budgets if ctx.view.budgets else None
        held: Held = []
        if budgets is not None:
            held = await budgets.check(agent_of(ctx), ctx.view.budgets)
        if self.limiter is not None:
            try:
                await self.limiter.check(agent_of(ctx), target.server, target.name)
            except RateLimited:
                if budgets is not None:  # a call the rate limit refuses spends no budget
                    budgets.refund(held)
                raise
        records, key = self.records, ctx.attempt
        if records is None or key is None or self.pool.caller.may_repeat(target.server, target.name):
            result = await self.forwarder.forward(ctx, target, "tools/call", call)
        else:
            if not await records.begin(key):
                raise CallInterrupted(name or target.name)
            try:
                result = await self.forwarder.forward(ctx, target, "tools/call", call)
            finally:
                records.end(key)
        result = rewrite.rewrite_tool_result(self.index.naming, target.server, result)
        if not ctx.view.open:
            content = ctx.view.filter_content(self.index, result.get("content"))
            if content is not result.get("content"):
                result = {**result, "content": content}
        policy = self.pool.policy_of(target.server)
        limit = self.output_limits.limit_for(policy, target.name)
        result, encoded = output_limit.enforce(result, limit, target.server, target.name)
        ctx.result_sent, ctx.result_json, ctx.result_bytes = result, encoded, len(encoded)
        if limit.cost is not None:  # worked out with the limit, once per (policy, tool)
            ctx.cost = limit.cost.of(ctx.result_bytes)
        if budgets is not None and ctx.cost:  # a cost budget learns the call's cost once its result is in
            budgets.charge(held, ctx.cost)
        return result

    async def _check_conditions(self, ctx: CallContext, target: Target, params: dict[str, Any]) -> None:
        view = ctx.view
        namespace = view.namespace.name if isinstance(view, NamespaceView) else ""
        facts = CallFacts(
            ctx.agent.id, ctx.agent.groups, ctx.agent.claims, target.server, target.name,
            view.catalog_name(self.index, str(params.get("name"))), self._annotations(target),
            params.get("arguments"), namespace, ctx.era, ctx.via,
        )  # fmt: skip
        denied = await view.check_call_within_budget(facts)
        if denied is not None:
            ctx.denied = denied
            raise PolicyDenied(str(params.get("name")))

    def _annotations(self, target: Target) -> dict[str, Any]:
        defs = self.index.servers.get(target.server)
        for tool in defs.tools if defs is not None else ():
            if tool.get("name") == target.name:
                annotations = tool.get("annotations")
                return annotations if isinstance(annotations, dict) else {}
        return {}

    async def _get_prompt(self, ctx: CallContext, params: dict[str, Any]) -> Result:
        arguments = params.get("arguments")
        if arguments is not None and (
            not isinstance(arguments, dict) or not all(isinstance(v, str) for v in arguments.values())
        ):
            raise RPCError(
                INVALID_PARAMS, "Invalid params: `arguments` of prompts/get must map names to strings"
            )
        target = self._named(ctx, "prompts", params.get("name"))
        result = await self.forwarder.forward(ctx, target, "prompts/get", {**params, "name": target.name})
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
        result = await self.forwarder.forward(ctx, target, "resources/read", {**params, "uri": target.name})
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
        return await self.forwarder.forward(ctx, target, "completion/complete", {**params, "ref": new_ref})

    async def _set_level(self, ctx: CallContext, params: dict[str, Any]) -> Result:
        level = params.get("level")
        if level not in LOG_LEVELS:
            raise RPCError(INVALID_PARAMS, f"level must be one of {', '.join(LOG_LEVELS)}")
        ctx.log_level = level
        return {}

    async def _subscribe(self, ctx: CallContext, params: dict[str, Any]) -> Result:
        uri = params.get("uri")
        target = self._resource_target(ctx, uri)
        if not self._can_subscribe(target.server):
            raise RPCError(
                METHOD_NOT_FOUND, f"server '{target.server}' does not offer resource subscriptions"
            )
        if ctx.subscriptions is not None and uri not in ctx.subscriptions:
            ctx.subscriptions.append(uri)  # type: ignore[arg-type]
            if self.on_subscriptions is not None:
                self.on_subscriptions()
        return {}

    async def _unsubscribe(self, ctx: CallContext, params: dict[str, Any]) -> Result:
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise RPCError(INVALID_PARAMS, "`uri` must be a string")
        if ctx.subscriptions is not None and uri in ctx.subscriptions:
            ctx.subscriptions.remove(uri)
            if self.on_subscriptions is not None:
                self.on_subscriptions()
        return {}

    def _can_subscribe(self, server: str) -> bool:
        defs = self.index.servers.get(server)
        resources = defs.capabilities.get("resources") if defs is not None else None
        return isinstance(resources, dict) and bool(resources.get("subscribe"))

    # -- plumbing -----------------------------------------------------------------------------

    def _named(self, ctx: CallContext, kind: Kind, name: Any) -> Target:
        """The target of a tool or prompt name; a hidden one fails exactly like an unknown one."""
        if ctx.view.open:
            table = self.index.tools if kind == "tools" else self.index.prompts
        else:  # what this agent may use, under the names it sees (overrides may rename tools)
            table = ctx.view.visible(self.index, kind)
        target = table.get(name) if isinstance(name, str) else None
        ctx.target = name if isinstance(name, str) else None
        if target is None:
            raise self._unknown(kind[:-1], name, ctx.view.visible(self.index, kind))
        ctx.server = target.server
        return target

    def _resource_target(self, ctx: CallContext, uri: Any) -> Target:
        if not isinstance(uri, str):
            raise RPCError(INVALID_PARAMS, "`uri` must be a string")
        ctx.target = uri
        target = self.index.resolve_uri(uri)
        if target is None or not ctx.view.allows("resources", target.server, uri):
            raise RPCError(INVALID_PARAMS, f"Resource not found: {uri}", {"uri": uri})
        ctx.server = target.server
        return target

    async def resume_here(self, server: str, params: dict[str, Any], ctx: CallContext) -> Message:
        """Serve a retry another replica forwarded for a call parked here."""
        return await self.forwarder.resume_here(server, params, ctx)

    async def forget_client(self, session_id: str) -> None:
        """A legacy session ended: close the upstream sessions opened for it."""
        await self.pool.forget_client(session_id)

    def _unknown(self, kind: str, name: Any, table: dict[str, Target]) -> RPCError:
        if kind == "tool":
            return unknown_tool(name, table)  # the same words the meta-tools use
        if not isinstance(name, str):
            return RPCError(INVALID_PARAMS, f"`name` of the {kind} must be a string")
        close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return RPCError(
            INVALID_PARAMS, f"Unknown {kind}: {name!r}{hint}", {"name": name, "suggestions": close}
        )
