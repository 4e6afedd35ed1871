"""A few synchronous MCP calls over plain HTTP (2026-07-28 era: one POST, no session), for
tests that poll a router while processes come and go."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from typing import Any, TypeVar

import aiohttp

T = TypeVar("T")
MODERN = "2026-07-28"


def envelope(capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `_meta` every 2026-07-28 request carries."""
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": capabilities or {},
    }


def modern_headers(method: str, name: str | None = None) -> dict[str, str]:
    """The headers of a 2026-07-28 POST: media types, version, and the routing headers."""
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
    }
    if name is not None:
        headers["mcp-name"] = name
    return headers


def rpc(
    url: str, method: str, params: dict[str, Any] | None = None, name: str | None = None
) -> dict[str, Any]:
    """POST one request; the JSON-RPC response (result or error)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**(params or {}), "_meta": envelope()}}
    request = urllib.request.Request(
        url, json.dumps(body).encode(), modern_headers(method, name), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
    text = raw.decode()
    if text.startswith(("event:", "data:", "id:")):  # an SSE reply: the last data line is the response
        text = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")][-1]
    reply: dict[str, Any] = json.loads(text)
    return reply


def tool_names(url: str) -> set[str]:
    with contextlib.suppress(OSError):
        return {tool["name"] for tool in rpc(url, "tools/list")["result"]["tools"]}
    return set()


def call_tool(url: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return rpc(url, "tools/call", {"name": name, "arguments": arguments}, name=name)


def get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


async def sampling_tool_call(
    http: aiohttp.ClientSession, url: str, request_id: int, params: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """A 2026-07-28 `tools/call` from a client that can sample (async; for input-required
    rounds): the HTTP status and the response (the last event's data, if the reply is SSE)."""
    meta = envelope({"sampling": {}})
    body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {**params, "_meta": meta}}
    headers = modern_headers("tools/call", params["name"])
    async with http.post(url, json=body, headers=headers) as response:
        text = await response.text()
    if response.content_type == "text/event-stream":
        text = [line for line in text.splitlines() if line.startswith("data: ") and len(line) > 6][-1][6:]
    return response.status, json.loads(text)
