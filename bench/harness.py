"""Building blocks for bench/run.py: processes (through `router.up.processes`), a small MCP
client, and wrk.

The client here only sets things up and checks answers (sessions, readiness, tool lists,
cold start); the measured load always comes from wrk.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from router.up import processes
from router.up.processes import ManagedProcess, Supervisor

PROTOCOL_VERSION = "2025-11-25"
HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
WRK_DIR = BENCH_DIR / "wrk"


class BenchError(RuntimeError):
    """Something the benchmark cannot go on without."""


# --- processes -----------------------------------------------------------------------------


def pinned(command: Sequence[str], cpu: int | None) -> list[str]:
    """``command`` under ``taskset -c CPU`` when a CPU is given and taskset is installed."""
    if cpu is None or shutil.which("taskset") is None:
        return list(command)
    return ["taskset", "-c", str(cpu), *command]


class Processes(Supervisor):
    """The supervisor of `toolmesh up` and the tests, with each command pinned to a CPU."""

    def spawn(self, command: Sequence[str], name: str, cpu: int | None) -> ManagedProcess:
        return self.start(pinned(command, cpu), name)


def wait_until(
    check: Callable[[], bool],
    timeout_s: float,
    what: str,
    interval_s: float = 0.005,
    child: ManagedProcess | None = None,
) -> float:
    """Polls ``check`` until it is true; returns the seconds it took. Fails early if ``child`` exits.

    The supervisor's `wait_until`, where a check that raises `BenchError` is not ready yet and a
    failure is a `BenchError`."""

    def ready() -> bool:
        try:
            return check()
        except BenchError:
            return False

    try:
        return processes.wait_until(ready, timeout_s, what, process=child, interval=interval_s)
    except processes.ProcessError as error:
        raise BenchError(str(error)) from None


# --- a small MCP client --------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    message: dict[str, Any] | None


def parse_sse(raw: bytes) -> list[dict[str, Any]]:
    """The JSON messages of an SSE body (``data:`` lines, events split by blank lines)."""
    messages: list[dict[str, Any]] = []
    data: list[str] = []
    for line in [*raw.decode().splitlines(), ""]:
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif not line and data:
            if any(data):  # a priming event (an id, no data) carries no message
                messages.append(orjson.loads("\n".join(data)))
            data = []
    return messages


def response_message(raw: bytes, content_type: str, request_id: Any) -> dict[str, Any] | None:
    """The JSON-RPC response to ``request_id`` in a JSON or SSE body."""
    if not raw:
        return None
    if content_type.startswith("text/event-stream"):
        for message in parse_sse(raw):
            if message.get("id") == request_id and ("result" in message or "error" in message):
                return message
        return None
    message = orjson.loads(raw)
    return message if isinstance(message, dict) else None


def http_request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        raw = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, raw
    finally:
        connection.close()


def get_status(port: int, path: str) -> int:
    return http_request(port, "GET", path)[0]


class McpClient:
    """One legacy-era session (or none, for 2026-07-28 requests) against ``/mcp``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.session_id: str | None = None
        self.next_id = 0

    def post(self, message: dict[str, Any]) -> Reply:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
            headers["MCP-Protocol-Version"] = PROTOCOL_VERSION
        status, reply_headers, raw = http_request(self.port, "POST", "/mcp", orjson.dumps(message), headers)
        content_type = reply_headers.get("content-type", "")
        return Reply(status, reply_headers, response_message(raw, content_type, message.get("id")))

    def exchange(self, method: str, params: dict[str, Any] | None = None) -> tuple[Reply, dict[str, Any]]:
        """Sends a request; returns the reply and its result (or raises)."""
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params or {}}
        reply = self.post(message)
        if reply.status != 200 or reply.message is None or "result" not in reply.message:
            raise BenchError(f"{method} on port {self.port}: HTTP {reply.status}, {reply.message}")
        result: dict[str, Any] = reply.message["result"]
        return reply, result

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.exchange(method, params)[1]

    def open(self) -> str:
        """initialize + notifications/initialized; returns the session id."""
        params = {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "toolmesh-bench", "version": "1"},
        }
        self.session_id = None
        reply, _ = self.exchange("initialize", params)
        session_id = reply.headers.get("mcp-session-id")
        if not session_id:
            raise BenchError(f"initialize on port {self.port} returned no Mcp-Session-Id")
        self.session_id = session_id
        reply = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        if reply.status not in (200, 202, 204):
            raise BenchError(f"notifications/initialized on port {self.port}: HTTP {reply.status}")
        return session_id

    def close(self) -> None:
        if self.session_id is not None:
            headers = {"Mcp-Session-Id": self.session_id, "MCP-Protocol-Version": PROTOCOL_VERSION}
            http_request(self.port, "DELETE", "/mcp", None, headers)
            self.session_id = None

    def list_tools(self) -> list[str]:
        """Every tool name, following ``nextCursor``."""
        names: list[str] = []
        cursor: str | None = None
        while True:
            result = self.request("tools/list", {"cursor": cursor} if cursor else {})
            names.extend(tool["name"] for tool in result.get("tools", []))
            cursor = result.get("nextCursor")
            if not cursor:
                return names

    def call_tool(self, name: str, text: str) -> str:
        result = self.request("tools/call", {"name": name, "arguments": {"text": text}})
        if result.get("isError"):
            raise BenchError(f"tools/call {name} on port {self.port}: {result}")
        content = result.get("content") or [{}]
        return str(content[0].get("text"))

    def discover(self) -> dict[str, Any]:
        """``server/discover`` in the 2026-07-28 era (no session)."""
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
        return self.request("server/discover", {"_meta": meta})


# --- wrk -----------------------------------------------------------------------------------


def wrk_version() -> str:
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed (Debian: apt-get install -y wrk)")
    completed = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    first = (completed.stdout or completed.stderr).splitlines()[:1]
    return first[0].split(" [")[0] if first else "wrk"


def summarize_wrk(report: dict[str, Any]) -> dict[str, Any]:
    """Requests per second, latency in ms and error counts from a WRK_JSON line."""
    duration_s = report["duration_us"] / 1e6
    latency = report["latency_us"]
    summary: dict[str, Any] = {
        "requests": report["requests"],
        "duration_s": round(duration_s, 3),
        "rps": round(report["requests"] / duration_s, 1),
        "errors": sum(report["errors"].values()),
        **{
            f"{key}_ms": round(latency[key] / 1000, 4) for key in ("mean", "p50", "p90", "p99", "p999", "max")
        },
    }
    if "cycles" in report:
        summary["cycles"] = report["cycles"]
        summary["failures"] = report["failures"]
        summary["cycles_per_s"] = round(report["cycles"] / duration_s, 1)
    return summary


def run_wrk(
    script: str,
    port: int,
    *,
    connections: int,
    duration_s: int,
    env: dict[str, str],
    cpu: int | None,
    threads: int = 1,
    path: str = "/mcp",
) -> dict[str, Any]:
    """Runs ``bench/wrk/<script>`` against ``path`` on ``port``; returns :func:`summarize_wrk`."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--timeout",
        "5s",
        "-s",
        str(WRK_DIR / script),
        f"http://{HOST}:{port}{path}",
    ]
    completed = subprocess.run(
        pinned(command, cpu),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=duration_s + 60,
        check=False,
    )
    for line in completed.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return summarize_wrk(orjson.loads(line.removeprefix("WRK_JSON ")))
    raise BenchError(f"wrk printed no result (exit {completed.returncode}): {completed.stderr.strip()}")
