"""Hostile input a client or a backend can send on purpose, and what the router does with it:
a clear error for the sender, and nothing that harms another client (no breaker opened for
everyone, no memory kept without bound, no connection held forever).

Each test here was a reproduction of a defect first (docs/known-defects.md had the list).
"""

from __future__ import annotations

import json
import select
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RouterHandle, run_router
from tests.servers.junk import nested
from tests.support.fuzzing import port_of, rss_kib, running_junk
from tests.support.mcp_http import call_tool, envelope, modern_headers, tool_names
from tests.support.procs import sample_server_stdio_entry
from tests.support.waits import wait_until

LEGACY = "2025-11-25"
JSON = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
TOO_DEEP = 300  # past the router's cap (128) and past what orjson encodes (255)
DEEP_CALLS = 8  # more than the breaker's failures to open (5)
READ_TIMEOUT = 2.0  # the router's read_timeout here; its sweep adds up to 2 s


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterHandle]:
    tmp = tmp_path_factory.mktemp("hostile")
    with running_junk(tmp) as junk:
        servers = {"alpha": sample_server_stdio_entry("alpha"), "junk": {"url": junk}}
        with run_router(tmp, servers, env={"TOOLMESH_READ_TIMEOUT": str(READ_TIMEOUT)}) as handle:
            wait_until(
                lambda: {"alpha__echo", "junk__junk"} <= tool_names(handle.mcp_url), 30, "both servers listed"
            )
            yield handle


def send(
    url: str, body: bytes | None, headers: dict[str, str], method: str = "POST"
) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, body, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def reply_of(text: str) -> dict[str, Any]:
    """The JSON-RPC response in a JSON or SSE body."""
    if text.startswith(("event:", "data:", "id:")):
        text = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")][-1]
    reply: dict[str, Any] = json.loads(text)
    return reply


def legacy_session(router: RouterHandle, capabilities: Any = None) -> tuple[int, str, str | None]:
    params = {
        "protocolVersion": LEGACY,
        "capabilities": capabilities or {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}).encode()
    status, headers, text = send(router.mcp_url, body, JSON)
    return status, text, {k.lower(): v for k, v in headers.items()}.get("mcp-session-id")


def legacy_call(router: RouterHandle, session: str, name: str, arguments: Any) -> tuple[int, dict[str, Any]]:
    message = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }
    headers = {**JSON, "mcp-session-id": session, "mcp-protocol-version": LEGACY}
    status, _, text = send(router.mcp_url, json.dumps(message).encode(), headers)
    return status, reply_of(text)


# -- nesting ------------------------------------------------------------------------------------


def test_deep_arguments_are_refused_and_do_not_open_the_backends_breaker(router: RouterHandle) -> None:
    status, _, session = legacy_session(router)
    assert status == 200 and session
    for _ in range(DEEP_CALLS):
        status, reply = legacy_call(router, session, "alpha__echo", {"text": "x", "deep": nested(TOO_DEEP)})
        assert status == 400, reply
        assert reply["error"]["code"] == -32602
        assert "deeper than 128 levels" in reply["error"]["message"]
    # Nesting under the cap still passes, and the backend was never counted as failing.
    status, reply = legacy_call(router, session, "alpha__echo", {"text": "ok", "deep": nested(100)})
    assert status == 200 and reply["result"]["content"][0]["text"] == "alpha:ok", reply


def test_deep_arguments_are_refused_in_the_stateless_era_and_over_plain_http(router: RouterHandle) -> None:
    params = {
        "name": "alpha__echo",
        "arguments": {"text": "x", "deep": nested(TOO_DEEP)},
        "_meta": envelope(),
    }
    message = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params}
    status, _, text = send(
        router.mcp_url, json.dumps(message).encode(), modern_headers("tools/call", "alpha__echo")
    )
    assert status == 400 and reply_of(text)["error"]["code"] == -32602, text

    url = f"{router.base_url}/v1/tools/alpha__echo/call"
    body = json.dumps({"text": "x", "deep": nested(TOO_DEEP)}).encode()
    status, _, text = send(url, body, {"content-type": "application/json"})
    assert status == 400 and "deeper than 128 levels" in text, text


def test_an_initialize_with_deep_capabilities_is_refused(router: RouterHandle) -> None:
    status, text, session = legacy_session(router, {"experimental": {"x": nested(TOO_DEEP)}})
    assert status == 400 and session is None
    assert reply_of(text)["error"]["code"] == -32602, text


def test_a_backends_result_too_deep_to_encode_is_an_error_for_that_call_only(router: RouterHandle) -> None:
    for _ in range(DEEP_CALLS):
        reply = call_tool(router.mcp_url, "junk__junk", {"mode": "deep"})
        assert reply["error"]["code"] == -32603, reply
        assert "could not be encoded" in reply["error"]["message"]
    # The router's own encoding failure is not the backend failing: its breaker stays closed.
    reply = call_tool(router.mcp_url, "junk__junk", {"mode": "ok"})
    assert reply["result"]["content"][0]["text"] == "fine", reply
    # A log message too deep to pass on is dropped; the result it came before still arrives.
    reply = call_tool(router.mcp_url, "junk__junk", {"mode": "deep-log"})
    assert reply["result"]["content"][0]["text"] == "fine", reply


# -- what a session keeps -----------------------------------------------------------------------


def test_a_session_keeps_a_small_part_of_a_huge_initialize(router: RouterHandle) -> None:
    """clientInfo of megabytes (icons as data URIs, or junk) is not kept for the session's life."""
    before = rss_kib(router.process.pid)
    icon = "data:image/png;base64," + "A" * (3 * 1024 * 1024)
    info = {"name": "n" * 1000, "version": "1", "icons": [{"src": icon}], "junk": ["x" * 100] * 1000}
    for _ in range(30):  # before: ~3 MB each, kept: 90 MB more resident
        params = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": info}
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}).encode()
        status, _, text = send(router.mcp_url, body, JSON)
        assert status == 200, text
    grown_mib = (rss_kib(router.process.pid) - before) / 1024
    assert grown_mib < 40, f"the router grew {grown_mib:.0f} MiB for 30 sessions"


def test_capabilities_too_large_to_keep_are_refused_naming_the_limit(router: RouterHandle) -> None:
    status, text, session = legacy_session(router, {"experimental": {"blob": "x" * 100_000}})
    assert status == 400 and session is None
    error = reply_of(text)["error"]
    assert error["code"] == -32602 and "over the 8192 a session keeps" in error["message"], error
    status, text, session = legacy_session(router, {"roots": {"listChanged": True}, "sampling": {}})
    assert status == 200 and session, text


# -- requests that arrive slowly --------------------------------------------------------------


def _head(length: int) -> bytes:
    return (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Accept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n" % length
    )


def _read_until_closed(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """What the router sends until it closes the connection, and when it closed it."""
    started = time.monotonic()
    seen = b""
    sock.settimeout(within)
    while chunk := sock.recv(65536):
        seen += chunk
    return seen, time.monotonic() - started


def test_a_request_head_sent_a_byte_at_a_time_is_cut_off_with_408(router: RouterHandle) -> None:
    """Slowloris: a header line now and then used to hold the connection for ever."""
    with socket.create_connection(("127.0.0.1", port_of(router)), timeout=10) as sock:
        sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        for n in range(40):  # 20 s of trickle, unless the router answers first
            if select.select([sock], [], [], 0.5)[0]:
                break
            sock.sendall(b"X-Slow-%d: y\r\n" % n)
        seen, _ = _read_until_closed(sock, 10)
        took = time.monotonic() - started
    assert seen.startswith(b"HTTP/1.1 408 "), seen[:200]
    assert b"request head did not arrive in time" in seen
    assert took < READ_TIMEOUT + 4, took


def test_a_body_that_stops_arriving_is_cut_off_but_a_slow_steady_one_is_not(router: RouterHandle) -> None:
    with socket.create_connection(("127.0.0.1", port_of(router)), timeout=10) as sock:
        sock.sendall(_head(1000) + b'{"jsonrpc":')
        seen, took = _read_until_closed(sock, 10)
    assert took < READ_TIMEOUT + 4 and b"HTTP/1.1 200" not in seen, (took, seen[:200])

    params = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "slow " + "x" * 200}}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}).encode()
    with socket.create_connection(("127.0.0.1", port_of(router)), timeout=10) as sock:
        sock.sendall(_head(len(body)))
        for start in range(0, len(body), len(body) // 8 + 1):  # ~4 s in all, 0.5 s pauses
            time.sleep(0.5)
            sock.sendall(body[start : start + len(body) // 8 + 1])
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:300]


# -- arguments of the wrong shape ---------------------------------------------------------------


@pytest.mark.parametrize("arguments", [["text", "x"], "text=x", 5, True])
def test_tool_arguments_that_are_no_object_are_refused_in_both_eras(
    router: RouterHandle, arguments: Any
) -> None:
    status, _, session = legacy_session(router)
    assert session
    _, reply = legacy_call(router, session, "alpha__echo", arguments)  # a JSON-RPC error, in a 200
    assert reply["error"]["code"] == -32602, reply
    assert "`arguments` must be an object" in reply["error"]["message"]
    params = {"name": "alpha__echo", "arguments": arguments, "_meta": envelope()}
    message = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params}
    status, _, text = send(
        router.mcp_url, json.dumps(message).encode(), modern_headers("tools/call", "alpha__echo")
    )
    assert status == 400 and "`arguments` must be an object" in reply_of(text)["error"]["message"], text


def test_prompt_arguments_must_map_names_to_strings(router: RouterHandle) -> None:
    def get(arguments: Any) -> dict[str, Any]:
        params = {"name": "alpha__greet", "arguments": arguments, "_meta": envelope()}
        message = {"jsonrpc": "2.0", "id": 4, "method": "prompts/get", "params": params}
        _, _, text = send(
            router.mcp_url, json.dumps(message).encode(), modern_headers("prompts/get", "alpha__greet")
        )
        return reply_of(text)

    for bad in ({"who": {"nested": True}}, ["who"]):  # refused by the router, naming the rule
        error = get(bad)["error"]
        assert error["code"] == -32602 and "must map names to strings" in error["message"], error
    assert "result" in get({"who": "Ada"})


@pytest.mark.parametrize(
    ("meta", "complaint"),
    [
        ({"io.modelcontextprotocol/logLevel": "loud"}, "logLevel'] must be one of debug, info"),
        ({"io.modelcontextprotocol/logLevel": 3}, "logLevel'] must be one of debug, info"),
        (
            {"io.modelcontextprotocol/clientCapabilities": ["sampling"]},
            "clientCapabilities'] must be an object",
        ),
    ],
)
def test_a_2026_envelope_with_a_bad_log_level_or_capabilities_is_refused(
    router: RouterHandle, meta: dict[str, Any], complaint: str
) -> None:
    params = {"name": "alpha__echo", "arguments": {"text": "x"}, "_meta": {**envelope(), **meta}}
    message = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": params}
    status, _, text = send(
        router.mcp_url, json.dumps(message).encode(), modern_headers("tools/call", "alpha__echo")
    )
    error = reply_of(text)["error"]
    assert status == 400 and error["code"] == -32602 and complaint in error["message"], text


# -- HTTP/1.1 the router does not speak ---------------------------------------------------------


def _exchange(router: RouterHandle, raw: bytes) -> bytes:
    """Send `raw` on a new connection; everything the router answers until it closes."""
    with socket.create_connection(("127.0.0.1", port_of(router)), timeout=10) as sock:
        sock.sendall(raw)
        seen, _ = _read_until_closed(sock, 10)
    return seen


@pytest.mark.parametrize(
    "upgrade",
    [b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
     b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
     b"Sec-WebSocket-Version: 13\r\n"],
)  # fmt: skip
def test_an_upgrade_is_ignored_or_refused_with_a_reason(router: RouterHandle, upgrade: bytes) -> None:
    seen = _exchange(router, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + upgrade + b"\r\n")
    assert seen.startswith(b"HTTP/1.1 200 "), seen[:300]
    params = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}).encode()
    head = _head(len(body)).replace(b"Host: 127.0.0.1\r\n", b"Host: 127.0.0.1\r\n" + upgrade)
    seen = _exchange(router, head + body)  # the parser reads no body after an upgrade's head
    assert seen.startswith(b"HTTP/1.1 400 ") and b"cannot carry a body" in seen, seen[:300]


@pytest.mark.parametrize(
    "chunks", [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhello world\r\n0\r\n\r\n", b"-1\r\n\r\n"]
)
def test_a_malformed_chunked_body_gets_a_400_with_a_reason(router: RouterHandle, chunks: bytes) -> None:
    head = _head(0).replace(b"Content-Length: 0\r\n", b"Transfer-Encoding: chunked\r\n")
    seen = _exchange(router, head + chunks)
    assert seen.startswith(b"HTTP/1.1 400 ") and b"malformed HTTP/1.1" in seen, seen[:300]


# -- media types ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "accept", "status"),
    [
        ("Application/JSON; charset=UTF-8", "application/json, text/event-stream", 200),  # no case in types
        ("application/json", "Application/Json, Text/Event-Stream", 200),
        ("application/json", "application/*, text/*;q=0.5", 200),
        ("application/json", "*/*", 200),
        ("application/jsonx", "application/json, text/event-stream", 415),  # no prefix match
        ("application/json-seq", "application/json, text/event-stream", 415),
        ("application/json", "application/json, text/event-stream;q=0", 406),  # q=0 refuses
        ("application/json", "application/json;q=0, */*", 406),  # the most specific range decides
        ("application/json", "application/jsonx, text/event-stream", 406),
    ],
)
def test_media_types_are_compared_as_rfc_9110_says(
    router: RouterHandle, content_type: str, accept: str, status: int
) -> None:
    params = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}).encode()
    got, _, text = send(router.mcp_url, body, {"content-type": content_type, "accept": accept})
    assert got == status, text


# -- Host and friends -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "complaint"),
    [
        (b"GET /healthz HTTP/1.1\r\n\r\n", b"needs a Host header"),
        (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n", b"Host header appears more"),
        (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://127.0.0.1\r\n"
         b"Origin: http://evil.example\r\n\r\n", b"Origin header appears more"),
        (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer a\r\n"
         b"Authorization: Bearer b\r\n\r\n", b"Authorization header appears more"),
    ],
)  # fmt: skip
def test_a_missing_or_repeated_host_or_credential_is_a_400(
    router: RouterHandle, head: bytes, complaint: bytes
) -> None:
    seen = _exchange(router, head)
    assert seen.startswith(b"HTTP/1.1 400 ") and complaint in seen, seen[:300]


def test_other_repeated_headers_and_http_1_0_without_host_are_still_served(router: RouterHandle) -> None:
    seen = _exchange(router, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: a/b\r\nAccept: */*\r\n"
                     b"Connection: close\r\n\r\n")  # fmt: skip
    assert seen.startswith(b"HTTP/1.1 200 "), seen[:300]
    assert _exchange(router, b"GET /healthz HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 ")


def test_the_resource_metadata_echoes_only_a_host_the_router_takes(router: RouterHandle) -> None:
    url = f"{router.base_url}/.well-known/oauth-protected-resource"
    status, _, text = send(url, None, {"host": "evil.example"}, method="GET")
    assert status == 421 and "evil.example" not in text, text
    status, _, text = send(url, None, {}, method="GET")
    assert status == 200 and json.loads(text)["resource"] == f"{router.base_url}/mcp", text


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/.well-known/oauth-protected-resource"])
@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT"])
def test_read_only_endpoints_answer_other_methods_with_405(
    router: RouterHandle, path: str, method: str
) -> None:
    status, headers, text = send(
        f"{router.base_url}{path}", b"{}", {"content-type": "application/json"}, method
    )
    assert status == 405 and "GET and HEAD only" in text, (status, text)
    assert {k.lower(): v for k, v in headers.items()}["allow"] == "GET, HEAD"


# -- a flood of connections ---------------------------------------------------------------------

HEALTH = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _served(sock: socket.socket) -> bytes:
    """One keep-alive /healthz on `sock`: the response (the connection stays open)."""
    sock.sendall(HEALTH)
    seen = b""
    while b"\r\n\r\n" not in seen or not seen.endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        seen += chunk
    return seen


def _response(sock: socket.socket) -> bytes:
    """One whole response with a content-length on `sock` (the connection stays open)."""
    seen = b""
    while b"\r\n\r\n" not in seen:
        seen += sock.recv(65536)
    head, _, body = seen.partition(b"\r\n\r\n")
    length = int(
        next(
            v
            for k, _, v in (h.partition(b": ") for h in head.split(b"\r\n"))
            if k.lower() == b"content-length"
        )
    )
    while len(body) < length:
        body += sock.recv(65536)
    return body


def test_connections_past_max_connections_get_503_and_the_held_ones_are_served(tmp_path: Path) -> None:
    """Connections are bounded (`max_connections`): one accepted past the bound has its request
    answered 503 and is closed (one that sends nothing within a second is closed too), while those
    within it go on being served; once one closes, a new connection is served again, however many
    turned-away connections are still open. Each one turned away is counted in a metric."""
    limit = 3
    servers = {"alpha": sample_server_stdio_entry("alpha")}
    with run_router(tmp_path, servers, env={"TOOLMESH_MAX_CONNECTIONS": str(limit)}) as handle:
        address = ("127.0.0.1", port_of(handle))
        time.sleep(0.5)  # the readiness probes' connections are gone
        held = [socket.create_connection(address, timeout=10) for _ in range(limit)]
        try:
            for sock in held:
                assert _served(sock).startswith(b"HTTP/1.1 200 ")
            with socket.create_connection(address, timeout=10) as extra:
                extra.sendall(HEALTH)
                seen, _ = _read_until_closed(extra, 10)
            assert seen.startswith(b"HTTP/1.1 503 ") and b"max_connections" in seen, seen[:300]
            assert b"\r\nretry-after: 1\r\n" in seen.lower()
            with socket.create_connection(address, timeout=10) as extra:
                extra.sendall(HEALTH.replace(b"GET ", b"HEAD ", 1))
                seen, _ = _read_until_closed(extra, 10)
            assert seen.startswith(b"HTTP/1.1 503 ") and seen.endswith(b"\r\n\r\n"), seen  # no body
            for sock in held:
                assert _served(sock).startswith(b"HTTP/1.1 200 ")
            # connections turned away hold no place, and one that sends nothing is soon closed
            silent = [socket.create_connection(address, timeout=10) for _ in range(3)]
            opened = time.monotonic()
            try:
                # the last one's 503 says the router has accepted all three (in order), so
                # closing a held one now cannot let one of them in
                silent[-1].sendall(HEALTH)
                assert _read_until_closed(silent[-1], 10)[0].startswith(b"HTTP/1.1 503 ")
                # every connection turned away so far is counted: the two answered, the three silent
                held[0].sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert b"\ntoolmesh_connections_refused_total 5.0\n" in _response(held[0])
                held.pop().close()

                def a_new_one_is_served() -> bool:
                    with socket.create_connection(address, timeout=10) as sock:
                        return _served(sock).startswith(b"HTTP/1.1 200 ")

                wait_until(a_new_one_is_served, 10, "a connection served once one of the held ones closed")
                assert time.monotonic() - opened < 1.0  # while the turned-away ones were still open
                seen, _ = _read_until_closed(silent[0], 10)
                assert seen == b"" and time.monotonic() - opened < 4
            finally:
                for sock in silent:
                    sock.close()
        finally:
            for sock in held:
                sock.close()
