"""A Streamable HTTP MCP server that answers badly on purpose, for the fuzz tests.

It initializes and lists a tool, `junk`, like any server (and `odd`, whose definition has shapes
no SDK would send, and two items that are no tool at all); a `tools/call` answers the way its `mode` argument asks: garbage bytes, half a body, an endless stream, a huge result, the wrong
id, an error status, HTML, nothing, a response without a result, a result nested 400 levels
deep (`deep`), a log message that deep before a proper result (`deep-log`), or (`ok`) properly; `bad-retry`
answers properly in an SSE event whose `retry` field is `²` (no number: to be ignored). And one
mode answers properly but the 2025-11-25 polling way: `polled` sends `before` log messages on
its response stream and closes it; the client's GET with `Last-Event-ID` gets the `after` log
messages and the response (`"polled"`). Log message `n` (from 1) carries the data `event n`.

    python -m tests.servers.junk --port 8931
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LEGACY = "2025-11-25"
MODES = [
    "ok", "garbage", "half", "endless", "huge", "wrong-id", "status-500", "html", "empty", "no-result",
    "sse-garbage", "sse-scalar", "sse-wrong-id", "bad-retry", "deep", "deep-log",
]  # fmt: skip
DEEP = 400  # levels of the `deep` modes' JSON: parsed by orjson (1024), past what it encodes (255)


def nested(levels: int) -> Any:
    """`levels` arrays inside each other, around a 0."""
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


POLLED = "polled"


def log_event(n: int) -> dict[str, Any]:
    """The `n`th log message of a polled call (what the client sees, too: logs pass unchanged)."""
    params = {"level": "info", "logger": "junk", "data": f"event {n}"}
    return {"jsonrpc": "2.0", "method": "notifications/message", "params": params}


class _Polled:
    """What polled calls still have to send, by stream id: [(seq, data)]."""

    streams = itertools.count(1)
    kept: dict[str, list[tuple[int, bytes]]] = {}
    lock = threading.Lock()


class Junk(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.send_header("mcp-session-id", "junk-session")
        self.end_headers()
        self.wfile.write(body)

    def _sse(self, events: list[tuple[str, bytes]], retry: int | None = None) -> None:
        """An SSE response of `events` (id, data), then the connection closes."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        for n, (event_id, data) in enumerate(events):
            head = f"id: {event_id}\n" + (f"retry: {retry}\n" if retry is not None and n == 0 else "")
            self.wfile.write(head.encode() + b"data: " + data + b"\n\n")
        self.wfile.flush()
        self.close_connection = True

    def do_GET(self) -> None:
        stream, _, seq = (self.headers.get("last-event-id") or "").rpartition(".")
        with _Polled.lock:
            kept = _Polled.kept.get(stream) if seq.isdigit() else None
        if kept is None:  # no GET stream of its own
            self._reply(405, b"")
            return
        self._sse([(f"{stream}.{n}", data) for n, data in kept if n > int(seq)])

    def do_DELETE(self) -> None:
        self._reply(200, b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        message = json.loads(self.rfile.read(length) or b"{}")
        method, request_id = message.get("method"), message.get("id")
        if request_id is None:
            self._reply(202, b"")
            return
        if method == "initialize":
            result: Any = {
                "protocolVersion": LEGACY,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "junk", "version": "0"},
            }
        elif method == "tools/list":
            schema = {"type": "object", "properties": {"mode": {"type": "string"}}}
            # `odd`: a definition with shapes no SDK would send (annotations not an object,
            # properties a list, a schema that refers to itself through its variants); it answers
            # like `junk`
            odd = {
                "name": "odd",
                "description": "odd shapes in its definition",
                "annotations": "fast",
                "inputSchema": {
                    "type": "object",
                    "properties": ["mode"],
                    "$defs": {
                        "a": {"oneOf": [{"$ref": "#/$defs/b"}]},
                        "b": {"anyOf": [{"$ref": "#/$defs/a"}]},
                    },
                    "allOf": [{"$ref": "#/$defs/a"}],
                },
            }
            # and two items no client can read: one without a name, one not an object
            nameless = {"description": "a tool without a name", "inputSchema": schema}
            result = {
                "tools": [
                    {"name": "junk", "description": "answers badly", "inputSchema": schema},
                    odd,
                    nameless,
                    7,
                ]
            }
        elif method == "tools/call":
            arguments = (message.get("params") or {}).get("arguments") or {}
            if arguments.get("mode") == POLLED:
                self._polled(arguments, request_id)
            else:
                self._misbehave(str(arguments.get("mode")), request_id)
            return
        else:
            result = {}
        self._reply(200, json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}).encode())

    def _polled(self, arguments: dict[str, Any], request_id: Any) -> None:
        before, after = int(arguments.get("before", 2)), int(arguments.get("after", 3))
        stream = f"junk{next(_Polled.streams)}"
        result = {"content": [{"type": "text", "text": "polled"}]}
        events = [json.dumps(log_event(n)).encode() for n in range(1, before + after + 1)]
        events.append(json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}).encode())
        with _Polled.lock:
            _Polled.kept[stream] = list(enumerate(events, 1))[before:]
        # A priming event (an id, no data), the first `before` messages, and the stream closes.
        self._sse([(f"{stream}.{n}", data) for n, data in enumerate([b"", *events[:before]])], retry=10)

    def _misbehave(self, mode: str, request_id: Any) -> None:
        text = {"content": [{"type": "text", "text": "fine"}]}
        if mode == "garbage":
            self._reply(200, b"\x00\xff{not json at all")
        elif mode == "half":  # a Content-Length the body never reaches, then the connection closes
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", "1000")
            self.end_headers()
            self.wfile.write(b'{"jsonrpc": "2.0", "id": ')
            self.close_connection = True
        elif mode == "endless":  # an SSE stream that never carries the response
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            deadline = time.monotonic() + 20
            try:
                while time.monotonic() < deadline:
                    self.wfile.write(b": still here\n\n")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
            self.close_connection = True
        elif mode == "huge":
            big = {"content": [{"type": "text", "text": "x" * (6 * 1024 * 1024)}]}
            self._reply(200, json.dumps({"jsonrpc": "2.0", "id": request_id, "result": big}).encode())
        elif mode.startswith("sse-"):  # a stream that carries something other than our response
            data = {
                "sse-garbage": b"{not json",
                "sse-scalar": b"5",
                "sse-wrong-id": json.dumps({"jsonrpc": "2.0", "id": "not-yours", "result": text}).encode(),
            }[mode]
            self._reply(200, b"data: " + data + b"\n\n", "text/event-stream")
        elif mode == "deep":  # a result nested past what the router can encode
            deep = {**text, "structuredContent": {"value": nested(DEEP)}}
            self._reply(200, json.dumps({"jsonrpc": "2.0", "id": request_id, "result": deep}).encode())
        elif mode == "deep-log":  # a log message nested too deep, then a proper response
            log = {"jsonrpc": "2.0", "method": "notifications/message",
                   "params": {"level": "info", "logger": "junk", "data": nested(DEEP)}}  # fmt: skip
            response = json.dumps({"jsonrpc": "2.0", "id": request_id, "result": text}).encode()
            events = b"data: " + json.dumps(log).encode() + b"\n\ndata: " + response + b"\n\n"
            self._reply(200, events, "text/event-stream")
        elif mode == "bad-retry":  # a proper response whose event's retry field is no number
            response = json.dumps({"jsonrpc": "2.0", "id": request_id, "result": text}).encode()
            self._reply(200, "retry: \u00b2\ndata: ".encode() + response + b"\n\n", "text/event-stream")
        elif mode == "wrong-id":
            self._reply(200, json.dumps({"jsonrpc": "2.0", "id": "not-yours", "result": text}).encode())
        elif mode == "status-500":
            self._reply(500, b"Internal Server Error", "text/plain")
        elif mode == "html":
            self._reply(200, b"<html>hello</html>", "text/html")
        elif mode == "empty":
            self._reply(200, b"")
        elif mode == "no-result":
            self._reply(200, json.dumps({"jsonrpc": "2.0", "id": request_id}).encode())
        else:
            self._reply(200, json.dumps({"jsonrpc": "2.0", "id": request_id, "result": text}).encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Junk)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
