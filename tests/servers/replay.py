"""A legacy stdio MCP server that lists a real server's frozen tools and answers every call.

Run as ``python -m tests.servers.replay FILE [--always-load TOOL ...]``. ``FILE`` is one of the
evaluation set's frozen listings (``bench/toolsearch/evalset/<server>.json``: the real server's
``tools/list`` result, as it listed it). A call of a listed tool answers with the text
``<server>:<tool> <arguments as JSON>``, so a test sees which tool ran with what; an unlisted name is an error. ``--always-load`` marks a tool with
``_meta["anthropic/alwaysLoad"]: true``. Written on the wire directly (newline-delimited JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ALWAYS_LOAD = "anthropic/alwaysLoad"


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", type=Path)
    parser.add_argument("--always-load", action="append", default=[])
    args = parser.parse_args()
    frozen = json.loads(args.file.read_text())
    server = str(frozen["server"])
    tools: list[dict[str, Any]] = []
    for listed in frozen["tools"]:
        if listed["name"] in args.always_load:
            listed = {**listed, "_meta": {**(listed.get("_meta") or {}), ALWAYS_LOAD: True}}  # noqa: PLW2901
        tools.append(listed)
    names = {tool["name"] for tool in tools}
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        method = message.get("method")
        if "id" not in message or method is None:
            continue
        reply: dict[str, Any]
        if method == "initialize":
            reply = {
                "result": {
                    "protocolVersion": message["params"]["protocolVersion"],
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": server, "version": "replay"},
                    **({"instructions": frozen["instructions"]} if frozen.get("instructions") else {}),
                }
            }
        elif method == "tools/list":
            reply = {"result": {"tools": tools}}
        elif method == "ping":
            reply = {"result": {}}
        elif method == "tools/call" and message["params"].get("name") in names:
            params = message["params"]
            arguments = params.get("arguments") or {}
            text = f"{server}:{params['name']} {json.dumps(arguments, sort_keys=True)}"
            reply = {"result": {"content": [{"type": "text", "text": text}]}}
        elif method == "tools/call":
            reply = {"error": {"code": -32602, "message": f"Unknown tool: {message['params'].get('name')}"}}
        else:
            reply = {"error": {"code": -32601, "message": f"Method not found: {method}"}}
        send({"jsonrpc": "2.0", "id": message["id"], **reply})


if __name__ == "__main__":
    main()
