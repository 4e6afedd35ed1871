"""A configurable MCP backend for tests, built on the mcp SDK's lowlevel `Server`.

Run from the repository root:

    python -m tests.servers.sample --name NAME --transport stdio|http [--host 127.0.0.1] [--port P]
        [--page-size N] [--stateless] [--json-response] [--era both|legacy|modern]

Over HTTP it serves Streamable HTTP at ``http://HOST:P/mcp``. The SDK serves both protocol eras on
one endpoint (it routes on the ``MCP-Protocol-Version`` header: absent or a handshake-era version
goes to the legacy session transport, anything else to the 2026-07-28 per-request path).
``--era legacy`` makes the endpoint behave like a pre-2026 server (a 2026 version header gets 400),
``--era modern`` like a 2026-only server (handshake-era traffic gets 400 with -32022, GET and DELETE
405). Over stdio the era is decided by the client's first request; ``--era`` selects the
handshake-only loop (legacy) or refuses ``initialize`` (modern).

Everything the server says carries its ``--name``, so two instances can be told apart.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import re
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

import anyio
import jsonschema
import orjson
from mcp import types
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.server.models import InitializationOptions
from mcp.server.runner import serve_loop
from mcp.server.stdio import stdio_server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated, ToolsListChanged
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Receive, Scope, Send

Era = Literal["both", "legacy", "modern"]
Ctx = ServerRequestContext[Any]
ToolFn = Callable[[Ctx, dict[str, Any]], Awaitable[types.CallToolResult]]
_T = TypeVar("_T")

RESOURCE_NOT_FOUND = -32002
"""Handshake-era code for an unknown resource (2026-07-28 uses INVALID_PARAMS instead)."""

_LOG_LEVELS: tuple[types.LoggingLevel, ...] = get_args(types.LoggingLevel)
"""Severity-ascending, in the order the `LoggingLevel` literal declares them."""
_GREET_NAMES = ("alice", "albert", "bob")
_ITEM_IDS = ("1", "2", "3")


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _schema(properties: dict[str, Any] | None = None, required: Sequence[str] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties or {}}
    if required:
        schema["required"] = list(required)
    return schema


@dataclass
class SampleBackend:
    """State and handlers of one sample server; `build()` wires them into a lowlevel `Server`."""

    name: str
    page_size: int = 0
    extra_tools: int = 0
    log_level: types.LoggingLevel = "debug"
    # resources/list answers an error while this file exists (a server whose resources need a
    # service it cannot reach, while its tools list fine)
    refuse_resources_while: str | None = None
    subscribed: set[str] = field(default_factory=set)
    bus: InMemorySubscriptionBus = field(default_factory=InMemorySubscriptionBus)

    # -- static catalog -------------------------------------------------------------------------

    @property
    def hello_uri(self) -> str:
        return f"mem://{self.name}/hello"

    @property
    def blob_uri(self) -> str:
        return f"mem://{self.name}/blob"

    @property
    def item_template(self) -> str:
        return f"mem://{self.name}/item/{{id}}"

    @property
    def blob_bytes(self) -> bytes:
        return f"blob of {self.name}:".encode() + bytes([0, 1, 2, 254, 255])

    def _tool_table(self) -> dict[str, tuple[types.Tool, ToolFn]]:
        n = self.name
        read_only = types.ToolAnnotations(read_only_hint=True)
        table: list[tuple[types.Tool, ToolFn]] = [
            (
                types.Tool(
                    name="echo",
                    description=f"Echo text back, prefixed with '{n}:'.",
                    input_schema=_schema({"text": {"type": "string"}}, ["text"]),
                    annotations=read_only,
                ),
                self._echo,
            ),
            (
                types.Tool(
                    name="add",
                    description=f"Add two numbers on {n}; structured result {{sum}}.",
                    input_schema=_schema({"a": {"type": "number"}, "b": {"type": "number"}}, ["a", "b"]),
                    output_schema=_schema({"sum": {"type": "number"}}, ["sum"]),
                ),
                self._add,
            ),
            (
                types.Tool(
                    name="fail",
                    description="Raise an MCPError, so the client gets a JSON-RPC error (default -32603).",
                    input_schema=_schema(
                        {"message": {"type": "string"}, "code": {"type": "integer"}}, ["message"]
                    ),
                ),
                self._fail,
            ),
            (
                types.Tool(
                    name="tool_error",
                    description="Return a result with isError=true.",
                    input_schema=_schema({"message": {"type": "string"}}),
                ),
                self._tool_error,
            ),
            (
                types.Tool(
                    name="slow",
                    description="Sleep for the given number of seconds, then return 'done'.",
                    input_schema=_schema({"seconds": {"type": "number", "minimum": 0}}, ["seconds"]),
                ),
                self._slow,
            ),
            (
                types.Tool(
                    name="link",
                    description="Return a resource_link and an embedded resource.",
                    input_schema=_schema(),
                ),
                self._link,
            ),
            (
                types.Tool(
                    name="grow",
                    description="Add a tool extra_<k> and announce tools/list_changed.",
                    input_schema=_schema({"standalone": {"type": "boolean"}}),
                ),
                self._grow,
            ),
            (
                types.Tool(
                    name="touch",
                    description="Announce notifications/resources/updated for a subscribed resource.",
                    input_schema=_schema({"uri": {"type": "string"}, "standalone": {"type": "boolean"}}),
                ),
                self._touch,
            ),
            (
                types.Tool(
                    name="crash",
                    description="Exit the server process immediately with status 3.",
                    input_schema=_schema(),
                    annotations=types.ToolAnnotations(destructive_hint=True),
                ),
                self._crash,
            ),
            (
                types.Tool(
                    name="whoami",
                    description="Return the server's process id.",
                    input_schema=_schema(),
                    annotations=read_only,
                ),
                self._whoami,
            ),
            (
                types.Tool(
                    name="meta",
                    description="Return the request's `_meta` as JSON (to see what the router sends).",
                    input_schema=_schema(),
                    annotations=read_only,
                ),
                self._meta,
            ),
            (
                types.Tool(
                    name="progress",
                    description="Send `steps` progress notifications and one log message, then return.",
                    input_schema=_schema({"steps": {"type": "integer", "minimum": 0}}, ["steps"]),
                ),
                self._progress,
            ),
        ]
        for k in range(1, self.extra_tools + 1):
            table.append(
                (
                    types.Tool(
                        name=f"extra_{k}",
                        description=f"Tool number {k} added by grow on {n}.",
                        input_schema=_schema(),
                    ),
                    self._extra(k),
                )
            )
        return {tool.name: (tool, fn) for tool, fn in table}

    def _resources(self) -> list[types.Resource]:
        return [
            types.Resource(uri=self.hello_uri, name="hello", mime_type="text/plain"),
            types.Resource(
                uri=self.blob_uri,
                name="blob",
                mime_type="application/octet-stream",
                size=len(self.blob_bytes),
            ),
        ]

    def _templates(self) -> list[types.ResourceTemplate]:
        return [types.ResourceTemplate(uri_template=self.item_template, name="item", mime_type="text/plain")]

    def _prompts(self) -> list[types.Prompt]:
        return [
            types.Prompt(
                name="greet",
                description=f"Greet someone from {self.name}.",
                arguments=[types.PromptArgument(name="who", description="Who to greet", required=True)],
            ),
            types.Prompt(name="plain", description="A prompt without arguments."),
        ]

    # -- pagination -----------------------------------------------------------------------------

    def _page(
        self, kind: str, items: list[_T], params: types.PaginatedRequestParams | None
    ) -> tuple[list[_T], str | None]:
        """Slice `items` by the request's cursor; cursors are opaque and bound to this server and list."""
        start = 0
        cursor = params.cursor if params is not None else None
        if cursor is not None:
            try:
                owner, cursor_kind, offset = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
                start = int(offset)
            except (ValueError, binascii.Error):
                raise MCPError(types.INVALID_PARAMS, "Invalid cursor") from None
            if owner != self.name or cursor_kind != kind or start < 0:
                raise MCPError(types.INVALID_PARAMS, "Invalid cursor")
        if self.page_size <= 0:
            return items[start:], None
        end = start + self.page_size
        if end >= len(items):
            return items[start:], None
        return items[start:end], base64.urlsafe_b64encode(f"{self.name}|{kind}|{end}".encode()).decode()

    # -- request handlers -----------------------------------------------------------------------

    async def list_tools(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        tools, cursor = self._page("tools", [tool for tool, _ in self._tool_table().values()], params)
        return types.ListToolsResult(tools=tools, next_cursor=cursor)

    async def call_tool(self, ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        entry = self._tool_table().get(params.name)
        if entry is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
        tool, fn = entry
        arguments = dict(params.arguments or {})
        try:
            jsonschema.validate(arguments, tool.input_schema)
        except jsonschema.ValidationError as exc:
            return types.CallToolResult(
                content=[_text(f"{self.name}: invalid arguments for {tool.name}: {exc.message}")],
                is_error=True,
            )
        return await fn(ctx, arguments)

    async def list_resources(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        if self.refuse_resources_while is not None and await anyio.Path(self.refuse_resources_while).exists():
            raise MCPError(
                types.INTERNAL_ERROR, f"{self.name}: cannot reach the service the resources live in"
            )
        resources, cursor = self._page("resources", self._resources(), params)
        return types.ListResourcesResult(resources=resources, next_cursor=cursor)

    async def list_resource_templates(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        templates, cursor = self._page("templates", self._templates(), params)
        return types.ListResourceTemplatesResult(resource_templates=templates, next_cursor=cursor)

    async def read_resource(
        self, ctx: Ctx, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = params.uri
        contents: types.TextResourceContents | types.BlobResourceContents
        if uri == self.hello_uri:
            contents = types.TextResourceContents(
                uri=uri, mime_type="text/plain", text=f"hello from {self.name}"
            )
        elif uri == self.blob_uri:
            blob = base64.b64encode(self.blob_bytes).decode()
            contents = types.BlobResourceContents(uri=uri, mime_type="application/octet-stream", blob=blob)
        elif (item := self._item_id(uri)) is not None:
            contents = types.TextResourceContents(
                uri=uri, mime_type="text/plain", text=f"item {item} of {self.name}"
            )
        else:
            code = (
                types.INVALID_PARAMS
                if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
                else RESOURCE_NOT_FOUND
            )
            raise MCPError(code, f"Resource not found: {uri}", {"uri": uri})
        return types.ReadResourceResult(contents=[contents])

    async def subscribe(self, ctx: Ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
        self.subscribed.add(params.uri)
        return types.EmptyResult()

    async def unsubscribe(self, ctx: Ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        self.subscribed.discard(params.uri)
        return types.EmptyResult()

    async def list_prompts(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        prompts, cursor = self._page("prompts", self._prompts(), params)
        return types.ListPromptsResult(prompts=prompts, next_cursor=cursor)

    async def get_prompt(self, ctx: Ctx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        arguments = params.arguments or {}
        if params.name == "greet":
            who = arguments.get("who")
            if not who:
                raise MCPError(types.INVALID_PARAMS, "Missing required argument: who")
            text = f"Hello {who} from {self.name}"
        elif params.name == "plain":
            text = f"A plain prompt from {self.name}"
        else:
            raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {params.name}")
        return types.GetPromptResult(
            description=f"{params.name} prompt of {self.name}",
            messages=[types.PromptMessage(role="user", content=_text(text))],
        )

    async def complete(self, ctx: Ctx, params: types.CompleteRequestParams) -> types.CompleteResult:
        ref, argument = params.ref, params.argument
        candidates: Sequence[str] = ()
        if isinstance(ref, types.PromptReference) and ref.name == "greet" and argument.name == "who":
            candidates = _GREET_NAMES
        elif (
            isinstance(ref, types.ResourceTemplateReference)
            and ref.uri == self.item_template
            and argument.name == "id"
        ):
            candidates = _ITEM_IDS
        values = [value for value in candidates if value.startswith(argument.value)]
        return types.CompleteResult(
            completion=types.Completion(values=values, total=len(values), has_more=False)
        )

    async def set_level(self, ctx: Ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
        self.log_level = params.level
        return types.EmptyResult()

    # -- tools ----------------------------------------------------------------------------------

    async def _echo(self, ctx: Ctx, args: dict[str, Any]) -> types.CallToolResult:
        """Return ``{name}:{text}``."""
        return types.CallToolResult(content=[_text(f"{self.name}:{args['text']}")])

    async def _add(self, ctx: Ctx, args: dict[str, Any]) -> types.CallToolResult:
        """Return ``{"sum": a + b}`` as structured content, and the sum as text."""
        total = args["a"] + args["b"]
        return types.CallToolResult(content=[_text(str(total))], structured_content={"sum": total})

    async def _fail(self, ctx: Ctx, args: dict[str, Any]) -> types.CallToolResult:
        """Raise `MCPError`: the client sees a JSON-RPC error with this code and message in every era.

        (A plain exception would reach the client as code 0 with ``str(exc)`` on handshake-era
        connections, but as -32603 "Internal server error" on 2026-07-28 ones.)
        """
        raise MCPError(args.get("code", types.INTERNAL_ERROR), f"{self.name}: {args['message']}")

    async def _tool_error(self, ctx: Ctx, args: dict[str, Any]) -> types.CallToolResult:
        """Return a tool-level error (``isError: true``)."""
        message = args.get("message", "tool error")
        return types.CallToolResult(content=[_text(f"{self.name}: {message}")], is_error=True)

    async def _slow(self, ctx: Ctx, args: dict[str, Any]) -> types.CallToolResult:
        """Sleep, then return ``done``; cancellation interrupts the sleep (and says so on stderr)."""
        try:
            await anyio.sleep(args["seconds"])
        except anyio.get_cancelled_exc_class():
            print(f"{self.name}: slow call cancelled", file=sys.stderr, flush=True)
            raise
        return types.CallToolResult(content=[_text("done")])

    async def _link(self, ctx: Ctx, args: dict[str, Any]) -> types.CallToolResult:
        """Return a `resource_link` to the hello resource and an embedded item 7."""
        item_uri = f"mem://{self.name}/item/7"
        return types.CallToolResult(
            content=[
                types.ResourceLink(uri=self.hello_uri, name="hello", mime_type="text/plain"),
                types.EmbeddedResource(
                    type="resource",
                    resource=types.TextResourceContents(
                        uri=item_uri, mime_type="text/plain", text=f"item 7 of {self.name}"
                    ),
                ),
            ]
        )

    async def _grow(self, ctx: Ctx, args: dict[str, Any]) -> types.CallToolResult:
        """Add ``extra_<k>`` and announce it.

        Handshake era: ``notifications/tools/list_changed`` on this request's stream (deterministic
        over HTTP), or on the standalone stream (the GET stream) with ``standalone: true``.
        2026-07-28: published on the subscription bus, i.e. to ``subscriptions/listen`` streams.
        """
        self.extra_tools += 1
        added = f"extra_{self.extra_tools}"
        await self._announce(ctx, types.ToolListChangedNotification(), ToolsListChanged(), args)
        return types.CallToolResult(content=[_text(added)])

    async def _touch(self, ctx: Ctx, args: dict[str, Any]) -> types.CallToolResult:
        """Announce ``notifications/resources/updated`` for `uri` (default: the hello resource).

        Handshake era: sent only if the uri is subscribed (resources/subscribe); routed like `grow`.
        """
        uri = args.get("uri", self.hello_uri)
        legacy = ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
        if legacy and uri not in self.subscribed:
            return types.CallToolResult(content=[_text(f"not subscribed: {uri}")])
        notification = types.ResourceUpdatedNotification(
            params=types.ResourceUpdatedNotificationParams(uri=uri)
        )
        await self._announce(ctx, notification, ResourceUpdated(uri=uri), args)
        return types.CallToolResult(content=[_text(f"updated: {uri}")])

    async def _announce(
        self,
        ctx: Ctx,
        notification: types.ServerNotification,
        event: ToolsListChanged | ResourceUpdated,
        args: Mapping[str, Any],
    ) -> None:
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            await self.bus.publish(event)
        else:
            related = None if args.get("standalone") else ctx.request_id
            await ctx.session.send_notification(notification, related_request_id=related)

    async def _crash(self, ctx: Ctx, args: dict[str, Any]) -> types.CallToolResult:
        """Exit the process at once with status 3 (no response is sent)."""
        sys.stderr.write(f"{self.name}: crash requested\n")
        sys.stderr.flush()
        os._exit(3)

    async def _whoami(self, ctx: Ctx, args: dict[str, Any]) -> types.CallToolResult:
        """Return this process's PID, to observe restarts."""
        return types.CallToolResult(content=[_text(str(os.getpid()))])

    async def _meta(self, ctx: Ctx, args: dict[str, Any]) -> types.CallToolResult:
        """Return the request's `_meta` (trace context, envelope, progress token) as JSON."""
        return types.CallToolResult(content=[_text(orjson.dumps(dict(ctx.meta or {}), default=str).decode())])

    async def _progress(self, ctx: Ctx, args: dict[str, Any]) -> types.CallToolResult:
        """Report `steps` progress notifications (if the request has a progressToken), log once, return."""
        steps: int = args["steps"]
        for step in range(1, steps + 1):
            await ctx.session.report_progress(step, steps, f"step {step}/{steps}")
            await anyio.sleep(0.01)
        await self._log(ctx, "info", f"{self.name}: progress finished after {steps} steps")
        return types.CallToolResult(content=[_text(f"{self.name}:progress {steps}")])

    def _extra(self, k: int) -> ToolFn:
        async def extra(ctx: Ctx, args: dict[str, Any]) -> types.CallToolResult:
            """A tool added by `grow`."""
            return types.CallToolResult(content=[_text(f"{self.name}:extra_{k}")])

        return extra

    async def _log(self, ctx: Ctx, level: types.LoggingLevel, data: str) -> None:
        """Send a request-scoped log message.

        Handshake era: filtered by logging/setLevel. 2026-07-28: the SDK delivers it only if the
        request opted in (``_meta`` log level), so it is dropped otherwise.
        """
        if _LOG_LEVELS.index(level) < _LOG_LEVELS.index(self.log_level):
            return
        with warnings.catch_warnings():
            # Logging is deprecated as of 2026-07-28; the SDK warns on every call.
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            pending = ctx.session.send_log_message(
                level, data, logger=self.name, related_request_id=ctx.request_id
            )
        await pending

    def _item_id(self, uri: str) -> str | None:
        match = re.fullmatch(rf"mem://{re.escape(self.name)}/item/(?P<id>[^/]+)", uri)
        return None if match is None else match.group("id")

    # -- wiring ---------------------------------------------------------------------------------

    def build(self) -> Server[Any]:
        """A lowlevel `Server` serving this backend (usable in-process: ``mcp.Client(server)``)."""
        with warnings.catch_warnings():
            # on_set_logging_level is deprecated as of 2026-07-28 and warns; it is still wanted here.
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            server: Server[Any] = _SampleServer(
                self.name,
                version="1.0.0",
                instructions=f"Sample MCP backend {self.name} for toolmesh tests.",
                on_list_tools=self.list_tools,
                on_call_tool=self.call_tool,
                on_list_resources=self.list_resources,
                on_list_resource_templates=self.list_resource_templates,
                on_read_resource=self.read_resource,
                on_subscribe_resource=self.subscribe,
                on_unsubscribe_resource=self.unsubscribe,
                on_subscriptions_listen=ListenHandler(self.bus),
                on_list_prompts=self.list_prompts,
                on_get_prompt=self.get_prompt,
                on_completion=self.complete,
                on_set_logging_level=self.set_level,
            )
        return server


class _SampleServer(Server[Any]):
    """`Server` whose handshake advertises ``tools.listChanged`` (the SDK default advertises none).

    The Streamable HTTP session manager builds the initialize result from
    `create_initialization_options()` without arguments, so the default is changed here.
    """

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True),
            experimental_capabilities,
            extensions,
        )


def build_server(name: str, *, page_size: int = 0) -> Server[Any]:
    """Build the sample server `name` (for in-process use, e.g. ``mcp.Client(build_server("a"))``)."""
    return SampleBackend(name, page_size=page_size).build()


# -- era restriction ------------------------------------------------------------------------------


class _RefuseInitialize:
    """Server middleware for ``--era modern`` over stdio: the handshake is answered with -32022."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "initialize":
            requested = (ctx.params or {}).get("protocolVersion")
            raise MCPError(
                types.UNSUPPORTED_PROTOCOL_VERSION,
                "Unsupported protocol version: this server speaks only the 2026-07-28 protocol",
                {"supported": list(MODERN_PROTOCOL_VERSIONS), "requested": str(requested)},
            )
        return await call_next(ctx)


class EraGate:
    """ASGI wrapper that narrows the SDK's dual-era endpoint to one era (see the module docstring)."""

    def __init__(self, app: ASGIApp, era: Era) -> None:
        self.app = app
        self.era = era

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.era == "both":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        version = headers.get(b"mcp-protocol-version", b"").decode("latin-1") or None
        modern_request = version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS
        if self.era == "legacy" and modern_request:
            error = {
                "code": types.INVALID_REQUEST,
                "message": f"Bad Request: Unsupported protocol version: {version}",
            }
            await _json_error(send, 400, await _read_body(receive), error)
        elif self.era == "modern" and not modern_request:
            if scope["method"] != "POST":
                await _respond(send, 405, b"", [(b"allow", b"POST")])
                return
            body = await _read_body(receive)
            requested = version or _initialize_version(body) or ""
            error = {
                "code": types.UNSUPPORTED_PROTOCOL_VERSION,
                "message": "Unsupported protocol version: this server speaks only the 2026-07-28 protocol",
                "data": {"supported": list(MODERN_PROTOCOL_VERSIONS), "requested": requested},
            }
            await _json_error(send, 400, body, error)
        else:
            await self.app(scope, receive, send)


class SessionExpiry:
    """Test control: `POST /expire-sessions` ends every session seen so far, as a server that
    restarted in place or expired idle sessions would; a request naming one then gets 404."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: set[bytes] = set()
        self.expired: set[bytes] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/expire-sessions":
            self.expired |= self.seen
            await _respond(send, 200, str(len(self.expired)).encode(), [(b"content-type", b"text/plain")])
            return
        session = dict(scope["headers"]).get(b"mcp-session-id")
        if session in self.expired:
            error = {"code": types.INVALID_REQUEST, "message": "Session not found"}
            await _json_error(send, 404, await _read_body(receive), error)
            return
        if session is not None:
            self.seen.add(session)
        await self.app(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _decode(body: bytes) -> dict[str, Any]:
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _initialize_version(body: bytes) -> str | None:
    params = _decode(body).get("params")
    version = params.get("protocolVersion") if isinstance(params, dict) else None
    return version if isinstance(version, str) else None


async def _json_error(send: Send, status: int, request_body: bytes, error: dict[str, Any]) -> None:
    """Answer with a JSON-RPC error echoing the request's id (null if it has none)."""
    request_id = _decode(request_body).get("id")
    if not isinstance(request_id, str | int):
        request_id = None
    body = orjson.dumps({"jsonrpc": "2.0", "id": request_id, "error": error})
    await _respond(send, status, body, [(b"content-type", b"application/json")])


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- entry points ---------------------------------------------------------------------------------


async def serve_stdio(server: Server[Any], era: Era = "both") -> None:
    """Serve `server` over stdin/stdout until stdin closes."""
    init_options = server.create_initialization_options()
    async with stdio_server() as (read_stream, write_stream):
        if era == "legacy":
            # The handshake-only loop: 2026-07-28 requests are not understood.
            async with server.lifespan(server) as state:
                await serve_loop(
                    server, read_stream, write_stream, lifespan_state=state, init_options=init_options
                )
            return
        if era == "modern":
            server.middleware.append(_RefuseInitialize())
        await server.run(read_stream, write_stream, init_options)


def http_app(
    server: Server[Any],
    *,
    host: str = "127.0.0.1",
    stateless: bool = False,
    json_response: bool = False,
    era: Era = "both",
) -> ASGIApp:
    """The Streamable HTTP ASGI app for `server` at ``/mcp``, narrowed to `era`."""
    app = server.streamable_http_app(host=host, stateless_http=stateless, json_response=json_response)
    return SessionExpiry(EraGate(app, era))


def sse_app(server: Server[Any]) -> ASGIApp:
    """The 2024-11-05 HTTP+SSE transport for `server`: the event stream at ``/sse``, messages
    POSTed to ``/messages/?session_id=...`` (the `endpoint` event names it); legacy era only."""
    from mcp.server.sse import SseServerTransport
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Mount, Route

    transport = SseServerTransport("/messages/")
    init_options = server.create_initialization_options()

    async def handle_sse(request: Request) -> Response:
        async with (
            transport.connect_sse(request.scope, request.receive, request._send) as (read, write),
            server.lifespan(server) as state,
        ):
            await serve_loop(server, read, write, lifespan_state=state, init_options=init_options)
        return Response()

    routes = [
        Route("/sse", endpoint=handle_sse, methods=["GET"]),
        Mount("/messages/", app=transport.handle_post_message),
    ]
    return Starlette(routes=routes)


class VerifyIdentity:
    """What a backend that opted in to the router's identity tokens does: every request must carry
    `Authorization: Bearer <jwt>` signed by a key of the router's JWKS, for this audience and
    issuer, unexpired; anything else is answered 401. Verified claims are appended to a file."""

    def __init__(self, app: ASGIApp, jwks_url: str, audience: str, issuer: str, log: str | None) -> None:
        import jwt

        self.app, self.audience, self.issuer, self.log = app, audience, issuer, log
        # Its JWKS cache must be shorter than the router's rotation period (a key is published one
        # period before it signs); the rotation test rotates every 2 s.
        self.jwks = jwt.PyJWKClient(jwks_url, lifespan=1.0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        import jwt

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode()
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        try:
            key = await anyio.to_thread.run_sync(self.jwks.get_signing_key_from_jwt, token)
            claims = jwt.decode(token, key, algorithms=["ES256"], audience=self.audience, issuer=self.issuer)
        except (jwt.PyJWTError, ValueError) as exc:
            sys.stderr.write(f"identity token rejected: {exc!r}\n")
            body = orjson.dumps({"error": f"identity token rejected: {exc}"})
            await _respond(send, 401, body, [(b"content-type", b"application/json")])
            return
        if self.log:
            kid = jwt.get_unverified_header(token).get("kid")
            line = orjson.dumps({"claims": claims, "kid": kid, "token": token}) + b"\n"
            await anyio.to_thread.run_sync(_append, self.log, line)
        await self.app(scope, receive, send)


class LogAuthorization:
    """Appends `{"authorization": ..., "body": ...}` for every POST: which credential came with what."""

    def __init__(self, app: ASGIApp, log: str) -> None:
        self.app, self.log = app, log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording() -> Any:
            message = await receive()
            chunks.append(message.get("body", b""))
            return message

        authorization = dict(scope["headers"]).get(b"authorization", b"").decode()
        try:
            await self.app(scope, recording, send)
        finally:
            line = orjson.dumps({"authorization": authorization, "body": b"".join(chunks).decode()})
            await anyio.to_thread.run_sync(_append, self.log, line + b"\n")


def _append(path: str, line: bytes) -> None:
    with open(path, "ab") as out:
        out.write(line)


def serve_http(
    server: Server[Any],
    *,
    host: str,
    port: int,
    stateless: bool,
    json_response: bool,
    era: Era,
    sse: bool = False,
    verify: tuple[str, str, str, str | None] | None = None,
    auth_log: str | None = None,
) -> None:
    """Serve `server` over Streamable HTTP with uvicorn until SIGINT/SIGTERM."""
    import uvicorn

    app = (
        sse_app(server)
        if sse
        else http_app(server, host=host, stateless=stateless, json_response=json_response, era=era)
    )
    if verify is not None:
        app = VerifyIdentity(app, *verify)
    if auth_log is not None:
        app = LogAuthorization(app, auth_log)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", access_log=False)
    uvicorn.Server(config).run()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.servers.sample", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--name", required=True, help="server name; appears in every output")
    parser.add_argument("--transport", choices=("stdio", "http", "sse"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--page-size", type=int, default=0, help="page list results (0: unpaged)")
    parser.add_argument("--stateless", action="store_true", help="HTTP: no legacy sessions")
    parser.add_argument("--json-response", action="store_true", help="HTTP: JSON instead of SSE responses")
    parser.add_argument("--era", choices=("both", "legacy", "modern"), default="both")
    parser.add_argument(
        "--verify-jwks", help="HTTP: require the router's identity JWT, keys from this JWKS URL"
    )
    parser.add_argument("--audience", help="with --verify-jwks: the `aud` required (default: --name)")
    parser.add_argument("--issuer", default="toolmesh", help="with --verify-jwks: the `iss` required")
    parser.add_argument("--claims-log", help="with --verify-jwks: append each verified token's claims here")
    parser.add_argument("--auth-log", help="HTTP: append each POST's Authorization and body here")
    parser.add_argument("--refuse-resources-while", help="resources/list fails while this file exists")
    parser.add_argument(
        "--start-delay", type=float, default=0.0, help="seconds to wait before serving (a slow start)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    time.sleep(args.start_delay)  # a server whose imports and set-up take a while
    server = SampleBackend(
        args.name, page_size=args.page_size, refuse_resources_while=args.refuse_resources_while
    ).build()
    if args.transport == "stdio":
        anyio.run(serve_stdio, server, args.era)
    else:
        path = "/sse" if args.transport == "sse" else "/mcp"
        sys.stderr.write(
            f"sample server {args.name} on http://{args.host}:{args.port}{path} (era {args.era})\n"
        )
        sys.stderr.flush()
        serve_http(
            server,
            host=args.host,
            port=args.port,
            stateless=args.stateless,
            json_response=args.json_response,
            era=args.era,
            sse=args.transport == "sse",
            verify=(args.verify_jwks, args.audience or args.name, args.issuer, args.claims_log)
            if args.verify_jwks
            else None,
            auth_log=args.auth_log,
        )


if __name__ == "__main__":
    main()
