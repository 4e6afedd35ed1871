"""Property-based: whatever a client sends and whatever a backend answers, the router replies
with the right JSON-RPC error or HTTP status, never a 500 or a traceback, within its timeouts,
and keeps serving other clients.

One router process (`toolmesh router`) with two backends: the sample server over stdio, and
`junk`, a small HTTP MCP server here whose `tools/call` answers the way the call's `mode`
argument asks: garbage bytes, half a body, an endless stream, a huge result, the wrong id, an
error status. Bounded (derandomized, about 400 requests in all) so CI stays cheap;
`bench/fuzz.py` runs the same properties for longer with fresh seeds. At the end the router must
hold no more sessions and connections than before the module (`tests/support/fuzzing.py`
`settle`) and have logged no traceback.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mcp.types import ListToolsResult

from tests.conftest import RouterHandle, run_router
from tests.servers.junk import MODES
from tests.support.fuzzing import (
    IDLE_ENV,
    IDLE_TIMEOUT,
    assert_no_traceback,
    baseline,
    check_answer,
    fuzz_settings,
    port_of,
    running_junk,
    settle,
)
from tests.support.mcp_http import envelope, modern_headers
from tests.support.procs import sample_server_stdio_entry

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
REQUEST_TIMEOUT = 2.0
ANSWER_WITHIN = REQUEST_TIMEOUT + 6.0  # the router's own timeout, and a busy machine's margin
FUZZ = fuzz_settings(60)

# -- the junk backend (tests/servers/junk.py, its own process) ------------------------------------


@pytest.fixture(scope="module")
def junk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_junk(tmp_path_factory.mktemp("junk")) as url:
        yield url


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory, junk: str) -> Iterator[RouterHandle]:
    tmp = tmp_path_factory.mktemp("fuzz")
    servers = {"alpha": sample_server_stdio_entry("alpha"), "junk": {"url": junk}}
    args = ("--max-body-bytes", "65536", "--request-timeout", str(REQUEST_TIMEOUT))
    # No breaker: it would answer "circuit open" for the junk server after a few bad answers,
    # and every bad answer is to be seen by the router here.
    env = {"TOOLMESH_BREAKER_FAILURES": "1000000", **IDLE_ENV}
    with run_router(tmp, servers, *args, env=env) as handle:
        _wait_for_tool(handle, "junk__junk")
        # The first call of a stdio tool in the 2026 era may start its upstream session (seconds):
        # made here, so the timing properties below measure the router, not that start.
        _echo(handle)
        before = baseline(handle)
        yield handle
        settle(handle, before, "test_fuzz_http", IDLE_TIMEOUT * 1.5 + 5)
    assert_no_traceback(handle)


# -- a client that sends what it is told --------------------------------------------------------


def _send(
    router: RouterHandle, path: str, body: bytes, headers: dict[str, str], method: str = "POST"
) -> tuple[int, dict[str, str], bytes, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port_of(router), timeout=ANSWER_WITHIN + 5)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            data,
            time.monotonic() - started,
        )
    finally:
        conn.close()


def _wait_for_tool(router: RouterHandle, name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": envelope()}}
        status, _, data, _ = _send(router, "/mcp", json.dumps(body).encode(), modern_headers("tools/list"))
        if status == 200 and name.encode() in data:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} never appeared")


def _echo(router: RouterHandle) -> tuple[int, bytes, float]:
    params = {"name": "alpha__echo", "arguments": {"text": "x"}, "_meta": envelope()}
    body = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params}).encode()
    status, _, data, took = _send(router, "/mcp", body, modern_headers("tools/call", "alpha__echo"))
    return status, data, took


def _header_safe(value: Any) -> str | None:
    """`value` if it can be sent as a header as it is (the client library refuses the rest)."""
    return value if isinstance(value, str) and all(" " <= c <= "~" for c in value) else None


_session: dict[str, Any] = {}


def _legacy_session(router: RouterHandle) -> str:
    """A session of this module's own; a new one once the last may be near its idle timeout."""
    if time.monotonic() - _session.get("used", 0.0) > IDLE_TIMEOUT / 2:
        params = {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "fuzz", "version": "0"},
        }
        body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}).encode()
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        status, got, _, _ = _send(router, "/mcp", body, headers)
        assert status == 200
        _session["id"] = got["mcp-session-id"]
    _session["used"] = time.monotonic()
    return str(_session["id"])


def _check(status: int, headers: dict[str, str], data: bytes, took: float, jsonrpc: bool = True) -> list[Any]:
    return check_answer(status, headers, data, took, ANSWER_WITHIN, jsonrpc=jsonrpc)


# -- strategies ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=25,
)
METHODS = [
    "tools/call", "tools/list", "prompts/list", "prompts/get", "resources/list", "resources/read",
    "resources/templates/list", "completion/complete", "logging/setLevel", "ping", "initialize",
    "server/discover", "resources/subscribe", "subscriptions/listen", "notifications/cancelled",
    "no/such", "", "rpc.discover",
]  # fmt: skip
ids = (
    st.none()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=20)
    | st.floats(allow_nan=False)
    | json_values
)
messages = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "2.0", "2.0", "1.0", 2])},
    optional={
        "id": ids,
        "method": st.sampled_from(METHODS) | st.text(max_size=15),
        "params": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.sampled_from(["alpha__echo", "junk__junk", "nope"]) | st.text(max_size=10),
                    "arguments": json_values,
                    "uri": st.text(max_size=20),
                    "cursor": st.text(max_size=20),
                    "_meta": json_values | st.just(envelope()),
                },
            ),
        ),
    },
)
bodies = st.one_of(
    messages.map(lambda m: json.dumps(m).encode()),
    st.lists(messages, max_size=3).map(lambda batch: json.dumps(batch).encode()),  # batches
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.integers(1, 70_000).map(lambda n: b'{"jsonrpc":"2.0","id":1,"method":"ping","x":"' + b"y" * n + b'"}'),
)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
headers = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(
            ["application/json", "text/plain", "application/json; charset=utf-8", ""]
        )
        | header_text,
        "accept": st.sampled_from(["application/json, text/event-stream", "application/json", "*/*", ""])
        | header_text,
        "mcp-session-id": header_text,
        "mcp-protocol-version": st.sampled_from([LEGACY, MODERN, "2024-11-05", "1999-01-01", ""])
        | header_text,
        "mcp-method": st.sampled_from(METHODS) | header_text,
        "mcp-name": header_text,
        "origin": st.sampled_from(["http://127.0.0.1", "https://evil.example", "null"]) | header_text,
        "host": st.sampled_from(["127.0.0.1", "evil.example", "localhost:1"]) | header_text,
        "last-event-id": header_text,
    },
)


# -- properties ---------------------------------------------------------------------------------


@FUZZ
@given(
    body=bodies,
    extra=headers,
    path=st.sampled_from(["/mcp", "/mcp", "/v1/tools/alpha__echo/call", "/v1/tools"]),
)
def test_any_request_gets_a_proper_answer(
    router: RouterHandle, body: bytes, extra: dict[str, str], path: str
) -> None:
    base = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    status, got, data, took = _send(router, path, body, {**base, **extra})
    _check(status, got, data, took, jsonrpc=path == "/mcp")


@FUZZ
@given(message=messages, era=st.sampled_from(["legacy", "modern"]))
def test_json_rpc_bodies_in_both_eras_get_errors_not_failures(
    router: RouterHandle, message: dict[str, Any], era: str
) -> None:
    if era == "legacy":
        headers = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-session-id": _legacy_session(router),
            "mcp-protocol-version": LEGACY,
        }
    else:
        method = message.get("method")
        params = message.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        headers = modern_headers(_header_safe(method) or "x", _header_safe(name))
    _check(*_send(router, "/mcp", json.dumps(message).encode(), headers))


@FUZZ
@given(mode=st.sampled_from(MODES), era=st.sampled_from(["legacy", "modern"]))
def test_a_backend_that_answers_badly_gets_the_client_an_error(
    router: RouterHandle, mode: str, era: str
) -> None:
    call = {"name": "junk__junk", "arguments": {"mode": mode}}
    if era == "legacy":
        headers = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-session-id": _legacy_session(router),
            "mcp-protocol-version": LEGACY,
        }
        params: dict[str, Any] = call
    else:
        headers = modern_headers("tools/call", "junk__junk")
        params = {**call, "_meta": envelope()}
    body = json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": params}).encode()
    status, got, data, took = _send(router, "/mcp", body, headers)
    replies = _check(status, got, data, took)
    final = [m for m in replies if m.get("id") == 5]
    assert len(final) == 1, (mode, status, data[:300])
    # A retry field that is no number is ignored (as SSE says); a log message too deep to pass on
    # is dropped, and the result still arrives.
    if mode in ("ok", "bad-retry", "deep-log"):
        assert "result" in final[0], (mode, final[0])
        assert final[0]["result"]["content"][0]["text"] == "fine"
    elif mode != "huge":  # a huge result is a result
        assert "error" in final[0] or final[0]["result"].get("isError"), (mode, final[0])


@pytest.mark.parametrize("mode", ["endless", "huge", "half", "garbage"])
def test_other_clients_are_served_while_backends_misbehave(router: RouterHandle, mode: str) -> None:
    """Endless streams, huge results and broken replies in flight do not hold up another
    client's call."""
    errors: list[BaseException] = []

    def bad(mode: str) -> None:
        try:
            headers = modern_headers("tools/call", "junk__junk")
            params = {"name": "junk__junk", "arguments": {"mode": mode}, "_meta": envelope()}
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}).encode()
            _check(*_send(router, "/mcp", body, headers))
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=bad, args=(mode,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    status, data, took = _echo(router)
    assert status == 200 and took < 1.5, (status, took, data[:200])
    for thread in threads:
        thread.join(ANSWER_WITHIN + 5)
    assert not errors, errors


def test_a_tool_whose_definition_has_odd_shapes_is_listed_searched_and_called(router: RouterHandle) -> None:
    # junk's `odd`: annotations a string, properties a list, a schema that refers to itself; and
    # a nameless tool and a number in its list
    _wait_for_tool(router, "junk__odd")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": envelope()}}
    status, _, data, _ = _send(router, "/mcp", json.dumps(body).encode(), modern_headers("tools/list"))
    assert status == 200, data[:300]
    # what a typed client does with the list: the SDK's model reads all of it, or none
    listed = ListToolsResult.model_validate(json.loads(data)["result"])
    junk_tools = {tool.name: tool for tool in listed.tools if tool.name.startswith("junk__")}
    assert set(junk_tools) == {"junk__junk", "junk__odd"}
    assert junk_tools["junk__odd"].annotations is None
    assert "properties" not in junk_tools["junk__odd"].input_schema
    # ... and the operator sees that junk's list needed repair: `odd` repaired, two left out
    with urllib.request.urlopen(f"{router.base_url}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert 'toolmesh_definition_repairs{list="tools",server="junk"} 3.0' in metrics or (
        'toolmesh_definition_repairs{server="junk",list="tools"} 3.0' in metrics
    ), [line for line in metrics.splitlines() if "repairs" in line]
    plain = {"accept": "application/json"}
    for path in ("/v1/tools", "/v1/tools?format=openai", "/v1/tools?format=anthropic", "/v1/openapi.json"):
        status, _, data, _ = _send(router, path, b"", plain, method="GET")
        assert status == 200 and b"odd" in data, (path, status, data[:300])
    status, _, data, _ = _send(router, "/v1/tools/search?q=odd+shapes+definition", b"", plain, method="GET")
    assert status == 200, data[:300]
    assert json.loads(data)["tools"][0]["name"] == "junk__odd"
    body = json.dumps({"mode": "ok"}).encode()
    status, _, data, _ = _send(router, "/v1/tools/junk__odd/call", body, {"content-type": "application/json"})
    assert status == 200 and json.loads(data)["content"][0]["text"] == "fine", data[:300]
