"""A minimal, fast MCP Streamable HTTP backend for benchmarks.

A raw ASGI app on uvicorn (httptools + uvloop, access log off) that speaks both eras on one
endpoint, ``/mcp``:

* legacy (2025-03-26 / 2025-06-18 / 2025-11-25): ``initialize`` opens a session named by the
  ``Mcp-Session-Id`` response header; other requests need that header (missing: 400, unknown:
  404); ``DELETE`` ends the session.
* stateless (2026-07-28): a POST whose ``params._meta`` names the protocol version needs no
  session; ``server/discover`` describes the server.

Every response is ``application/json`` (never SSE). Results that do not depend on the request
are serialised once at start-up.

    python bench/fast_backend.py --port 9001 --tools 20 --name fast
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

LEGACY_VERSIONS = frozenset({"2025-03-26", "2025-06-18", "2025-11-25"})
LATEST_LEGACY = "2025-11-25"
STATELESS_VERSION = "2026-07-28"
META_VERSION = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES = {"tools": {"listChanged": True}}
CACHE_FIELDS = {"resultType": "complete", "ttlMs": 60000, "cacheScope": "public"}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class RpcError(Exception):
    """A JSON-RPC error answered with ``status`` as the HTTP status."""

    def __init__(self, code: int, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def tool_definitions(count: int) -> list[dict[str, Any]]:
    """``tool_0`` .. ``tool_{count-1}``, each taking one string argument ``text``."""
    schema = {"type": "object", "properties": {"text": {"type": "string"}}}
    return [
        {"name": f"tool_{i}", "description": f"Echo text back ({i}).", "inputSchema": schema}
        for i in range(count)
    ]


def envelope(request_id: Any, result: bytes) -> bytes:
    """A JSON-RPC success response around an already serialised result."""
    return b'{"jsonrpc":"2.0","id":' + orjson.dumps(request_id) + b',"result":' + result + b"}"


def error_body(request_id: Any, code: int, message: str) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})


async def read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    while message.get("more_body"):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def respond(
    send: Send, status: int, body: bytes = b"", extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def session_headers(scope: Scope) -> tuple[str | None, str | None]:
    """The ``Mcp-Session-Id`` and ``MCP-Protocol-Version`` request headers, if present."""
    session_id: str | None = None
    version: str | None = None
    for name, value in scope["headers"]:
        if name == b"mcp-session-id":
            session_id = value.decode("latin-1")
        elif name == b"mcp-protocol-version":
            version = value.decode("latin-1")
    return session_id, version


class FastBackend:
    """The ASGI application."""

    def __init__(self, name: str, tool_count: int) -> None:
        self.name = name
        self.sessions: set[str] = set()
        tools = tool_definitions(tool_count)
        self.tool_names = frozenset(tool["name"] for tool in tools)
        server_info = {"name": name, "version": "0.1.0"}
        self.server_info = server_info
        self.tools_legacy = orjson.dumps({"tools": tools})
        self.tools_stateless = orjson.dumps({"tools": tools, **CACHE_FIELDS})
        self.discover = orjson.dumps(
            {
                "supportedVersions": [STATELESS_VERSION],
                "capabilities": CAPABILITIES,
                "serverInfo": server_info,
                **CACHE_FIELDS,
            }
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] != "/mcp":
            await respond(send, 404)
        elif scope["method"] == "POST":
            await self.post(scope, receive, send)
        elif scope["method"] == "DELETE":
            await self.delete(scope, send)
        else:
            await respond(send, 405, extra=[(b"allow", b"POST, DELETE")])

    async def delete(self, scope: Scope, send: Send) -> None:
        session_id, _ = session_headers(scope)
        if session_id is None:
            await respond(send, 400)
        elif session_id in self.sessions:
            self.sessions.discard(session_id)
            await respond(send, 200)
        else:
            await respond(send, 404)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def post(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            message = orjson.loads(await read_body(receive))
        except orjson.JSONDecodeError:
            await respond(send, 400, error_body(None, -32700, "Parse error"))
            return
        if not isinstance(message, dict) or not isinstance(message.get("params", {}), dict):
            await respond(send, 400, error_body(None, -32600, "Invalid Request"))
            return
        method = message.get("method")
        if method is None:  # a client's response to a server request, or junk
            accepted = "id" in message and ("result" in message or "error" in message)
            await respond(send, 202 if accepted else 400)
            return
        params: dict[str, Any] = message.get("params") or {}
        meta = params.get("_meta")
        version = meta.get(META_VERSION) if isinstance(meta, dict) else None
        if version is not None and method != "initialize":
            await self.stateless(message, method, params, version, send)
        else:
            await self.legacy(scope, message, method, params, send)

    async def legacy(
        self, scope: Scope, message: dict[str, Any], method: str, params: dict[str, Any], send: Send
    ) -> None:
        request_id = message.get("id")
        if method == "initialize":
            await self.initialize(request_id, params, send)
            return
        session_id, version = session_headers(scope)
        if session_id is None:
            await respond(send, 400, error_body(request_id, -32600, "Missing Mcp-Session-Id"))
        elif session_id not in self.sessions:
            await respond(send, 404, error_body(request_id, -32001, "Session not found"))
        elif version is not None and version not in LEGACY_VERSIONS:
            await respond(send, 400, error_body(request_id, -32600, "Unsupported MCP-Protocol-Version"))
        elif "id" not in message:
            await respond(send, 202)
        else:
            await self.answer(request_id, method, params, False, send)

    async def initialize(self, request_id: Any, params: dict[str, Any], send: Send) -> None:
        requested = params.get("protocolVersion")
        version = requested if requested in LEGACY_VERSIONS else LATEST_LEGACY
        result = {"protocolVersion": version, "capabilities": CAPABILITIES, "serverInfo": self.server_info}
        session_id = uuid.uuid4().hex
        self.sessions.add(session_id)
        body = envelope(request_id, orjson.dumps(result))
        await respond(send, 200, body, [(b"mcp-session-id", session_id.encode())])

    async def stateless(
        self, message: dict[str, Any], method: str, params: dict[str, Any], version: Any, send: Send
    ) -> None:
        request_id = message.get("id")
        if version != STATELESS_VERSION:
            await respond(send, 400, error_body(request_id, -32022, "Unsupported protocol version"))
        elif "id" not in message:
            await respond(send, 202)
        else:
            await self.answer(request_id, method, params, True, send)

    async def answer(
        self, request_id: Any, method: str, params: dict[str, Any], stateless: bool, send: Send
    ) -> None:
        try:
            result = self.result(method, params, stateless)
        except RpcError as error:
            await respond(send, error.status, error_body(request_id, error.code, error.message))
            return
        await respond(send, 200, envelope(request_id, result))

    def result(self, method: str, params: dict[str, Any], stateless: bool) -> bytes:
        """The serialised result of a request, or an :class:`RpcError`."""
        if method == "tools/call":
            return self.call_tool(params, stateless)
        if method == "tools/list":
            return self.tools_stateless if stateless else self.tools_legacy
        if method == "ping":
            return b'{"resultType":"complete"}' if stateless else b"{}"
        if method == "server/discover":
            return self.discover
        raise RpcError(-32601, f"Method not found: {method}", 404 if stateless else 200)

    def call_tool(self, params: dict[str, Any], stateless: bool) -> bytes:
        if params.get("name") not in self.tool_names:
            raise RpcError(-32602, f"Unknown tool: {params.get('name')}")
        arguments = params.get("arguments")
        text = arguments.get("text", "") if isinstance(arguments, dict) else ""
        result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": False}
        if stateless:
            result["resultType"] = "complete"
        return orjson.dumps(result)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tools", type=int, default=1, help="number of tools, tool_0 .. tool_{N-1}")
    parser.add_argument("--name", default="fast", help="serverInfo.name")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    args = parse_args(argv)
    config = uvicorn.Config(
        FastBackend(args.name, args.tools),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
        proxy_headers=False,
        backlog=4096,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
