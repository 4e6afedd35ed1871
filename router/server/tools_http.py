"""Tools over plain HTTP, for clients that do not speak MCP: `/v1/tools`.

- `GET /v1/tools`: the tools this agent may see, as `{"tools": [...]}` (the MCP definitions);
  `?format=openai` gives them as OpenAI `tools` (`{"type": "function", "function": {name,
  description, parameters}}`), `?format=anthropic` as Anthropic tool definitions (`{name,
  description, input_schema}`), with names and schemas adapted as `tool_formats.py` says.
- `POST /v1/tools/{name}/call`: call one, by its MCP name or its OpenAI/Anthropic name; the body
  is the tool's arguments as a JSON object (an empty body means no arguments) and the reply is
  the MCP `CallToolResult` as JSON.
- `GET /v1/openapi.json`: the same tools as an OpenAPI 3.1 document (`openapi.py`).
- `GET /v1/tools/search?q=...&limit=5&server=...`: search the tools this agent may see, as
  `{"tools": [{"name", "server", "tool", "description", "score", "inputSchema"?, "available"?}]}`
  (search_tools' structuredContent; docs/tool-search.md).

The tools listed follow the agent's tools mode like `tools/list` does (`?tools=all|search|auto`
on the URL chooses, as on `/mcp`): in search mode they are the three meta-tools and the pinned
tools, and the meta-tools are called like any other.

A call takes the same path as `tools/call` over MCP: the same `Admission` (Host and Origin
checks, identity, the agent's policy view), then the dispatcher (rate limits, balancing,
breakers, retries), and `Calls`' cancellation and bookkeeping (metrics, audit). It has no session and declares no
client capabilities, so a tool that asks its client something during the call is told the
client cannot answer, and its progress and log messages are dropped.

Failures are JSON `{"error": {"message": ..., "code"?: ..., "data"?: ...}}` with an HTTP status
saying whose problem it is (the JSON-RPC code and data, where there is one, are the ones an MCP
client would get):

    400 body not a JSON object, or the server rejected the arguments (-32602); unknown ?format=
    401 no or bad credentials (with WWW-Authenticate); 403 foreign Origin; 421 foreign Host
    404 no such tool for this agent (hidden tools fail alike), or no such path
    405 wrong method (with Allow); 413 body too large; 415 not application/json
    402 a cost budget is spent (-32008), with Retry-After: when the budget resets
    429 a rate limit or a call budget refused the call, with Retry-After (whole seconds, rounded up)
    502 the server answered with an error of its own
    503 no instance can take the call (down, busy, circuit open: Retry-After when known)
    504 the server did not answer within its timeout

A tool that ran and reported a failure (`isError: true`) is a 200: the call itself worked.
"""

from __future__ import annotations

import time
from typing import Any, cast
from urllib.parse import parse_qs

import orjson

from router.catalog.index import Index
from router.eras import LEGACY
from router.errors import (
    INVALID_PARAMS,
    POLICY_DENIED,
    BackendError,
    BackendTimeout,
    BudgetExceeded,
    CircuitOpen,
    RateLimited,
    RPCError,
)
from router.nesting import nesting_error, too_deep
from router.relay.attempts import REQUEST_ID_HEADER, attempt_key
from router.relay.context import CallContext, Result
from router.relay.meta_tools import MAX_LIMIT, MAX_QUERY_CHARS, ToolSearch, too_long, tools_mode_of
from router.server.admission import Admission, Refusal, sends_json
from router.server.calls import CANCELLED, Calls
from router.server.http11 import DISCONNECT_EXTENSION
from router.server.openapi import openapi_document
from router.server.replies import (
    JSON_HEADERS,
    decoded_headers,
    read_body,
    send_json,
    send_problem,
    send_reply,
)
from router.server.tool_formats import FORMATS, Format, FormatNames, formatted
from router.upstream.deadlines import cancel_scope

PREFIX = "/v1/tools"
SUFFIX = "/call"
OPENAPI = "/v1/openapi.json"
SEARCH = PREFIX + "/search"


def retry_after_header(seconds: float) -> bytes:
    """`Retry-After` is whole seconds (RFC 9110); round up so a client never comes back early."""
    return str(max(1, int(seconds + 0.999))).encode()


def status_of(error: RPCError, resolved: bool) -> tuple[int, list[tuple[bytes, bytes]]]:
    """The HTTP status (and Retry-After, where known) for an error a call ended with.

    `resolved`: the tool name was found, so an invalid-params error came from the server."""
    if isinstance(error, RateLimited):
        return 429, [(b"retry-after", retry_after_header(error.retry_after))]
    if isinstance(error, BudgetExceeded):  # a call budget is a rate over a long window; cost is payment
        return (429 if error.unit == "calls" else 402), [
            (b"retry-after", retry_after_header(error.retry_after))
        ]
    if isinstance(error, CircuitOpen):
        return 503, [(b"retry-after", retry_after_header(error.retry_in))]
    if isinstance(error, BackendTimeout):
        return 504, []
    if isinstance(error, BackendError):
        return 503, []
    if error.code == POLICY_DENIED:
        return 403, []
    if error.code == INVALID_PARAMS:
        return (400 if resolved else 404), []
    return 502, []


def _limit(text: str) -> int | None:
    """`?limit=` as a number of results, None if it is not one from 1 to MAX_LIMIT. ASCII digits
    only: `str.isdigit` is also true for "²" and for 5000 nines, which `int` refuses."""
    digits = text.lstrip("0")
    if not (text.isascii() and text.isdigit()) or len(digits) > len(str(MAX_LIMIT)):
        return None
    limit = int(digits or "0")  # without its leading zeros: `int` counts those too
    return limit if 1 <= limit <= MAX_LIMIT else None


class ToolsEndpoint:
    def __init__(
        self, admission: Admission, calls: Calls, *, max_body_bytes: int, search: ToolSearch | None = None
    ) -> None:
        self.admission = admission
        self.search = search
        self.calls = calls
        self.max_body_bytes = max_body_bytes
        self._names: tuple[Index, FormatNames] | None = None

    def names(self) -> FormatNames:
        """The format names of the current index's tools (rebuilt only when the index changes)."""
        index = self.calls.dispatcher.index
        if self._names is None or self._names[0] is not index:
            self._names = (index, FormatNames(index.tools))
        return self._names[1]

    async def __call__(
        self, scope: dict[str, Any], receive: Any, send: Any, namespace: str | None = None
    ) -> None:
        """Serve `/v1/tools...`; with `namespace`, `/v1/namespaces/{namespace}/tools...` (the path
        is given here without its namespace prefix)."""
        path: str = scope["path"]
        listing = path in {PREFIX, PREFIX + "/", OPENAPI}
        name = (
            path[len(PREFIX) + 1 : -len(SUFFIX)] if path.startswith(PREFIX) and path.endswith(SUFFIX) else ""
        )
        searching = path == SEARCH and self.search is not None
        if not listing and not searching and not name:
            await send_problem(
                send, 404, f"no such path {path}: use GET {PREFIX} or POST {PREFIX}/{{name}}/call"
            )
            return
        wanted = "GET" if listing or searching else "POST"
        if scope["method"] != wanted:
            await send_problem(send, 405, f"use {wanted} on {path}", [(b"allow", wanted.encode())])
            return
        headers = decoded_headers(scope)
        admitted = await self.admission.admit(scope, headers, namespace)
        if isinstance(admitted, Refusal):
            await send_problem(send, admitted.status, admitted.reason, admitted.headers)
            return
        ctx = CallContext(
            LEGACY,
            agent=admitted.agent,
            view=admitted.view,
            trace=admitted.trace,
            via="http",
            attempt=attempt_key(None, headers.get(REQUEST_ID_HEADER), None),
        )
        try:
            ctx.tools_mode = tools_mode_of(scope.get("query_string") or b"")
        except ValueError as exc:
            await send_problem(send, 400, str(exc))
            return
        if path == OPENAPI:
            tools = await self._tools(ctx)
            scheme = scope.get("scheme", "http")
            host = headers.get("host") or "127.0.0.1"
            await send_json(send, 200, openapi_document(tools, self.names(), f"{scheme}://{host}"))
        elif searching:
            await self._search(scope, send, ctx)
        elif listing:
            await self._list(scope, send, ctx)
        else:
            if name not in self.calls.dispatcher.index.tools:  # an OpenAI/Anthropic name?
                name = self.names().mcp_name(name) or name
            await self._call(scope, receive, send, headers, ctx, name)

    async def _list(self, scope: dict[str, Any], send: Any, ctx: CallContext) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        fmt = (query.get("format") or ["mcp"])[-1]
        if fmt not in FORMATS:
            await send_problem(send, 400, f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
            return
        tools = await self._tools(ctx)
        await send_json(send, 200, {"tools": formatted(tools, cast(Format, fmt), self.names())})

    async def _tools(self, ctx: CallContext) -> list[Any]:
        """The MCP definitions of every tool this agent may see (all pages)."""
        tools: list[Any] = []
        params: dict[str, Any] = {}
        while True:
            page = await self.calls.dispatcher.dispatch(ctx, "tools/list", params)
            decoded = orjson.loads(page) if isinstance(page, bytes) else page
            tools += decoded["tools"]
            if "nextCursor" not in decoded:
                break
            params = {"cursor": decoded["nextCursor"]}
        return tools

    async def _search(self, scope: dict[str, Any], send: Any, ctx: CallContext) -> None:
        search = self.search
        assert search is not None
        query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
        q = (query.get("q") or [""])[0]
        limit_text = (query.get("limit") or ["5"])[0]
        server = (query.get("server") or [None])[0]
        if not q.strip():
            await send_problem(send, 400, "give the task in plain words: ?q=...")
            return
        if len(q) > MAX_QUERY_CHARS:
            await send_problem(send, 400, too_long(q))
            return
        limit = _limit(limit_text)
        if limit is None:
            await send_problem(send, 400, f"limit must be an integer from 1 to {MAX_LIMIT}")
            return
        index = self.calls.dispatcher.index
        await send_json(send, 200, await search.find(ctx.view, index, q, limit, server))

    async def _call(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        headers: dict[str, str],
        ctx: CallContext,
        name: str,
    ) -> None:
        if not sends_json(headers, unlabelled_ok=True):
            await send_problem(send, 415, "send the tool's arguments as application/json")
            return
        body = await read_body(receive, self.max_body_bytes, headers.get("content-length"))
        if body is None:
            await send_problem(send, 413, f"body larger than {self.max_body_bytes} bytes")
            return
        try:
            arguments = orjson.loads(body) if body.strip() else {}
        except orjson.JSONDecodeError as exc:
            await send_problem(send, 400, f"body is not JSON: {exc}")
            return
        if not isinstance(arguments, dict):
            await send_problem(send, 400, "body must be a JSON object: the tool's arguments by name")
            return
        if too_deep(body, arguments):
            await send_problem(send, 400, nesting_error("the body").message)
            return
        params = {"name": name, "arguments": arguments}
        started = time.perf_counter()
        result: Result | None = None
        error: RPCError | None = None
        hook = (scope.get("extensions") or {}).get(DISCONNECT_EXTENSION)
        call = self.calls.dispatcher.dispatch(ctx, "tools/call", params)
        try:  # the client going away cancels the call
            result = await self.calls.unless_gone(call, cancel_scope(), receive, hook)
        except RPCError as exc:
            error = exc
        elapsed = time.perf_counter() - started
        cancelled = result is None and error is None  # nobody is left to answer
        if cancelled:
            error = CANCELLED
        code = error.code if error is not None else None
        if self.calls.early is not None:  # a usage spool: the call is on disk before its reply leaves
            self.calls.early.before_reply(ctx, "tools/call", params, result, code, elapsed)
        if error is None:
            if isinstance(result, bytes):
                body = result
            else:  # a tool result is sent as its output limit measured it, not encoded again
                body = (
                    ctx.result_json if ctx.result_sent is result and ctx.result_json else orjson.dumps(result)
                )
            await send_reply(send, 200, body, JSON_HEADERS)
        elif not cancelled:
            status, extra = status_of(error, ctx.server is not None)
            await send_json(send, status, {"error": error.to_error()}, extra)
        outcome = "ok" if error is None else "cancelled" if error is CANCELLED else "error"
        self.calls.finished(ctx, "tools/call", params, outcome, elapsed, result, code)
