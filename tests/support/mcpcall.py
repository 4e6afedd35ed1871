"""Raw 2026-07-28 (stateless) tool calls over aiohttp: many concurrent calls, no SDK session."""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp
import orjson

VERSION = "2026-07-28"
_ids = itertools.count(1)


async def call_tool(
    http: aiohttp.ClientSession,
    url: str,
    name: str,
    arguments: dict[str, Any],
    agent: str = "tests",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST one tools/call (with extra `headers`, e.g. a bearer token); the JSON-RPC response."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": agent, "version": "1"},
    }
    body = {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments, "_meta": meta},
    }
    headers = {
        **(headers or {}),
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": VERSION,
        "Mcp-Method": "tools/call",
        "Mcp-Name": name,
    }
    async with http.post(url, data=orjson.dumps(body), headers=headers) as response:
        raw = await response.read()
        if response.content_type == "text/event-stream":
            for line in raw.decode().splitlines():
                if line.startswith("data:"):
                    message = orjson.loads(line[5:])
                    if message.get("id") == body["id"]:
                        return dict(message)
            raise AssertionError(f"no response in the stream: {raw!r}")
        return dict(orjson.loads(raw))


def text_of(reply: dict[str, Any]) -> str:
    assert "result" in reply, reply
    return str(reply["result"]["content"][0]["text"])
