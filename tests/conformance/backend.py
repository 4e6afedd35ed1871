"""An MCP server that exposes everything the official conformance suite's server scenarios ask for.

Run from the repository root:

    python -m tests.conformance.backend --port P [--host 127.0.0.1]

It serves Streamable HTTP at ``http://HOST:P/mcp`` for both protocol eras on one endpoint: handshake-era
sessions (``initialize``, ``Mcp-Session-Id``, GET streams, resumption) and 2026-07-28 stateless requests
(per-request ``_meta``, ``server/discover``, input-required results, ``subscriptions/listen``). The SDK
tells the eras apart by the ``MCP-Protocol-Version`` header.

Interactive tools are written once for both eras: `ask` sends real server-to-client requests on a
handshake-era session and returns an input-required result (then reads ``inputResponses``) on a
2026-07-28 request, so the same tool also exercises a router's bridging in either direction.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import logging
import socket
import struct
import wave
import zlib
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import FrameType, MethodType
from typing import Any, cast

import anyio
import jsonschema
import uvicorn
from mcp import types
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.caching import CacheHint
from mcp.server.connection import allowed_log_levels
from mcp.server.models import InitializationOptions
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp.types.version import MODERN_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Receive, Scope, Send

SERVER_NAME = "toolmesh-conformance-backend"
SERVER_VERSION = "0.1.0"

Ctx = ServerRequestContext[Any]
ToolResult = types.CallToolResult | types.InputRequiredResult
ToolHandler = Callable[[Ctx, types.CallToolRequestParams], Awaitable[ToolResult]]
InputRequest = types.ElicitRequest | types.CreateMessageRequest | types.ListRootsRequest

RESOURCE_NOT_FOUND_LEGACY = -32002
"""Handshake-era code for an unknown resource; 2026-07-28 uses INVALID_PARAMS (SEP-2164)."""

LOG_LEVELS: tuple[types.LoggingLevel, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)


# --- Media fixtures ---------------------------------------------------------------------------------


def _png_pixel(red: int, green: int, blue: int) -> bytes:
    """A 1x1 RGB PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(bytes([0, red, green, blue]))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _silent_wav(samples: int = 800, rate: int = 8000) -> bytes:
    """A short mono 8-bit WAV of silence."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(rate)
        out.writeframes(b"\x80" * samples)
    return buffer.getvalue()


PNG_B64 = base64.b64encode(_png_pixel(255, 0, 0)).decode("ascii")
WAV_B64 = base64.b64encode(_silent_wav()).decode("ascii")


# --- Era, capabilities and input requests -----------------------------------------------------------


def is_modern(ctx: Ctx) -> bool:
    """Whether this request speaks the 2026-07-28 (stateless, input-required) protocol."""
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def elicit(
    message: str, properties: dict[str, Any], required: list[str] | None = None
) -> types.ElicitRequest:
    """A form-mode `elicitation/create` request."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=schema))


def sample(text: str, max_tokens: int = 100) -> types.CreateMessageRequest:
    """A `sampling/createMessage` request with one user message."""
    message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=text))
    return types.CreateMessageRequest(
        params=types.CreateMessageRequestParams(messages=[message], max_tokens=max_tokens)
    )


def list_roots() -> types.ListRootsRequest:
    """A `roots/list` request."""
    return types.ListRootsRequest()


def _capability_for(request: InputRequest) -> types.ClientCapabilities:
    if isinstance(request, types.ElicitRequest):
        return types.ClientCapabilities(elicitation=types.ElicitationCapability())
    if isinstance(request, types.CreateMessageRequest):
        return types.ClientCapabilities(sampling=types.SamplingCapability())
    return types.ClientCapabilities(roots=types.RootsCapability())


def _result_type_for(
    request: InputRequest,
) -> type[types.ElicitResult | types.CreateMessageResult | types.ListRootsResult]:
    if isinstance(request, types.ElicitRequest):
        return types.ElicitResult
    if isinstance(request, types.CreateMessageRequest):
        return types.CreateMessageResult
    return types.ListRootsResult


def client_supports(ctx: Ctx, request: InputRequest) -> bool:
    """Whether the client declared the capability `request` needs."""
    return ctx.session.check_client_capability(_capability_for(request))


def require_capability(ctx: Ctx, request: InputRequest) -> None:
    """Fail with MissingRequiredClientCapability (-32021) unless the client can serve `request`."""
    if client_supports(ctx, request):
        return
    required = _capability_for(request)
    data = types.MissingRequiredClientCapabilityErrorData(required_capabilities=required)
    raise MCPError(
        code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
        message=f"Client capability required: {request.method}",
        data=data.model_dump(by_alias=True, mode="json", exclude_none=True),
    )


def _dump(model: Any) -> dict[str, Any]:
    return cast(dict[str, Any], model.model_dump(by_alias=True, mode="json", exclude_none=True))


async def ask(
    ctx: Ctx,
    params: types.InputResponseRequestParams,
    requests: Mapping[str, InputRequest],
    *,
    state: str | None = None,
) -> dict[str, dict[str, Any]] | types.InputRequiredResult:
    """Get the client's answers to `requests`, keyed like `requests`.

    Handshake era: each request goes to the client on this request's stream. 2026-07-28: answers come
    from ``inputResponses``; if any is missing (or answers the wrong kind of request) the caller gets
    an `InputRequiredResult` re-requesting exactly those, carrying `state` as ``requestState``.
    """
    for request in requests.values():
        require_capability(ctx, request)
    if is_modern(ctx):
        given = params.input_responses or {}
        answers = {
            key: _dump(given[key])
            for key, request in requests.items()
            if isinstance(given.get(key), _result_type_for(request))
        }
        missing = {key: request for key, request in requests.items() if key not in answers}
        if missing:
            return types.InputRequiredResult(input_requests=dict(missing), request_state=state)
        return answers
    metadata = ServerMessageMetadata(related_request_id=ctx.request_id)
    answers = {}
    for key, request in requests.items():
        result = await ctx.session.send_request(request, _result_type_for(request), metadata=metadata)
        answers[key] = _dump(result)
    return answers


def answer_text(answer: Mapping[str, Any]) -> str:
    """A short text rendering of one input response."""
    if "action" in answer:
        return f"action={answer['action']}, content={json.dumps(answer.get('content'), sort_keys=True)}"
    if "roots" in answer:
        return ", ".join(str(root.get("uri")) for root in answer["roots"]) or "(no roots)"
    content = answer.get("content")
    if isinstance(content, Mapping) and content.get("type") == "text":
        return str(content.get("text"))
    return json.dumps(content)


def text_result(text: str, *, is_error: bool = False) -> types.CallToolResult:
    """A tool result with one text block."""
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=is_error)


# --- Event store (SSE resumability for handshake-era streams) --------------------------------------


class MemoryEventStore(EventStore):
    """Keeps the most recent SSE events in memory so clients can resume with ``Last-Event-ID``."""

    def __init__(self, max_events: int = 10_000) -> None:
        self._events: deque[tuple[EventId, StreamId, types.JSONRPCMessage | None]] = deque(maxlen=max_events)
        self._next = 0

    async def store_event(self, stream_id: StreamId, message: types.JSONRPCMessage | None) -> EventId:
        """Record one event (``None`` is a priming event) and return its id."""
        self._next += 1
        event_id = str(self._next)
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        """Send the events of `last_event_id`'s stream that came after it; return that stream's id."""
        position = next((i for i, event in enumerate(self._events) if event[0] == last_event_id), None)
        if position is None:
            return None
        stream_id = self._events[position][1]
        for event_id, stream, message in list(self._events)[position + 1 :]:
            if stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


# --- The backend ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its listing entry, its implementation and its argument validator."""

    tool: types.Tool
    handler: ToolHandler
    validator: jsonschema.protocols.Validator


NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}}

JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}

SEP1034_SCHEMA: dict[str, Any] = {
    "name": {"type": "string", "description": "User name", "default": "John Doe"},
    "age": {"type": "integer", "description": "User age", "default": 30},
    "score": {"type": "number", "description": "User score", "default": 95.5},
    "status": {
        "type": "string",
        "description": "User status",
        "enum": ["active", "inactive", "pending"],
        "default": "active",
    },
    "verified": {"type": "boolean", "description": "Verification status", "default": True},
}

SEP1330_SCHEMA: dict[str, Any] = {
    "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
    "titledSingle": {
        "type": "string",
        "oneOf": [
            {"const": "value1", "title": "First Option"},
            {"const": "value2", "title": "Second Option"},
            {"const": "value3", "title": "Third Option"},
        ],
    },
    "legacyEnum": {
        "type": "string",
        "enum": ["opt1", "opt2", "opt3"],
        "enumNames": ["Option One", "Option Two", "Option Three"],
    },
    "untitledMulti": {
        "type": "array",
        "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
    },
    "titledMulti": {
        "type": "array",
        "items": {
            "anyOf": [
                {"const": "value1", "title": "First Choice"},
                {"const": "value2", "title": "Second Choice"},
                {"const": "value3", "title": "Third Choice"},
            ]
        },
    },
}

REGION_ARGS: dict[str, Any] = {
    "type": "object",
    "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
    "required": ["region"],
}
PROMPT_ARGS: dict[str, Any] = {
    "type": "object",
    "properties": {"prompt": {"type": "string"}},
    "required": ["prompt"],
}
MESSAGE_ARGS: dict[str, Any] = {
    "type": "object",
    "properties": {"message": {"type": "string"}},
    "required": ["message"],
}

NAME_QUESTION = elicit("What is your name?", {"name": {"type": "string"}}, ["name"])
CONFIRM_QUESTION = elicit("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])


def three_questions() -> dict[str, InputRequest]:
    """One request of each kind a server can ask a client."""
    return {
        "user_name": NAME_QUESTION,
        "greeting": sample("Generate a greeting", max_tokens=50),
        "client_roots": list_roots(),
    }


_ToolMethod = Callable[..., Awaitable[ToolResult]]
_TOOLS: list[tuple[str, str, dict[str, Any], _ToolMethod]] = []
"""Tools in listing order: (name, description, input schema, unbound `ConformanceBackend` method)."""


def tool(
    name: str, description: str, schema: dict[str, Any] = NO_ARGS
) -> Callable[[_ToolMethod], _ToolMethod]:
    """Register the decorated `ConformanceBackend` method as tool `name` (stackable for aliases)."""

    def register(method: _ToolMethod) -> _ToolMethod:
        _TOOLS.append((name, description, schema, method))
        return method

    return register


class ConformanceBackend:
    """The server's state (subscription bus, log levels, resource subscriptions) and its handlers."""

    def __init__(self) -> None:
        self.bus = InMemorySubscriptionBus()
        self.listen = ListenHandler(self.bus)
        self._log_levels: OrderedDict[str, types.LoggingLevel] = OrderedDict()
        self._subscriptions: OrderedDict[str, set[str]] = OrderedDict()
        self.tools: dict[str, ToolSpec] = {}
        for name, description, schema, method in _TOOLS:
            spec = types.Tool(name=name, description=description, input_schema=schema)
            handler = cast(ToolHandler, MethodType(method, self))
            self.tools[name] = ToolSpec(spec, handler, jsonschema.Draft202012Validator(schema))

    # -- Per-session state (handshake era) --

    @staticmethod
    def _session_key(ctx: Ctx) -> str | None:
        request = ctx.request
        headers = getattr(request, "headers", None)
        return headers.get("mcp-session-id") if headers is not None else None

    @staticmethod
    def _remember(table: OrderedDict[str, Any], key: str, value: Any, limit: int = 1024) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > limit:
            table.popitem(last=False)

    # -- Logging --

    async def log(self, ctx: Ctx, level: types.LoggingLevel, data: Any) -> None:
        """Send a log message on this request's stream, if the client asked for that level.

        2026-07-28: only when the request's ``_meta`` opted in (``io.modelcontextprotocol/logLevel``).
        Handshake era: filtered by the session's ``logging/setLevel`` (everything until one is set).
        """
        if is_modern(ctx):
            meta = (ctx.params or {}).get("_meta")
            if level not in allowed_log_levels(
                ctx.protocol_version, meta if isinstance(meta, Mapping) else None
            ):
                return
        else:
            key = self._session_key(ctx)
            minimum = self._log_levels.get(key, "debug") if key else "debug"
            if LOG_LEVELS.index(level) < LOG_LEVELS.index(minimum):
                return
        notification = types.LoggingMessageNotification(
            params=types.LoggingMessageNotificationParams(level=level, logger=SERVER_NAME, data=data)
        )
        await ctx.session.send_notification(notification, related_request_id=ctx.request_id)

    async def set_logging_level(self, ctx: Ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
        """``logging/setLevel`` (handshake era only): remember the session's minimum level."""
        key = self._session_key(ctx)
        if key:
            self._remember(self._log_levels, key, params.level)
        return types.EmptyResult()

    # -- Tools --

    async def list_tools(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        """``tools/list``: every tool on one page."""
        return types.ListToolsResult(tools=[spec.tool for spec in self.tools.values()])

    def tool_input_schema(self, name: str) -> dict[str, Any] | None:
        """A tool's input schema, for the SDK's ``Mcp-Param-*`` header validation."""
        spec = self.tools.get(name)
        return spec.tool.input_schema if spec else None

    async def call_tool(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        """``tools/call``: validate the arguments against the tool's schema, then run it."""
        spec = self.tools.get(params.name)
        if spec is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")
        error = jsonschema.exceptions.best_match(spec.validator.iter_errors(params.arguments or {}))
        if error is not None:
            return text_result(f"Invalid arguments for {params.name}: {error.message}", is_error=True)
        return await spec.handler(ctx, params)

    # Content. The suite calls the first listed tool with no arguments, so it must need none.

    @tool("test_simple_text", "Returns simple text content")
    async def simple_text(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        return text_result("This is a simple text response for testing.")

    @tool("test_image_content", "Returns a PNG image")
    async def image_content(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        image = types.ImageContent(type="image", data=PNG_B64, mime_type="image/png")
        return types.CallToolResult(content=[image])

    @tool("test_audio_content", "Returns a WAV audio clip")
    async def audio_content(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        audio = types.AudioContent(type="audio", data=WAV_B64, mime_type="audio/wav")
        return types.CallToolResult(content=[audio])

    @tool("test_embedded_resource", "Returns an embedded text resource")
    async def embedded_resource(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        resource = types.TextResourceContents(
            uri="test://embedded-resource",
            mime_type="text/plain",
            text="This is an embedded resource content.",
        )
        return types.CallToolResult(content=[types.EmbeddedResource(type="resource", resource=resource)])

    @tool("test_multiple_content_types", "Returns text, an image and a resource")
    async def mixed_content(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        resource = types.TextResourceContents(
            uri="test://mixed-content-resource",
            mime_type="application/json",
            text=json.dumps({"test": "data", "value": 123}),
        )
        return types.CallToolResult(
            content=[
                types.TextContent(type="text", text="Multiple content types test:"),
                types.ImageContent(type="image", data=PNG_B64, mime_type="image/png"),
                types.EmbeddedResource(type="resource", resource=resource),
            ]
        )

    @tool("test_error_handling", "Always fails with a tool error")
    async def error_handling(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        return text_result("This tool intentionally returns an error for testing", is_error=True)

    @tool("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", JSON_SCHEMA_2020_12)
    async def echo(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        return text_result(json.dumps(params.arguments or {}, sort_keys=True))

    @tool("test_x_mcp_header", "Echoes a parameter mirrored in the Mcp-Param-Region header", REGION_ARGS)
    async def x_mcp_header(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        return text_result(f"region={(params.arguments or {}).get('region')}")

    # Notifications and streams.

    @tool("test_tool_with_logging", "Logs three messages while it runs")
    @tool("test_logging_tool", "Logs three messages while it runs (only if the request asks for logs)")
    async def with_logging(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        await self.log(ctx, "info", "Tool execution started")
        await anyio.sleep(0.05)
        await self.log(ctx, "info", "Tool processing data")
        await anyio.sleep(0.05)
        await self.log(ctx, "info", "Tool execution completed")
        return text_result("Tool with logging executed successfully")

    @tool("test_tool_with_progress", "Reports progress 0, 50 and 100 of 100")
    async def with_progress(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        for step, progress in enumerate((0.0, 50.0, 100.0)):
            if step:
                await anyio.sleep(0.05)
            await ctx.session.report_progress(progress, 100.0, f"step {step + 1} of 3")
        return text_result("Tool with progress executed successfully")

    @tool("test_reconnection", "Closes its SSE stream mid-call, then answers on the resumed stream")
    async def reconnection(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        """Close this request's SSE stream (handshake era), so the result arrives on the resumed stream.

        The short wait first lets the transport flush the stream's priming event (id and retry).
        """
        if ctx.close_sse_stream is not None:
            await anyio.sleep(0.1)
            await ctx.close_sse_stream()
            await anyio.sleep(0.2)
        return text_result("Reconnection test completed")

    @tool("test_trigger_tool_change", "Announces a tool list change")
    async def trigger_tool_change(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        """Announce a tool list change: to 2026-07-28 listen streams, and to this handshake-era session."""
        await self.bus.publish(ToolsListChanged())
        if not is_modern(ctx):
            await ctx.session.send_tool_list_changed()
        return text_result("Tool list change announced")

    @tool("test_trigger_prompt_change", "Announces a prompt list change")
    async def trigger_prompt_change(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        """Announce a prompt list change: to 2026-07-28 listen streams, and to this handshake-era session."""
        await self.bus.publish(PromptsListChanged())
        if not is_modern(ctx):
            await ctx.session.send_prompt_list_changed()
        return text_result("Prompt list change announced")

    # Interactive: requests to the client (handshake era) or input-required results (2026-07-28).

    @tool("test_sampling", "Asks the client's LLM to answer a prompt", PROMPT_ARGS)
    async def sampling(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        prompt = str((params.arguments or {}).get("prompt", ""))
        got = await ask(ctx, params, {"completion": sample(prompt)})
        if isinstance(got, types.InputRequiredResult):
            return got
        return text_result(f"LLM response: {answer_text(got['completion'])}")

    @tool("test_elicitation", "Asks the user for a username and an email address", MESSAGE_ARGS)
    async def elicitation(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        message = str((params.arguments or {}).get("message", ""))
        question = elicit(
            message,
            {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            ["username", "email"],
        )
        got = await ask(ctx, params, {"user_info": question})
        if isinstance(got, types.InputRequiredResult):
            return got
        return text_result(f"User response: {answer_text(got['user_info'])}")

    @tool("test_elicitation_sep1034_defaults", "Elicits a form with defaults for every type (SEP-1034)")
    async def sep1034(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        got = await ask(ctx, params, {"profile": elicit("Please review your profile", SEP1034_SCHEMA)})
        if isinstance(got, types.InputRequiredResult):
            return got
        return text_result(f"Elicitation completed: {answer_text(got['profile'])}")

    @tool("test_elicitation_sep1330_enums", "Elicits a form with every kind of enum (SEP-1330)")
    async def sep1330(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        got = await ask(ctx, params, {"choices": elicit("Please make your choices", SEP1330_SCHEMA)})
        if isinstance(got, types.InputRequiredResult):
            return got
        return text_result(f"Elicitation completed: {answer_text(got['choices'])}")

    @tool("test_missing_capability", "Needs the client's sampling capability")
    async def missing_capability(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        """Without the sampling capability the call fails with -32021 before anything runs."""
        got = await ask(ctx, params, {"answer": sample("Reply with one word.", max_tokens=10)})
        if isinstance(got, types.InputRequiredResult):
            return got
        return text_result(f"Sampled: {answer_text(got['answer'])}")

    @tool("test_streaming_elicitation", "Elicits a name, then greets")
    @tool("test_input_required_result_elicitation", "Elicits a name, then greets")
    async def greet(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        got = await ask(ctx, params, {"user_name": NAME_QUESTION})
        if isinstance(got, types.InputRequiredResult):
            return got
        name = (got["user_name"].get("content") or {}).get("name", "stranger")
        return text_result(f"Hello, {name}!")

    @tool("test_input_required_result_sampling", "Asks the client's LLM one question")
    async def ir_sampling(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        got = await ask(ctx, params, {"capital_question": sample("What is the capital of France?")})
        if isinstance(got, types.InputRequiredResult):
            return got
        return text_result(f"The model answered: {answer_text(got['capital_question'])}")

    @tool("test_input_required_result_list_roots", "Lists the client's roots")
    async def ir_roots(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        got = await ask(ctx, params, {"client_roots": list_roots()})
        if isinstance(got, types.InputRequiredResult):
            return got
        return text_result(f"Client roots: {answer_text(got['client_roots'])}")

    @tool("test_input_required_result_request_state", "Asks for a confirmation and round-trips requestState")
    @tool("test_input_required_result_tampered_state", "Rejects a tampered requestState")
    async def ir_state(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        """Ask for a confirmation with ``requestState``; the retry must echo it intact."""
        state = f"confirm:{params.name}"
        got = await ask(ctx, params, {"confirm": CONFIRM_QUESTION}, state=state)
        if isinstance(got, types.InputRequiredResult):
            return got
        if is_modern(ctx) and params.request_state != state:
            return types.InputRequiredResult(
                input_requests={"confirm": CONFIRM_QUESTION}, request_state=state
            )
        return text_result(f"state-ok: {answer_text(got['confirm'])}")

    @tool("test_input_required_result_multiple_inputs", "Asks for a name, a greeting and the roots at once")
    async def ir_multiple(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        got = await ask(ctx, params, three_questions(), state="multiple-inputs")
        if isinstance(got, types.InputRequiredResult):
            return got
        return text_result("; ".join(f"{key}: {answer_text(answer)}" for key, answer in got.items()))

    @tool("test_input_required_result_multi_round", "Asks a name, then a colour, in two rounds")
    async def ir_multi_round(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        """Two questions in two rounds; the second round's ``requestState`` carries the first answer."""
        step2 = elicit("Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"])
        state = params.request_state or ""
        if state.startswith("step2:"):
            name = state.removeprefix("step2:")
        else:
            step1 = elicit("Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])
            got = await ask(ctx, params, {"step1": step1}, state="step1")
            if isinstance(got, types.InputRequiredResult):
                return got
            name = str((got["step1"].get("content") or {}).get("name", "stranger"))
            if is_modern(ctx):
                return types.InputRequiredResult(
                    input_requests={"step2": step2}, request_state=f"step2:{name}"
                )
        got = await ask(ctx, params, {"step2": step2}, state=f"step2:{name}")
        if isinstance(got, types.InputRequiredResult):
            return got
        color = (got["step2"].get("content") or {}).get("color", "unknown")
        return text_result(f"{name} likes {color}")

    @tool("test_input_required_result_capabilities", "Asks only what the client declared it can answer")
    async def ir_caps(self, ctx: Ctx, params: types.CallToolRequestParams) -> ToolResult:
        requests = {
            key: request for key, request in three_questions().items() if client_supports(ctx, request)
        }
        if not requests:
            return text_result("The client declared no capability to ask with")
        got = await ask(ctx, params, requests, state="capabilities")
        if isinstance(got, types.InputRequiredResult):
            return got
        return text_result("; ".join(f"{key}: {answer_text(answer)}" for key, answer in got.items()))

    # -- Resources --

    STATIC_RESOURCES: tuple[types.Resource, ...] = (
        types.Resource(
            uri="test://static-text",
            name="static-text",
            description="A static text resource",
            mime_type="text/plain",
        ),
        types.Resource(
            uri="test://static-binary",
            name="static-binary",
            description="A static binary resource (a PNG image)",
            mime_type="image/png",
        ),
        types.Resource(
            uri="test://watched-resource",
            name="watched-resource",
            description="A resource clients can subscribe to",
            mime_type="text/plain",
        ),
    )
    TEMPLATE = types.ResourceTemplate(
        uri_template="test://template/{id}/data",
        name="template-data",
        description="Data for one id",
        mime_type="application/json",
    )

    async def list_resources(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        """``resources/list``: the direct resources."""
        return types.ListResourcesResult(resources=list(self.STATIC_RESOURCES))

    async def list_resource_templates(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        """``resources/templates/list``: the one template."""
        return types.ListResourceTemplatesResult(resource_templates=[self.TEMPLATE])

    async def read_resource(
        self, ctx: Ctx, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        """``resources/read``: the static resources and the template; anything else is not found."""
        uri = params.uri
        contents: types.TextResourceContents | types.BlobResourceContents
        if uri == "test://static-text":
            text = "This is the content of the static text resource."
            contents = types.TextResourceContents(uri=uri, mime_type="text/plain", text=text)
        elif uri == "test://static-binary":
            contents = types.BlobResourceContents(uri=uri, mime_type="image/png", blob=PNG_B64)
        elif uri == "test://watched-resource":
            contents = types.TextResourceContents(
                uri=uri, mime_type="text/plain", text="Watched resource content"
            )
        elif (
            uri.startswith("test://template/")
            and uri.endswith("/data")
            and len(uri) > len("test://template//data")
        ):
            item = uri.removeprefix("test://template/").removesuffix("/data")
            body = {"id": item, "templateTest": True, "data": f"Data for ID: {item}"}
            contents = types.TextResourceContents(
                uri=uri, mime_type="application/json", text=json.dumps(body)
            )
        else:
            code = types.INVALID_PARAMS if is_modern(ctx) else RESOURCE_NOT_FOUND_LEGACY
            raise MCPError(code=code, message="Resource not found", data={"uri": uri})
        return types.ReadResourceResult(contents=[contents])

    async def subscribe(self, ctx: Ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
        """``resources/subscribe`` (handshake era): remember the URI for this session."""
        key = self._session_key(ctx)
        if key:
            self._remember(self._subscriptions, key, self._subscriptions.get(key, set()) | {params.uri})
        return types.EmptyResult()

    async def unsubscribe(self, ctx: Ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        """``resources/unsubscribe`` (handshake era): forget the URI for this session."""
        key = self._session_key(ctx)
        if key and key in self._subscriptions:
            self._subscriptions[key].discard(params.uri)
        return types.EmptyResult()

    # -- Prompts --

    PROMPTS: tuple[types.Prompt, ...] = (
        types.Prompt(name="test_simple_prompt", description="A simple prompt without arguments"),
        types.Prompt(
            name="test_prompt_with_arguments",
            description="A prompt with two required arguments",
            arguments=[
                types.PromptArgument(name="arg1", description="First test argument", required=True),
                types.PromptArgument(name="arg2", description="Second test argument", required=True),
            ],
        ),
        types.Prompt(
            name="test_prompt_with_embedded_resource",
            description="A prompt that embeds a resource",
            arguments=[types.PromptArgument(name="resourceUri", description="URI to embed", required=True)],
        ),
        types.Prompt(name="test_prompt_with_image", description="A prompt with an image"),
        types.Prompt(
            name="test_input_required_result_prompt", description="A prompt that asks the user first"
        ),
    )

    async def list_prompts(
        self, ctx: Ctx, params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        """``prompts/list``."""
        return types.ListPromptsResult(prompts=list(self.PROMPTS))

    async def get_prompt(
        self, ctx: Ctx, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | types.InputRequiredResult:
        """``prompts/get``."""
        prompt = next((p for p in self.PROMPTS if p.name == params.name), None)
        if prompt is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {params.name}")
        args = params.arguments or {}
        missing = [a.name for a in prompt.arguments or [] if a.required and a.name not in args]
        if missing:
            raise MCPError(
                code=types.INVALID_PARAMS, message=f"Missing required arguments: {', '.join(missing)}"
            )

        def user(
            content: types.TextContent | types.ImageContent | types.EmbeddedResource,
        ) -> types.PromptMessage:
            return types.PromptMessage(role="user", content=content)

        def text(value: str) -> types.TextContent:
            return types.TextContent(type="text", text=value)

        if params.name == "test_simple_prompt":
            messages = [user(text("This is a simple prompt for testing."))]
        elif params.name == "test_prompt_with_arguments":
            messages = [user(text(f"Prompt with arguments: arg1='{args['arg1']}', arg2='{args['arg2']}'"))]
        elif params.name == "test_prompt_with_embedded_resource":
            resource = types.TextResourceContents(
                uri=args["resourceUri"], mime_type="text/plain", text="Embedded resource content for testing."
            )
            messages = [
                user(types.EmbeddedResource(type="resource", resource=resource)),
                user(text("Please process the embedded resource above.")),
            ]
        elif params.name == "test_prompt_with_image":
            image = types.ImageContent(type="image", data=PNG_B64, mime_type="image/png")
            messages = [user(image), user(text("Please analyze the image above."))]
        else:
            question = elicit(
                "What context should the prompt use?", {"context": {"type": "string"}}, ["context"]
            )
            got = await ask(ctx, params, {"user_context": question})
            if isinstance(got, types.InputRequiredResult):
                return got
            context = (got["user_context"].get("content") or {}).get("context", "")
            messages = [user(text(f"Answer using this context: {context}"))]
        return types.GetPromptResult(description=prompt.description, messages=messages)

    # -- Completion --

    COMPLETIONS: dict[str, tuple[str, ...]] = {
        "arg1": ("paris", "park", "party", "test", "testing"),
        "arg2": ("alpha", "beta", "gamma"),
        "id": ("1", "123", "42"),
    }

    async def complete(self, ctx: Ctx, params: types.CompleteRequestParams) -> types.CompleteResult:
        """``completion/complete``: prefix matches from a fixed list per argument name."""
        prefix = params.argument.value
        values = [v for v in self.COMPLETIONS.get(params.argument.name, ()) if v.startswith(prefix)]
        return types.CompleteResult(
            completion=types.Completion(values=values, total=len(values), has_more=False)
        )


# --- Server assembly --------------------------------------------------------------------------------


class _Server(Server[Any]):
    """The SDK server, advertising list-change notifications to handshake-era clients too."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        changes = notification_options or NotificationOptions(prompts_changed=True, tools_changed=True)
        return super().create_initialization_options(changes, experimental_capabilities, extensions)


CACHE_HINT = CacheHint(ttl_ms=60_000, scope="public")


def build_server(backend: ConformanceBackend | None = None) -> Server[Any]:
    """The SDK server with every handler of `backend` registered."""
    backend = backend or ConformanceBackend()
    server = _Server(
        SERVER_NAME,
        version=SERVER_VERSION,
        instructions="Conformance backend for the official MCP conformance suite.",
        cache_hints={
            "tools/list": CACHE_HINT,
            "prompts/list": CACHE_HINT,
            "resources/list": CACHE_HINT,
            "resources/templates/list": CACHE_HINT,
            "resources/read": CACHE_HINT,
        },
        get_tool_input_schema=backend.tool_input_schema,
        on_list_tools=backend.list_tools,
        on_call_tool=backend.call_tool,
        on_list_resources=backend.list_resources,
        on_list_resource_templates=backend.list_resource_templates,
        on_read_resource=backend.read_resource,
        on_subscribe_resource=backend.subscribe,
        on_unsubscribe_resource=backend.unsubscribe,
        on_subscriptions_listen=backend.listen,
        on_list_prompts=backend.list_prompts,
        on_get_prompt=backend.get_prompt,
        on_completion=backend.complete,
    )
    # Registered directly: the constructor argument would emit the SDK's deprecation warning for logging.
    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, backend.set_logging_level)
    # Seal requestState (AES-GCM under a per-process key) so tampered or replayed state is rejected.
    server.middleware.append(
        RequestStateBoundary(RequestStateSecurity.ephemeral(), default_audience=SERVER_NAME)
    )
    return server


class TrimHeaderWhitespace:
    """ASGI wrapper dropping leading and trailing whitespace from header values (RFC 9110 section 5.5).

    uvicorn's httptools parser keeps trailing whitespace, and the SDK compares ``Mcp-Name`` and
    ``Mcp-Method`` with the body verbatim, so a padded but correct header would be refused.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(name, value.strip(b" \t")) for name, value in scope["headers"]]
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


def build_app(host: str = "127.0.0.1", backend: ConformanceBackend | None = None) -> ASGIApp:
    """The ASGI app: Streamable HTTP at ``/mcp``, resumable SSE, DNS-rebinding protection on loopback."""
    app = build_server(backend).streamable_http_app(
        streamable_http_path="/mcp",
        event_store=MemoryEventStore(),
        retry_interval=1000,
        host=host,
    )
    return TrimHeaderWhitespace(app)


class _UvicornServer(uvicorn.Server):
    """uvicorn, ending the backend's ``subscriptions/listen`` streams as soon as shutdown starts.

    Listen streams never end on their own, and uvicorn waits for open responses before it stops.
    """

    def __init__(self, config: uvicorn.Config, backend: ConformanceBackend) -> None:
        super().__init__(config)
        self._backend = backend
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._backend.listen.close)
        super().handle_exit(sig, frame)


def main(argv: list[str] | None = None) -> None:
    """Command line: serve the backend with uvicorn."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    backend = ConformanceBackend()
    config = uvicorn.Config(
        build_app(args.host, backend),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        # Handshake-era GET streams stay open too; they are cut after this grace period.
        timeout_graceful_shutdown=2,
    )
    _UvicornServer(config, backend).run()


if __name__ == "__main__":
    main()
