"""The router over many real MCP servers at once: the frozen evaluation sets' servers, installed.

    python bench/toolsearch/collect.py install --unseen13      # once per set (npm and PyPI)
    python bench/real_servers.py --sets unseen11,unseen12,unseen13 [--settle 25]

The servers of the named sets (`bench/toolsearch/collect.py`, their dummy credentials and loopback
URLs included) become one stdio catalog; `toolmesh router` serves it on a free port. After
/readyz and `--settle` seconds (thirty children start at once on two cores), the script lists the
tools over `GET /v1/tools` (and in the OpenAI and Anthropic formats), asks
`GET /v1/tools/search` one task, calls each server's first tool with no arguments over `POST
/v1/tools/{name}/call`, and in search mode (`/mcp?tools=search`) lists the meta-tools, searches
and calls the first hit through `call_tool`. The servers cannot reach their services, so most
calls are tool errors or argument errors; what counts is that every server is served, every call
gets an answer (HTTP 200 with a result, a clear 4xx, or the router's own 504 timeout: its request
timeout is 8 s, under the client's 10 s, so a tool that waits for a person is answered by the
router), and the router stays ready. Exit status 1 if a server is missing or a call went
unanswered. The report goes to stdout; the router's log to
bench/results/logs/real_servers.log.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from harness import get_status, http_request, response_message  # noqa: E402
from toolsearch import collect  # noqa: E402

from router.up.processes import free_port  # noqa: E402


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


def get(port: int, path: str) -> Any:
    """GET `path`; its JSON."""
    return json.loads(http_request(port, "GET", path)[2])


def post(port: int, path: str, body: bytes) -> tuple[int | str, str]:
    """POST `path`; the status and body, or the error's name and text if no answer came."""
    try:
        status, _, raw = http_request(port, "POST", path, body, {"content-type": "application/json"})
    except OSError as exc:
        return type(exc).__name__, str(exc)
    return status, raw.decode(errors="replace")


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
        with (logs / "real_servers.log").open("w") as log:
            router = subprocess.Popen(
                # the router's own timeout under the client's 10 s: a tool that waits for a person
                # (lr_login waits five minutes for a browser sign-in) gets the router's answer
                [sys.executable, "-m", "router", "router", "--config", str(path), "--port", str(port),
                 "--request-timeout", "8"],
                cwd=ROOT, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
            try:
                return report(port, servers, args.settle, router)
            finally:
                os.killpg(router.pid, signal.SIGTERM)
                router.wait(30)


def report(port: int, servers: dict[str, Any], settle: float, router: subprocess.Popen[bytes]) -> int:
    started = time.monotonic()
    while _status(port, "/readyz") != 200:
        if router.poll() is not None or time.monotonic() - started > 120:
            print("the router never became ready")
            return 1
        time.sleep(0.5)
    print(f"{len(servers)} servers; router ready in {time.monotonic() - started:.1f} s")
    time.sleep(settle)
    names = [tool["name"] for tool in get(port, "/v1/tools")["tools"]]
    first: dict[str, str] = {}
    for name in names:
        first.setdefault(name.split("__")[0], name)
    missing = sorted(set(servers) - set(first))
    print(f"tools {len(names)} from {len(first)} servers; missing: {', '.join(missing) or 'none'}")
    for fmt in ("openai", "anthropic"):
        print(f"format {fmt}: {len(get(port, f'/v1/tools?format={fmt}')['tools'])} tools")
    found = get(port, "/v1/tools/search?q=restart+the+game+server&limit=3")
    print("search 'restart the game server':", [hit["name"] for hit in found["tools"]])
    unanswered = 0
    for server, name in sorted(first.items()):
        began = time.monotonic()
        answered, text = post(port, f"/v1/tools/{name}/call", b"{}")
        took = time.monotonic() - began
        if isinstance(answered, int) and answered < 500:
            outcome = "refused" if answered != 200 else "tool error" if _is_error(text) else "result"
        elif answered == 504 and '"code":-32002' in text:  # the router's timeout: an answer too
            outcome = "timed out"
        else:
            outcome, unanswered = "UNANSWERED", unanswered + 1
        print(f"  {server:14} {answered} {outcome:10} {took:5.1f} s  {text[:70]!r}")
    unanswered += search_mode(port)
    ready = _status(port, "/readyz")
    print(f"readyz after the calls: {ready}")
    return 1 if missing or unanswered or ready != 200 else 0


def rpc(port: int, path: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
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
    try:
        _, reply_headers, raw = http_request(port, "POST", path, body, headers)
    except OSError:
        return {}
    return response_message(raw, reply_headers.get("content-type", ""), 1) or {}


def search_mode(port: int) -> int:
    """The meta-tools over the real catalog (`/mcp?tools=search`): the list, a search, a call
    through `call_tool`; how many went unanswered."""
    path = "/mcp?tools=search"
    listed = [tool["name"] for tool in rpc(port, path, "tools/list", {}).get("result", {}).get("tools", [])]
    print("search mode lists:", listed)
    arguments = {"query": "pause the 3d print", "limit": 3}
    found = rpc(port, path, "tools/call", {"name": "search_tools", "arguments": arguments})
    hits = found.get("result", {}).get("structuredContent", {}).get("tools", [])
    print("search_tools 'pause the 3d print':", [hit["name"] for hit in hits])
    if not hits:
        return 1
    called = rpc(
        port,
        path,
        "tools/call",
        {"name": "call_tool", "arguments": {"name": hits[0]["name"], "arguments": {}}},
    )
    result = called.get("result")
    outcome = called.get("error") if result is None else "tool error" if result.get("isError") else "result"
    print(f"call_tool {hits[0]['name']}: {outcome}")
    return 0 if called else 1


def _is_error(text: str) -> bool:
    try:
        return bool(json.loads(text).get("isError"))
    except (ValueError, AttributeError):
        return False


def _status(port: int, path: str) -> int:
    """The status of GET `path`, or 0 while nothing answers."""
    try:
        return get_status(port, path)
    except OSError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
