"""A minimal legacy stdio MCP server whose sampling requests may name the call that asks.

Run as ``python -m tests.servers.tied_asker``. Its one tool, ``ask``, waits ``delay`` seconds,
sends ``sampling/createMessage`` to its client, waits ``hold`` seconds more, and returns the
sampled text. ``tie`` says what the request carries in its ``_meta`` to name the call:
``related`` (the call's id under ``io.modelcontextprotocol/related-request-id``), ``progress``
(the call's progress token) or ``none`` (nothing, as the TypeScript and Python SDKs send over
stdio). Calls run concurrently. Written on the wire directly (newline-delimited JSON) so that
exactly these fields, and nothing the SDK adds, reach the router.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

RELATED = "io.modelcontextprotocol/related-request-id"
TOOL = {
    "name": "ask",
    "description": "Ask the client to sample, naming the call as `tie` says.",
    "inputSchema": {
        "type": "object",
        "properties": {
            "prompt": {"type": "string"},
            "tie": {"type": "string", "enum": ["related", "progress", "none"]},
            "delay": {"type": "number"},
            "hold": {"type": "number"},
        },
        "required": ["prompt", "tie"],
    },
}

_write_lock = threading.Lock()
_waiting: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}


def send(message: dict[str, Any]) -> None:
    with _write_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def ask(call: dict[str, Any]) -> None:
    params = call["params"]
    arguments = params.get("arguments") or {}
    time.sleep(float(arguments.get("delay", 0.2)))
    meta: dict[str, Any] = {}
    if arguments["tie"] == "related":
        meta[RELATED] = call["id"]
    elif arguments["tie"] == "progress":
        meta["progressToken"] = (params.get("_meta") or {}).get("progressToken")
    question_id = f"q-{call['id']}"
    done: tuple[threading.Event, list[dict[str, Any]]] = (threading.Event(), [])
    _waiting[question_id] = done
    request_params: dict[str, Any] = {
        "messages": [{"role": "user", "content": {"type": "text", "text": arguments["prompt"]}}],
        "maxTokens": 10,
    }
    if meta:
        request_params["_meta"] = meta
    send({"jsonrpc": "2.0", "id": question_id, "method": "sampling/createMessage", "params": request_params})
    done[0].wait()
    reply = done[1][0]
    time.sleep(float(arguments.get("hold", 0)))
    result: dict[str, Any]
    if "result" in reply:
        text = f"sampled: {reply['result']['content']['text']}"
        result = {"content": [{"type": "text", "text": text}]}
    else:
        result = {
            "content": [{"type": "text", "text": f"refused: {reply['error']['message']}"}],
            "isError": True,
        }
    send({"jsonrpc": "2.0", "id": call["id"], "result": result})


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        method = message.get("method")
        if method is None:  # a reply to one of our questions
            waiting = _waiting.pop(str(message.get("id")), None)
            if waiting is not None:
                waiting[1].append(message)
                waiting[0].set()
        elif method == "initialize":
            result = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "tied-asker", "version": "1"},
            }
            send({"jsonrpc": "2.0", "id": message["id"], "result": result})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": message["id"], "result": {"tools": [TOOL]}})
        elif method == "tools/call":
            threading.Thread(target=ask, args=(message,), daemon=True).start()
        elif "id" in message:
            error = {"code": -32601, "message": f"Method not found: {method}"}
            send({"jsonrpc": "2.0", "id": message["id"], "error": error})


if __name__ == "__main__":
    main()
