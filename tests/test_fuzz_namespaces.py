"""Property-based: `/mcp/{namespace}` with any name, in both eras, and 2026-07-28 listen streams
with hostile filters and headers.

One router process with the sample server (alpha, over stdio) and the junk backend, under a
policy that declares six namespaces (`POLICY`). A request to `/mcp/{name}`, where the name is a
declared one, an undeclared one, or hostile (dots, %-encoding, very long, unicode, slashes,
raw bytes), in either era, with any common method, gets no 500 and no traceback, a JSON-RPC error
or an HTTP 4xx that says why, and no `tools/list` answer (nor search result) ever names a tool
outside the namespace the URL names; a call of a tool outside it is an error. A
`subscriptions/listen` (the 2026-07-28 server-to-client stream, `server/listen.py`) with any
filter, id and headers, at `/mcp` or a namespace, is answered at once with a 200 event stream
whose first event acknowledges it, or with a 4xx JSON-RPC error. At the end the router holds no
more sessions and connections than before the module (`tests/support/fuzzing.py` `settle`) and
has logged no traceback. Bounded like the other fuzz modules (`bench/fuzz.py` runs them longer).
"""

from __future__ import annotations

import fnmatch
import http.client
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from router.relay.meta_tools import META_NAMES
from tests.conftest import RouterHandle, run_router
from tests.guard_support import write_policy
from tests.support.fuzzing import (
    IDLE_ENV,
    IDLE_TIMEOUT,
    assert_no_traceback,
    baseline,
    check_answer,
    fuzz_settings,
    port_of,
    running_junk,
    send_raw,
    settle,
)
from tests.support.mcp_http import envelope, modern_headers, tool_names
from tests.support.procs import sample_server_stdio_entry
from tests.support.waits import wait_until

FUZZ = fuzz_settings(60)
LEGACY = "2025-11-25"
ANSWER_WITHIN = 8.0
POLICY: dict[str, Any] = {
    "default": "allow",
    "namespaces": {
        "support": {"servers": ["alpha"], "tools": ["alpha__echo", "alpha__add"]},
        "junk.desk": {"servers": ["junk"]},
        "a-1_b": {"tools": ["*__echo"]},
        "nothing": {"tools": ["-"]},
        "lookup": {"servers": ["alpha"], "tools_mode": "search", "pinned": ["alpha__add"]},
        "closed": {"groups": ["nobody"]},  # the anonymous agent may not enter: as if undeclared
    },
}
OPEN_TO_ALL = sorted(set(POLICY["namespaces"]) - {"closed"})
_catalog: list[str] = []  # every tool at /mcp, read once the router is up


def _selection(name: str) -> set[str]:
    """The tools namespace `name` holds (none: not a namespace the anonymous agent may enter)."""
    spec = POLICY["namespaces"].get(name)
    if name not in OPEN_TO_ALL or spec is None:
        return set()

    def holds(tool: str) -> bool:
        server = tool.partition("__")[0]
        servers, tools = spec.get("servers", []), spec.get("tools", [])
        return (not servers or any(fnmatch.fnmatchcase(server, glob) for glob in servers)) and (
            not tools or any(fnmatch.fnmatchcase(tool, glob) for glob in tools)
        )

    return {tool for tool in _catalog if holds(tool)}


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterHandle]:
    tmp = tmp_path_factory.mktemp("fuzz-namespaces")
    write_policy(tmp / "policy.json", POLICY)
    env = {"TOOLMESH_POLICY_FILE": str(tmp / "policy.json"), **IDLE_ENV}
    with running_junk(tmp) as junk:
        servers = {"alpha": sample_server_stdio_entry("alpha"), "junk": {"url": junk}}
        with run_router(tmp, servers, env=env) as handle:
            wanted = {"alpha__echo", "junk__junk"}
            wait_until(lambda: tool_names(handle.mcp_url) >= wanted, 30, "alpha's and junk's tools listed")
            _catalog[:] = sorted(tool_names(handle.mcp_url))
            before = baseline(handle)
            yield handle
            settle(handle, before, "test_fuzz_namespaces", IDLE_TIMEOUT * 1.5 + 5)
    assert_no_traceback(handle)


# -- /mcp/{namespace} -------------------------------------------------------------------------------

unicode_names = st.text(st.characters(min_codepoint=0xA0, max_codepoint=0x2FFF), min_size=1, max_size=12)
names = st.one_of(
    st.sampled_from(sorted(POLICY["namespaces"])),  # declared (and one closed to this agent)
    st.sampled_from(sorted(POLICY["namespaces"])),
    st.sampled_from(["nosuch", "Support", "support2", "junk", "junk_desk", "a-1", "-", "_", "*"]),
    st.sampled_from([".", "..", "...", "support.", ".support", "junk..desk", "support/..", "./support"]),
    st.sampled_from(["support/", "support//", "/support", "support/x", "a/b/c", "/"]),
    st.sampled_from(["%73upport", "support%2F", "%2e%2e", "%2F", "%00", "%ff", "%25", "support%20", "%"]),
    st.sampled_from(["support%3Ftools=search", "sup%23port", "%E2%80%AE"]),
    st.builds(lambda n, c: c * n, st.integers(60, 20_000), st.sampled_from(["a", ".", "%41", "é"])),
    unicode_names,  # sent raw (UTF-8 bytes in the request line) or %-encoded, below
)
QUERIES = ["", "", "", "?tools=search", "?tools=all", "?tools=auto", "?tools=bogus", "?tools="]
CALLED = [
    "alpha__echo",
    "alpha__add",
    "junk__junk",
    "alpha__nope",
    "search_tools",
    "call_tool",
    "describe_tools",
]
ARGUMENTS: dict[str, dict[str, Any]] = {
    "alpha__echo": {"text": "x"},
    "alpha__add": {"a": 1, "b": 2},
    "junk__junk": {"mode": "ok"},
    "search_tools": {"query": "echo add junk anything"},
    "describe_tools": {"names": ["alpha__echo", "junk__junk"]},
}
METHODS = [
    "tools/list", "tools/list", "tools/call", "tools/call", "initialize", "ping", "prompts/list",
    "resources/list", "server/discover", "no/such",
]  # fmt: skip
requests = st.fixed_dictionaries(
    {
        "method": st.sampled_from(METHODS),
        "tool": st.sampled_from(CALLED),
        "inner": st.sampled_from(["alpha__echo", "alpha__add", "junk__junk", "call_tool", "nope"]),
        "cursor": st.none() | st.text(max_size=12),
        "id": st.integers(0, 2**40) | st.text(max_size=8),
    }
)


def _target(raw: str, encoding: str, query: str) -> bytes:
    """`/mcp/{raw}` with `raw` as UTF-8 bytes, or %-encoded (slashes and escapes kept)."""
    path = quote(raw, safe="/%") if encoding == "quote" else raw
    return b"/mcp/" + path.encode() + query.encode()


def _named(target: bytes) -> str:
    """The namespace a request target names: its path's last segment, %-decoded (UTF-8), trailing
    slashes ignored; a path with a slash inside the name names none."""
    path = target.partition(b"?")[0].decode("latin-1")
    name = unquote(path[len("/mcp/") :]).rstrip("/")
    return "" if "/" in name else name


_sessions: dict[bytes, tuple[str, float]] = {}


def _legacy_session(router: RouterHandle, target: bytes) -> str | None:
    """A session opened at `target` (None where initialize is refused); a new one once the last
    may be near its idle timeout."""
    known = _sessions.get(target)
    if known is not None and time.monotonic() - known[1] < IDLE_TIMEOUT / 2:
        _sessions[target] = (known[0], time.monotonic())
        return known[0]
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "f", "version": "0"}}}  # fmt: skip
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    status, got, data, took = send_raw(
        port_of(router), "POST", target, headers, json.dumps(init).encode(), ANSWER_WITHIN + 5
    )
    check_answer(status, got, data, took, ANSWER_WITHIN)
    if status != 200:
        return None
    _sessions[target] = (got["mcp-session-id"], time.monotonic())
    return got["mcp-session-id"]


def _body(request: dict[str, Any], modern: bool) -> tuple[dict[str, Any], str | None]:
    """The JSON-RPC request and the name it bears (for Mcp-Name)."""
    method, tool = request["method"], request["tool"]
    params: dict[str, Any] = {}
    name = None
    if method == "tools/call":
        arguments = ARGUMENTS.get(tool, {})
        if tool == "call_tool":
            arguments = {"name": request["inner"], "arguments": ARGUMENTS.get(request["inner"], {})}
        params, name = {"name": tool, "arguments": arguments}, tool
    elif method == "tools/list" and request["cursor"] is not None:
        params = {"cursor": request["cursor"]}
    elif method == "initialize":
        params = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "f", "version": "0"}}
    if modern:
        params["_meta"] = envelope()
    return {"jsonrpc": "2.0", "id": request["id"], "method": method, "params": params}, name


def _check_view(named: str, request: dict[str, Any], messages: list[Any]) -> None:
    """Nothing outside the namespace: listed, found by search, or called."""
    allowed = _selection(named) | META_NAMES
    for message in messages:
        result = message.get("result")
        if not isinstance(result, dict):
            continue
        if isinstance(result.get("tools"), list):  # a tools/list page
            listed = {tool["name"] for tool in result["tools"]}
            assert listed <= allowed, (named, sorted(listed - allowed))
        if request["method"] != "tools/call" or message.get("id") != request["id"]:
            continue
        called = request["inner"] if request["tool"] == "call_tool" else request["tool"]
        if called not in allowed - {"call_tool"}:
            assert result.get("isError") is True, (named, called, result)
        found = (result.get("structuredContent") or {}).get("tools")
        if request["tool"] == "search_tools" and isinstance(found, list):
            assert {tool["name"] for tool in found} <= allowed, (named, found)


@FUZZ
@given(
    raw=names,
    encoding=st.sampled_from(["raw", "raw", "quote"]),
    query=st.sampled_from(QUERIES),
    era=st.sampled_from(["legacy", "modern"]),
    session=st.sampled_from(["own", "own", "support's", "forged"]),
    request=requests,
)
def test_any_namespace_path_is_answered_and_never_shows_what_is_outside(
    router: RouterHandle,
    raw: str,
    encoding: str,
    query: str,
    era: str,
    session: str,
    request: dict[str, Any],
) -> None:
    target = _target(raw, encoding, query)
    named = _named(target)
    inside = named in OPEN_TO_ALL
    modern = era == "modern"
    body, name = _body(request, modern)
    if modern:
        headers = modern_headers(request["method"], name)
    else:
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        if request["method"] != "initialize":
            own = None
            if session == "own" and inside:
                own = _legacy_session(router, target)
            elif session == "support's":
                own = _legacy_session(router, b"/mcp/support")
            headers["mcp-session-id"] = own or "AAAAAAAAAAAAAAAAAAAAAA.forgedforgedforged"
            headers["mcp-protocol-version"] = LEGACY
    status, got, data, took = send_raw(
        port_of(router), "POST", target, headers, json.dumps(body).encode(), ANSWER_WITHIN + 5
    )
    if not inside:  # no namespace this agent may enter: refused (404), saying why, and nothing else
        assert 400 <= status < 500 and data.strip(), (status, data[:300])
        assert b"Traceback" not in data and took < ANSWER_WITHIN, (data[:300], took)
        return
    if status >= 400:
        assert data.strip(), f"a {status} without a body"
    _check_view(named, request, check_answer(status, got, data, took, ANSWER_WITHIN))


# -- 2026-07-28 listen streams -----------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
uris = st.one_of(
    st.sampled_from(["toolmesh://alpha/mem://alpha/hello", "toolmesh://junk/x", "toolmesh://nosuch/x", ""]),
    st.text(max_size=30),
    st.integers(1, 50_000).map(lambda n: "toolmesh://alpha/" + "x" * n),
    json_values,
)
filters = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "toolsListChanged": st.booleans() | json_values,
            "promptsListChanged": st.booleans() | json_values,
            "resourcesListChanged": st.booleans() | json_values,
            "resourceSubscriptions": st.lists(uris, max_size=5) | json_values,
        },
    ),
    json_values,  # not an object at all
)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
listen_headers = st.fixed_dictionaries(
    {},
    optional={
        "mcp-method": st.sampled_from(["subscriptions/listen", "tools/list", ""]) | header_text,
        "mcp-protocol-version": st.sampled_from(["2026-07-28", LEGACY, "2099-01-01", ""]) | header_text,
        "mcp-name": header_text,
        "accept": st.sampled_from(["application/json", "text/event-stream", "*/*", ""]) | header_text,
        "content-type": st.sampled_from(["text/plain", ""]) | header_text,
        "mcp-session-id": header_text,
        "last-event-id": header_text,
        "origin": st.sampled_from(["https://evil.example", "null"]) | header_text,
    },
)


@FUZZ
# Found by this property: a filter that is no object (`true`, `"x"`, a list) made the policy's
# check of a listen request raise (a 500), at /mcp under a policy and in any namespace.
@example(where="", request_id=0, notifications=True, meta="envelope", extra={})
@example(where="/support", request_id="l", notifications=["toolmesh://junk/x"], meta="envelope", extra={})
@given(
    where=st.sampled_from(["", "", "/support", "/junk.desk", "/lookup", "/nosuch"]),
    request_id=st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10) | json_values,
    notifications=filters,
    meta=st.sampled_from(["envelope", "envelope", "envelope", "missing", "other"]),
    extra=listen_headers,
)
def test_a_listen_stream_with_any_filter_or_headers_opens_at_once_or_is_refused(
    router: RouterHandle,
    where: str,
    request_id: Any,
    notifications: Any,
    meta: str,
    extra: dict[str, str],
) -> None:
    params: dict[str, Any] = {"notifications": notifications}
    if meta == "envelope":
        params["_meta"] = envelope()
    elif meta == "other":
        params["_meta"] = {**envelope(), "io.modelcontextprotocol/protocolVersion": LEGACY}
    body = {"jsonrpc": "2.0", "id": request_id, "method": "subscriptions/listen", "params": params}
    headers = {**modern_headers("subscriptions/listen"), **extra}
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port_of(router), timeout=ANSWER_WITHIN + 5)
    try:
        conn.request("POST", f"/mcp{where}", body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        head_after = time.monotonic() - started
        kind = response.getheader("content-type") or ""
        assert response.status != 500 and response.status < 600, (response.status, response.read()[:300])
        assert head_after < ANSWER_WITHIN, f"the head came after {head_after:.1f} s"
        if response.status == 200 and kind.startswith("text/event-stream"):
            # The stream is open: its first event, at once, acknowledges what it will carry.
            line = b""
            while not line.startswith(b"data:"):
                line = response.readline()
                assert line, "the listen stream ended before its acknowledgement"
            took = time.monotonic() - started
            assert took < ANSWER_WITHIN, f"acknowledged after {took:.1f} s"
            ack = json.loads(line[5:])
            assert ack["method"] == "notifications/subscriptions/acknowledged", ack
            assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == request_id, ack
            assert isinstance(ack["params"]["notifications"], dict), ack
            return
        data = response.read()
        took = time.monotonic() - started
    finally:
        conn.close()
    if response.status >= 400:
        assert data.strip(), f"a {response.status} without a body"
    got = {"content-type": kind}
    messages = check_answer(response.status, got, data, took, ANSWER_WITHIN, jsonrpc=where != "/nosuch")
    assert response.status in (200, 202) or response.status >= 400, response.status
    if response.status == 200:  # a JSON reply to a listen request can only be its refusal
        assert all("error" in message for message in messages), messages
