"""The router over many real MCP servers at once: the frozen evaluation sets' servers, installed.

    python bench/toolsearch/collect.py install --unseen13      # once per set (npm and PyPI)
    python bench/real_servers.py --sets unseen11,unseen12,unseen13 [--settle 25]

The servers of the named sets (`bench/toolsearch/collect.py`, their dummy credentials and loopback
URLs included) become one stdio catalog; `toolmesh router` serves it on a free port. After
/readyz and `--settle` seconds (thirty children start at once on two cores), the script lists the
tools over `GET /v1/tools` (and in the OpenAI and Anthropic formats), asks
`GET /v1/tools/search` one task, calls each server's first tool with no arguments over `POST
/v1/tools/{name}/call`, and in search mode (`/mcp?tools=search`) lists the meta-tools, searches
and calls the first hit through `call_tool`. The servers cannot reach their services, so most calls are tool errors or
argument errors; what counts is that every server is served, every call gets an answer (HTTP 200
with a result, or a clear 4xx), and the router stays ready. Exit status 1 if a server is missing
or a call went unanswered. The report goes to stdout; the router's log to
bench/results/logs/real_servers.log.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from toolsearch import collect  # noqa: E402


def catalog(sets: list[str]) -> dict[str, Any]:
    """mcpServers entries for the installed servers of `sets` (a server not installed is skipped)."""
    servers: dict[str, Any] = {}
    for name in sets:
        for server in getattr(collect, name.upper().replace("-", "_")):
            try:
                exe, args, _ = collect._command(server)
            except (OSError, KeyError, AssertionError) as exc:
                print(f"skipped {server.name}: not installed ({exc})")
                continue
            env = {k: v.replace("{scratch}", str(collect.SCRATCH)) for k, v in server.env.items()}
            env["HOME"] = str(collect.SCRATCH / "home")
            servers[server.name] = {"command": exe, "args": args, "env": env, "cwd": str(collect.SCRATCH)}
    return servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def post(url: str, body: bytes) -> tuple[int | str, str]:
    request = urllib.request.Request(url, body, {"content-type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=90) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return type(exc).__name__, str(exc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sets", default="unseen11,unseen12,unseen13")
    parser.add_argument("--settle", type=float, default=25.0, help="seconds to wait after /readyz")
    args = parser.parse_args()
    servers = catalog(args.sets.split(","))
    collect._prepare_scratch()
    logs = BENCH / "results" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "catalog.json"
        path.write_text(json.dumps({"mcpServers": servers}))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with (logs / "real_servers.log").open("w") as log:
            router = subprocess.Popen(
                [sys.executable, "-m", "router", "router", "--config", str(path), "--port", str(port)],
                cwd=ROOT, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
            try:
                return report(base, servers, args.settle, router)
            finally:
                os.killpg(router.pid, signal.SIGTERM)
                router.wait(30)


def report(base: str, servers: dict[str, Any], settle: float, router: subprocess.Popen[bytes]) -> int:
    started = time.monotonic()
    while get_status(base + "/readyz") != 200:
        if router.poll() is not None or time.monotonic() - started > 120:
            print("the router never became ready")
            return 1
        time.sleep(0.5)
    print(f"{len(servers)} servers; router ready in {time.monotonic() - started:.1f} s")
    time.sleep(settle)
    _, listing = get(base + "/v1/tools")
    names = [tool["name"] for tool in listing["tools"]]
    first: dict[str, str] = {}
    for name in names:
        first.setdefault(name.split("__")[0], name)
    missing = sorted(set(servers) - set(first))
    print(f"tools {len(names)} from {len(first)} servers; missing: {', '.join(missing) or 'none'}")
    for fmt in ("openai", "anthropic"):
        status, body = get(f"{base}/v1/tools?format={fmt}")
        print(f"format {fmt}: {status}, {len(body['tools']) if isinstance(body, dict) else body[:80]}")
    _, found = get(base + "/v1/tools/search?q=restart+the+game+server&limit=3")
    print("search 'restart the game server':", [hit["name"] for hit in found["tools"]])
    unanswered = 0
    for server, name in sorted(first.items()):
        began = time.monotonic()
        answered, text = post(f"{base}/v1/tools/{name}/call", b"{}")
        took = time.monotonic() - began
        if isinstance(answered, int) and answered < 500:
            outcome = "refused" if answered != 200 else "tool error" if _is_error(text) else "result"
        else:
            outcome, unanswered = "UNANSWERED", unanswered + 1
        print(f"  {server:14} {answered} {outcome:10} {took:5.1f} s  {text[:70]!r}")
    unanswered += search_mode(base)
    ready = get_status(base + "/readyz")
    print(f"readyz after the calls: {ready}")
    return 1 if missing or unanswered or ready != 200 else 0


def rpc(url: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """One 2026-07-28 JSON-RPC request (no session); its response, or {} if none came."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}
    ).encode()
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": method,
        **({"mcp-name": params["name"]} if "name" in params else {}),
    }
    request = urllib.request.Request(url, body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=90) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as exc:
        text = exc.read().decode()
    except OSError:
        return {}
    if text.startswith(("event:", "data:", "id:")):  # an SSE reply: its last data line
        text = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")][-1]
    reply: dict[str, Any] = json.loads(text)
    return reply


def search_mode(base: str) -> int:
    """The meta-tools over the real catalog (`/mcp?tools=search`): the list, a search, a call
    through `call_tool`; how many went unanswered."""
    url = base + "/mcp?tools=search"
    listed = [tool["name"] for tool in rpc(url, "tools/list", {}).get("result", {}).get("tools", [])]
    print("search mode lists:", listed)
    found = rpc(
        url, "tools/call", {"name": "search_tools", "arguments": {"query": "pause the 3d print", "limit": 3}}
    )
    hits = found.get("result", {}).get("structuredContent", {}).get("tools", [])
    print("search_tools 'pause the 3d print':", [hit["name"] for hit in hits])
    if not hits:
        return 1
    called = rpc(
        url, "tools/call", {"name": "call_tool", "arguments": {"name": hits[0]["name"], "arguments": {}}}
    )
    outcome = (
        "tool error"
        if called.get("result", {}).get("isError")
        else ("result" if "result" in called else called.get("error"))
    )
    print(f"call_tool {hits[0]['name']}: {outcome}")
    return 0 if called else 1


def _is_error(text: str) -> bool:
    try:
        return bool(json.loads(text).get("isError"))
    except (ValueError, AttributeError):
        return False


def get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
