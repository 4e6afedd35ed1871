"""An MCP server written the way users of the official Python SDK write one: an `MCPServer`.

Run from the repository root:

    python -m tests.conformance.sdk_backend --port P      # Streamable HTTP at http://127.0.0.1:P/mcp
    python -m tests.conformance.sdk_backend --stdio       # over stdin/stdout

Unlike `tests.conformance.backend` (the low-level `Server`, written to pass every scenario in both
eras), this one uses only the SDK's high-level API, as a server author would, and so it has the
shape most servers behind a router have: it speaks both eras (`initialize` and `server/discover`),
its sampling and elicitation tools are written in the 2025 style (`ctx.session.create_message`,
`ctx.elicit`), which needs a back-channel only the session era has, and the 2026-07-28
`test_input_required_result_*` tools return `InputRequiredResult`s, which only the stateless era
carries. A router that speaks one era to it for every client breaks one of the two kinds of tools.

Scenarios that need what `MCPServer` does not offer fail against it directly and are listed, with
the reason, in ``sdk-expected-failures-<version>.yml``. Two tools exist for tests rather than the
suite: `era` says which protocol version the request arrived in, and `ask_name` asks the user
through a `Resolve` dependency (the SDK picks the era's way of asking).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import struct
import zlib
from typing import Annotated, Any

import anyio
import uvicorn
from mcp import types
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import Context, Elicit, Image, MCPServer, Resolve, UserMessage
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, Field

SERVER_NAME = "toolmesh-sdk-backend"

log = logging.getLogger(SERVER_NAME)


def _red_pixel() -> bytes:
    """A 1x1 red PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def _silence() -> bytes:
    """A tiny mono 8-bit 8 kHz WAV of silence."""
    samples = b"\x80" * 400
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 8000, 1, 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(samples))
    return b"RIFF" + struct.pack("<I", len(body) + len(samples)) + body + samples


PNG = _red_pixel()
WAV_B64 = base64.b64encode(_silence()).decode("ascii")
HOUR = CacheHint(ttl_ms=60_000, scope="public")

server = MCPServer(
    SERVER_NAME,
    version="1.0.0",
    instructions="An SDK server for the router's tests.",
    cache_hints={"tools/list": HOUR, "prompts/list": HOUR, "resources/list": HOUR},
)


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


# --- Content -----------------------------------------------------------------------------------


@server.tool(name="test_simple_text", description="Returns simple text")
def simple_text() -> str:
    return "This is a simple text response for testing."


@server.tool(name="test_image_content", description="Returns a PNG image")
def image_content() -> Image:
    return Image(data=PNG, format="png")


@server.tool(name="test_audio_content", description="Returns a WAV clip")
def audio_content() -> list[types.ContentBlock]:
    return [types.AudioContent(type="audio", data=WAV_B64, mime_type="audio/wav")]


@server.tool(name="test_embedded_resource", description="Returns an embedded resource")
def embedded_resource() -> list[types.ContentBlock]:
    contents = types.TextResourceContents(
        uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
    )
    return [types.EmbeddedResource(type="resource", resource=contents)]


@server.tool(name="test_multiple_content_types", description="Returns text, an image and a resource")
def multiple_content_types() -> list[types.ContentBlock]:
    contents = types.TextResourceContents(
        uri="test://mixed-content-resource",
        mime_type="application/json",
        text='{"test": "data", "value": 123}',
    )
    image = types.ImageContent(type="image", data=base64.b64encode(PNG).decode(), mime_type="image/png")
    return [
        _text("Multiple content types test:"),
        image,
        types.EmbeddedResource(type="resource", resource=contents),
    ]


@server.tool(name="test_error_handling", description="Always fails")
def error_handling() -> str:
    raise ToolError("This tool intentionally returns an error for testing")


@server.tool(name="test_x_mcp_header", description="Echoes a region mirrored in a header")
def x_mcp_header(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> str:
    return f"region={region}"


# --- Notifications and streams -----------------------------------------------------------------


@server.tool(name="test_tool_with_logging", description="Logs three messages")
@server.tool(name="test_logging_tool", description="Logs three messages")
async def with_logging(ctx: Context) -> str:
    for message in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.info(message)
    return "Tool with logging executed successfully"


@server.tool(name="test_tool_with_progress", description="Reports progress 0, 50, 100")
async def with_progress(ctx: Context) -> str:
    for step in (0, 50, 100):
        await ctx.report_progress(step, 100, f"at {step}")
    return "Tool with progress executed successfully"


@server.tool(name="test_reconnection", description="Closes its stream mid-call")
async def reconnection(ctx: Context) -> str:
    # Closing at once can beat the SDK's own priming event (the id to resume from) out of the door,
    # and a client then has nothing to resume with; a moment's wait lets it go first.
    await anyio.sleep(0.1)
    await ctx.close_sse_stream()
    return "Reconnection test completed"


@server.tool(name="test_trigger_tool_change", description="Announces a tool list change")
async def trigger_tool_change(ctx: Context) -> str:
    await ctx.notify_tools_changed()
    return "Tool list change announced"


@server.tool(name="test_trigger_prompt_change", description="Announces a prompt list change")
async def trigger_prompt_change(ctx: Context) -> str:
    await ctx.notify_prompts_changed()
    return "Prompt list change announced"


@server.tool(name="era", description="Says which protocol version this request arrived in")
def era(ctx: Context) -> str:
    return ctx.protocol_version or "unknown"


# --- Asking the client, 2025 style: a request on the call's own stream ---------------------------


@server.tool(name="test_sampling", description="Asks the client's LLM")
async def sampling(prompt: str, ctx: Context) -> str:
    message = types.SamplingMessage(role="user", content=_text(prompt))
    result = await ctx.session.create_message([message], max_tokens=100, related_request_id=ctx.request_id)
    content = result.content
    return f"LLM response: {content.text if isinstance(content, types.TextContent) else content}"


class UserInfo(BaseModel):
    username: str = Field(description="User's response")
    email: str = Field(description="User's email address")


@server.tool(name="test_elicitation", description="Asks the user for a name and an email")
async def elicitation(message: str, ctx: Context) -> str:
    answer = await ctx.elicit(message, UserInfo)
    return f"User response: {answer.action}, {answer.data if answer.action == 'accept' else None}"


class Profile(BaseModel):
    name: str = Field("John Doe", description="User name")
    age: int = Field(30, description="User age")
    score: float = Field(95.5, description="User score")
    status: str = Field(
        "active", description="User status", json_schema_extra={"enum": ["active", "inactive", "pending"]}
    )
    verified: bool = Field(True, description="Verification status")


@server.tool(name="test_elicitation_sep1034_defaults", description="Elicits a form with defaults")
async def sep1034(ctx: Context) -> str:
    answer = await ctx.elicit("Please review your profile", Profile)
    return f"Elicitation completed: {answer.action}"


def _choices(*values: str) -> list[dict[str, str]]:
    return [{"const": f"value{i}", "title": value} for i, value in enumerate(values, 1)]


ENUMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {
            "type": "string",
            "oneOf": _choices("First Option", "Second Option", "Third Option"),
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
            "items": {"anyOf": _choices("First Choice", "Second Choice", "Third Choice")},
        },
    },
}


@server.tool(name="test_elicitation_sep1330_enums", description="Elicits every kind of enum")
async def sep1330(ctx: Context) -> str:
    # A pydantic model cannot say `enumNames` or titled choices: the raw form request.
    answer = await ctx.session.elicit_form("Please make your choices", ENUMS_SCHEMA, ctx.request_id)
    return f"Elicitation completed: {answer.action}"


# --- Asking the client, 2026-07-28 style: an input-required result -----------------------------


def _elicit(message: str, field: str, kind: str = "string") -> types.ElicitRequest:
    schema = {"type": "object", "properties": {field: {"type": kind}}, "required": [field]}
    return types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=schema))


def _sample(text: str, max_tokens: int) -> types.CreateMessageRequest:
    message = types.SamplingMessage(role="user", content=_text(text))
    return types.CreateMessageRequest(
        params=types.CreateMessageRequestParams(messages=[message], max_tokens=max_tokens)
    )


def _answered(ctx: Context, *keys: str) -> dict[str, Any] | None:
    """The client's answers to `keys`, or None if any is missing."""
    given = ctx.input_responses or {}
    if not all(key in given for key in keys):
        return None
    return {key: given[key].model_dump(by_alias=True, exclude_none=True) for key in keys}


def _needs(capability: str, ctx: Context) -> None:
    caps = ctx.client_capabilities
    if caps is None or getattr(caps, capability) is None:
        raise MCPError(
            code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
            message=f"the client did not declare {capability}",
            data={"requiredCapabilities": {capability: {}}},
        )


NAME = _elicit("What is your name?", "name")


@server.tool(name="test_input_required_result_elicitation", description="Asks a name, then greets")
@server.tool(name="test_streaming_elicitation", description="Asks a name, then greets")
def ir_elicitation(ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
    got = _answered(ctx, "user_name")
    if got is None or not isinstance(got["user_name"].get("content"), dict):
        return types.InputRequiredResult(input_requests={"user_name": NAME})
    return types.CallToolResult(content=[_text(f"Hello, {got['user_name']['content'].get('name')}!")])


@server.tool(name="test_input_required_result_sampling", description="Asks the LLM one question")
def ir_sampling(ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
    got = _answered(ctx, "capital_question")
    if got is None:
        return types.InputRequiredResult(
            input_requests={"capital_question": _sample("What is the capital of France?", 100)}
        )
    return types.CallToolResult(content=[_text(f"The model answered: {json.dumps(got['capital_question'])}")])


@server.tool(name="test_input_required_result_list_roots", description="Lists the client's roots")
def ir_roots(ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
    got = _answered(ctx, "client_roots")
    if got is None:
        return types.InputRequiredResult(input_requests={"client_roots": types.ListRootsRequest()})
    return types.CallToolResult(content=[_text(f"Client roots: {json.dumps(got['client_roots'])}")])


CONFIRM = _elicit("Please confirm", "ok", "boolean")


@server.tool(name="test_input_required_result_request_state", description="Round-trips requestState")
@server.tool(name="test_input_required_result_tampered_state", description="Rejects tampered state")
def ir_state(ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
    got = _answered(ctx, "confirm")
    if got is None or ctx.request_state != "confirming":
        return types.InputRequiredResult(input_requests={"confirm": CONFIRM}, request_state="confirming")
    return types.CallToolResult(content=[_text(f"state-ok: {json.dumps(got['confirm'])}")])


def _three() -> dict[str, types.InputRequest]:
    return {
        "user_name": NAME,
        "greeting": _sample("Generate a greeting", 50),
        "client_roots": types.ListRootsRequest(),
    }


@server.tool(name="test_input_required_result_multiple_inputs", description="Asks three things at once")
def ir_multiple(ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
    got = _answered(ctx, *_three())
    if got is None:
        return types.InputRequiredResult(input_requests=_three(), request_state="three")
    return types.CallToolResult(content=[_text(json.dumps(got, sort_keys=True))])


@server.tool(name="test_input_required_result_multi_round", description="Asks a name, then a colour")
def ir_multi_round(ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
    state = ctx.request_state or ""
    if state.startswith("step2:"):
        got = _answered(ctx, "step2")
        if got is not None:
            color = (got["step2"].get("content") or {}).get("color")
            return types.CallToolResult(content=[_text(f"{state.removeprefix('step2:')} likes {color}")])
        return types.InputRequiredResult(
            input_requests={"step2": _elicit("Step 2: What is your favorite color?", "color")},
            request_state=state,
        )
    got = _answered(ctx, "step1")
    if got is None:
        return types.InputRequiredResult(
            input_requests={"step1": _elicit("Step 1: What is your name?", "name")}, request_state="step1"
        )
    name = (got["step1"].get("content") or {}).get("name", "stranger")
    return types.InputRequiredResult(
        input_requests={"step2": _elicit("Step 2: What is your favorite color?", "color")},
        request_state=f"step2:{name}",
    )


@server.tool(
    name="test_input_required_result_capabilities", description="Asks only what the client can answer"
)
def ir_capabilities(ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
    caps = ctx.client_capabilities or types.ClientCapabilities()
    wanted = {
        key: request
        for key, request in _three().items()
        if getattr(caps, {"user_name": "elicitation", "greeting": "sampling", "client_roots": "roots"}[key])
    }
    if not wanted:
        return types.CallToolResult(content=[_text("The client declared nothing to ask with")])
    got = _answered(ctx, *wanted)
    if got is None:
        return types.InputRequiredResult(input_requests=wanted, request_state="capabilities")
    return types.CallToolResult(content=[_text(json.dumps(got, sort_keys=True))])


@server.tool(name="test_missing_capability", description="Needs the client's sampling capability")
def missing_capability(ctx: Context) -> types.CallToolResult | types.InputRequiredResult:
    _needs("sampling", ctx)
    got = _answered(ctx, "answer")
    if got is None:
        return types.InputRequiredResult(input_requests={"answer": _sample("Reply with one word.", 10)})
    return types.CallToolResult(content=[_text(json.dumps(got["answer"]))])


# --- Asking through a dependency: the SDK picks the era's way ------------------------------------


class Name(BaseModel):
    name: str


def who(ctx: Context) -> Elicit[Name]:
    return Elicit("What is your name?", Name)


@server.tool(name="ask_name", description="Asks the user's name through a Resolve dependency, then greets")
def ask_name(person: Annotated[Name, Resolve(who)]) -> str:
    return f"Hello, {person.name}!"


# --- Resources, prompts, completion ------------------------------------------------------------


@server.resource("test://static-text", name="static-text", mime_type="text/plain")
def static_text() -> str:
    return "This is the content of the static text resource."


@server.resource("test://static-binary", name="static-binary", mime_type="image/png")
def static_binary() -> bytes:
    return PNG


@server.resource("test://watched-resource", name="watched-resource", mime_type="text/plain")
def watched() -> str:
    return "Watched resource content"


@server.resource("test://template/{id}/data", name="template-data", mime_type="application/json")
def template_data(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@server.prompt(name="test_simple_prompt", description="A prompt without arguments")
def simple_prompt() -> str:
    return "This is a simple prompt for testing."


@server.prompt(name="test_prompt_with_arguments", description="A prompt with two arguments")
def prompt_with_arguments(arg1: str, arg2: str) -> str:
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@server.prompt(name="test_prompt_with_embedded_resource", description="A prompt embedding a resource")
def prompt_with_resource(resourceUri: str) -> list[UserMessage]:  # the suite names the argument
    contents = types.TextResourceContents(
        uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
    )
    return [
        UserMessage(content=types.EmbeddedResource(type="resource", resource=contents)),
        UserMessage(content="Please process the embedded resource above."),
    ]


@server.prompt(name="test_prompt_with_image", description="A prompt with an image")
def prompt_with_image() -> list[UserMessage]:
    image = types.ImageContent(type="image", data=base64.b64encode(PNG).decode(), mime_type="image/png")
    return [UserMessage(content=image), UserMessage(content="Please analyze the image above.")]


@server.prompt(name="test_input_required_result_prompt", description="Asks for context first")
def ir_prompt(ctx: Context) -> str | types.InputRequiredResult:
    got = _answered(ctx, "user_context")
    if got is None:
        question = _elicit("What context should the prompt use?", "context")
        return types.InputRequiredResult(input_requests={"user_context": question})
    return f"Answer using this context: {(got['user_context'].get('content') or {}).get('context')}"


WORDS = {"arg1": ("paris", "park", "party", "test", "testing"), "arg2": ("alpha", "beta")}


@server.completion()
async def complete(
    ref: types.PromptReference | types.ResourceTemplateReference,
    argument: types.CompletionArgument,
    context: types.CompletionContext | None,
) -> types.Completion:
    values = [word for word in WORDS.get(argument.name, ()) if word.startswith(argument.value)]
    return types.Completion(values=values, total=len(values), has_more=False)


class RecentEvents(EventStore):
    """The last few thousand SSE events, so that a client whose stream was closed can resume."""

    def __init__(self, keep: int = 4096) -> None:
        self.keep = keep
        self.events: dict[EventId, tuple[StreamId, types.JSONRPCMessage | None]] = {}
        self.count = 0

    async def store_event(self, stream_id: StreamId, message: types.JSONRPCMessage | None) -> EventId:
        self.count += 1
        event_id = str(self.count)
        self.events[event_id] = (stream_id, message)
        while len(self.events) > self.keep:
            del self.events[next(iter(self.events))]
        return event_id

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        if last_event_id not in self.events:
            return None
        stream_id = self.events[last_event_id][0]
        later = False
        for event_id, (stream, message) in list(self.events.items()):
            if later and stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
            later = later or event_id == last_event_id
        return stream_id


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="An MCPServer for the router's tests.")
    parser.add_argument("--stdio", action="store_true", help="serve over stdin/stdout instead of HTTP")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.stdio:
        server.run("stdio")
        return
    app = server.streamable_http_app(event_store=RecentEvents(), retry_interval=1000, host=args.host)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
