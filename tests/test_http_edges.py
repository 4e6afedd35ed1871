"""What the endpoint says to malformed or hostile requests: the status codes and errors the spec asks for."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.conftest import RouterHandle, run_router
from tests.support.procs import sample_server_stdio_entry, write_catalog

pytestmark = pytest.mark.anyio

ACCEPT = "application/json, text/event-stream"
JSON = {"Content-Type": "application/json", "Accept": ACCEPT}
MODERN = "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
}


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterHandle]:
    tmp = tmp_path_factory.mktemp("edges")
    with run_router(tmp, {"alpha": sample_server_stdio_entry("alpha")}, "--max-body-bytes", "4096") as handle:
        yield handle


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, router: RouterHandle, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with http.post(router.mcp_url, data=data, headers={**JSON, **(headers or {})}) as response:
        text = await response.text()
        is_json = response.content_type == "application/json"
        return response.status, (json.loads(text) if is_json else text)


async def initialize(http: aiohttp.ClientSession, router: RouterHandle) -> str:
    params = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    async with http.post(
        router.mcp_url,
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params},
        headers=JSON,
    ) as response:
        assert response.status == 200
        body = await response.json()
        assert body["result"]["protocolVersion"] == "2025-11-25"
        assert body["result"]["serverInfo"]["name"] == "toolmesh"
        return response.headers["mcp-session-id"]


async def test_bad_json_is_a_parse_error(http: aiohttp.ClientSession, router: RouterHandle) -> None:
    status, body = await post(http, router, b"{not json")
    assert status == 400 and body["error"]["code"] == -32700


async def test_batches_and_non_objects_are_invalid_requests(
    http: aiohttp.ClientSession, router: RouterHandle
) -> None:
    status, body = await post(http, router, [{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
    assert status == 400 and body["error"]["code"] == -32600 and "batch" in body["error"]["message"]
    status, body = await post(http, router, {"id": 1, "method": "ping"})
    assert status == 400 and body["error"]["code"] == -32600


async def test_legacy_requests_need_a_known_session(
    http: aiohttp.ClientSession, router: RouterHandle
) -> None:
    status, body = await post(http, router, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    assert status == 400 and "Mcp-Session-Id" in body["error"]["message"]
    status, body = await post(
        http, router, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, {"mcp-session-id": "forged"}
    )
    assert status == 404


async def test_session_lifecycle_initialize_use_delete(
    http: aiohttp.ClientSession, router: RouterHandle
) -> None:
    session = await initialize(http, router)
    headers = {"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
    status, _ = await post(http, router, {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers)
    assert status == 202
    status, body = await post(http, router, {"jsonrpc": "2.0", "id": 3, "method": "ping"}, headers)
    # 2025-11-25 sessions get resumable streams: a priming event (id, retry, no data) first
    assert status == 200 and isinstance(body, str), body
    priming, reply = body.split("\n\n")[:2]
    assert priming.startswith("id: ") and "\nretry: 1000\ndata: " in priming
    assert reply.startswith("id: ") and json.loads(reply.split("data: ", 1)[1]) == {
        "jsonrpc": "2.0",
        "id": 3,
        "result": {},
    }
    status, body = await post(
        http,
        router,
        {"jsonrpc": "2.0", "id": 4, "method": "ping"},
        {**headers, "mcp-protocol-version": "1999-01-01"},
    )
    assert status == 400
    async with http.delete(router.mcp_url, headers=headers) as response:
        assert response.status == 200
    status, _ = await post(http, router, {"jsonrpc": "2.0", "id": 5, "method": "ping"}, headers)
    assert status == 404


async def test_resumptions_the_router_cannot_replay(
    http: aiohttp.ClientSession, router: RouterHandle
) -> None:
    """A GET stream's own ids are not kept: reconnecting it with one gives a new stream. A request
    stream's id the router no longer has is 410 with the fix, never 404 (the session is fine)."""
    session = await initialize(http, router)
    headers = {"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
    stream = {**headers, "accept": "text/event-stream"}
    async with http.get(router.mcp_url, headers={**stream, "last-event-id": "7"}) as response:
        assert response.status == 200 and response.content_type == "text/event-stream"
    async with http.get(router.mcp_url, headers={**stream, "last-event-id": "AbCdEf.3"}) as response:
        assert response.status == 410
        error = (await response.json())["error"]
        assert "Last-Event-ID" in error["message"] and "send the request again" in error["message"]
    status, _ = await post(http, router, {"jsonrpc": "2.0", "id": 2, "method": "ping"}, headers)
    assert status == 200


async def test_accept_content_type_and_size_are_checked(
    http: aiohttp.ClientSession, router: RouterHandle
) -> None:
    """Each refusal is a JSON-RPC error (null id: the request was not read) naming the fix, as
    every error of the endpoint is; plain HTTP surfaces answer `{"error": {"message"}}`."""
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    status, refused = await post(http, router, ping, {"Accept": "application/json"})
    assert status == 406
    assert refused["id"] is None and refused["error"]["code"] == -32600
    assert "accept both application/json and text/event-stream" in refused["error"]["message"]
    status, refused = await post(http, router, ping, {"Content-Type": "text/plain"})
    assert status == 415 and "send application/json" in refused["error"]["message"]
    status, refused = await post(http, router, {**ping, "params": {"pad": "x" * 10_000}})
    assert status == 413 and "too large" in refused["error"]["message"]
    async with http.put(router.mcp_url, headers=JSON) as response:
        assert response.status == 405 and response.headers["allow"] == "GET, POST, DELETE"
        assert (await response.json())["error"]["message"] == "Method Not Allowed"
    async with http.get(f"{router.base_url}/nowhere") as response:
        assert response.status == 404
        assert "MCP is served at /mcp" in (await response.json())["error"]["message"]


async def test_a_trusted_proxy_names_the_client(http: aiohttp.ClientSession, router: RouterHandle) -> None:
    """A request from a trusted proxy (loopback, uvicorn's default) is the client its
    X-Forwarded-For names: anonymous access, allowed from loopback only, is refused to a remote
    client behind the proxy and kept for a loopback one."""
    discover = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": ENVELOPE}}
    routing = {"mcp-protocol-version": MODERN, "mcp-method": "server/discover"}
    status, _ = await post(http, router, discover, routing)
    assert status == 200
    status, body = await post(http, router, discover, {**routing, "X-Forwarded-For": "203.0.113.7"})
    assert status == 401, body
    status, _ = await post(http, router, discover, {**routing, "X-Forwarded-For": "203.0.113.7, 127.0.0.1"})
    assert status == 401
    forwarded = {**routing, "X-Forwarded-For": "::1", "X-Forwarded-Proto": "https"}
    status, _ = await post(http, router, discover, forwarded)
    assert status == 200


async def test_dns_rebinding_is_refused(http: aiohttp.ClientSession, router: RouterHandle) -> None:
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    status, _ = await post(http, router, ping, {"Host": "evil.example:80"})
    assert status == 421
    status, _ = await post(http, router, ping, {"Origin": "https://evil.example"})
    assert status == 403
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": ENVELOPE}}
    status, _ = await post(
        http,
        router,
        listing,
        {"Origin": "http://localhost:3000", "mcp-protocol-version": MODERN, "mcp-method": "tools/list"},
    )
    assert status == 200


async def raw_post(router: RouterHandle, body: bytes, header_lines: list[str]) -> tuple[int, Any]:
    """POST /mcp over a plain socket, header lines exactly as given (HTTP clients merge repeats)."""
    parts = urlsplit(router.base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = [
        "POST /mcp HTTP/1.1",
        f"Host: {parts.netloc}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    writer.write(("\r\n".join([*head, *header_lines]) + "\r\n\r\n").encode() + body)
    await writer.drain()
    response = await reader.read()
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


async def test_a_repeated_routing_header_is_refused_and_other_repeats_are_not(router: RouterHandle) -> None:
    """A 2026-07-28 request whose Mcp-Method comes twice is refused (-32020) naming it; a header of
    no concern to MCP may repeat."""
    discover = {"jsonrpc": "2.0", "id": 3, "method": "server/discover", "params": {"_meta": ENVELOPE}}
    body = json.dumps(discover).encode()
    base = [f"{name}: {value}" for name, value in JSON.items()]
    base += [f"MCP-Protocol-Version: {MODERN}", "Mcp-Method: server/discover"]
    status, reply = await raw_post(router, body, [*base, "mcp-method: server/discover"])
    assert status == 400 and reply["error"]["code"] == -32020
    assert "mcp-method header appears more than once" in reply["error"]["message"]
    status, reply = await raw_post(router, body, [*base, "X-Note: a", "X-Note: b"])
    assert status == 200 and reply["result"]["supportedVersions"] == [MODERN]


async def test_modern_era_status_codes(http: aiohttp.ClientSession, router: RouterHandle) -> None:
    def request(method: str, **params: Any) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": 9, "method": method, "params": {**params, "_meta": ENVELOPE}}

    routing = {"mcp-protocol-version": MODERN, "mcp-method": "server/discover"}
    status, body = await post(http, router, request("server/discover"), routing)
    assert status == 200
    assert body["result"]["supportedVersions"] == [MODERN] and body["result"]["resultType"] == "complete"
    assert "tools" in body["result"]["capabilities"]
    status, body = await post(
        http, router, request("server/discover"), {**routing, "mcp-method": "tools/list"}
    )
    assert status == 400 and body["error"]["code"] == -32020
    status, body = await post(http, router, request("no/such"), {**routing, "mcp-method": "no/such"})
    assert status == 404 and body["error"]["code"] == -32601
    call = request("tools/call", name="alpha__echo", arguments={"text": "x"})
    status, body = await post(
        http, router, call, {**routing, "mcp-method": "tools/call", "mcp-name": "alpha__echo"}
    )
    assert status == 200 and body["result"]["content"][0]["text"] == "alpha:x"
    assert body["result"]["resultType"] == "complete"
    status, body = await post(
        http, router, call, {**routing, "mcp-method": "tools/call", "mcp-name": "other"}
    )
    assert status == 400 and body["error"]["code"] == -32020
    listing = request("tools/list")
    status, body = await post(http, router, listing, {**routing, "mcp-method": "tools/list"})
    assert status == 200 and body["result"]["cacheScope"] == "public" and body["result"]["ttlMs"] >= 0
    async with http.get(
        router.mcp_url, headers={"Accept": "text/event-stream", "mcp-protocol-version": MODERN}
    ) as r:
        assert r.status == 405


async def test_at_the_session_limit_new_sessions_wait_and_live_ones_stay(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """`max_sessions` bounds the sessions; a new client at the limit gets 503 with Retry-After,
    never the eviction of another client's live session. An ended session makes room."""
    entry = {"alpha": sample_server_stdio_entry("alpha")}
    with run_router(tmp_path, entry, env={"TOOLMESH_MAX_SESSIONS": "2"}) as limited:
        first, second = await initialize(http, limited), await initialize(http, limited)
        request = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}
        async with http.post(limited.mcp_url, json=request, headers=JSON) as response:
            assert response.status == 503 and response.headers["retry-after"] == "5"
            error = (await response.json())["error"]
            assert "max_sessions = 2" in error["message"] and "DELETE" in error["message"]
        for session in (first, second):
            headers = {"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
            status, _ = await post(http, limited, {"jsonrpc": "2.0", "id": 2, "method": "ping"}, headers)
            assert status == 200, "a live session survives another client's initialize"
        async with http.delete(limited.mcp_url, headers={"mcp-session-id": first}) as response:
            assert response.status == 200
        assert await initialize(http, limited)


def test_malformed_catalog_is_rejected_naming_server_field_and_fix(tmp_path: Path) -> None:
    cases = {
        '{"mcpServers": {"web": {"url": "ftp://x"}}}': ("web", "url", "http"),
        '{"mcpServers": {"fs": {"command": "x", "url": "http://a/mcp"}}}': ("fs", "command", "not both"),
        '{"mcpServers": {"fs": {"command": "x", "timeout": -1}}}': ("fs", "timeout", "positive"),
        '{"servers": {}}': ("mcpServers", "", ""),
        '{"mcpServers": {': ("JSON", "", ""),
    }
    for text, expected in cases.items():
        path = tmp_path / "catalog.json"
        path.write_text(text)
        result = subprocess.run(
            [sys.executable, "-m", "router", "router", "--config", str(path)],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2, text
        for fragment in expected:
            assert fragment in result.stderr, (text, result.stderr)


@pytest.mark.parametrize(
    ("option", "value", "variable"),
    [("--port", "99999", "TOOLMESH_PORT"), ("--separator", "/", "TOOLMESH_SEPARATOR")],
)
def test_bad_setting_names_the_field(tmp_path: Path, option: str, value: str, variable: str) -> None:
    """A port out of range, or a separator no tool name may hold: refused, naming the setting and
    where the value came from (the option given, else the variable)."""
    path = write_catalog(tmp_path, {})
    result = subprocess.run(
        [sys.executable, "-m", "router", "router", "--config", str(path), option, value],
        check=False, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"(check {option})" in result.stderr, result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "router", "router", "--config", str(path)],
        check=False, capture_output=True, text=True, timeout=30, env={**os.environ, variable: value},
    )  # fmt: skip
    assert result.returncode == 2
    assert f"(check {variable} or" in result.stderr and option not in result.stderr, result.stderr
