"""Property-based: `/mcp/{namespace}` with any name, in both eras (POST, GET and DELETE), the plain
HTTP surface `/v1/namespaces/{name}/tools`, and 2026-07-28 listen streams with hostile filters and
headers.

One router process with the sample server (alpha, over stdio) and the junk backend, under a
policy that declares six namespaces (`POLICY`). A request to `/mcp/{name}`, where the name is a
declared one, an undeclared one, or hostile (dots, %-encoding, very long, unicode, slashes,
raw bytes), in either era, with any common method, gets no 500 and no traceback, a JSON-RPC error
or an HTTP 4xx that says why, and no `tools/list` answer (nor search result) ever names a tool
outside the namespace the URL names; a call of a tool outside it is an error. A GET (the
session's stream) or DELETE there reaches only a session opened at that endpoint: another
endpoint's session, a forged or an ended one is not found (and a DELETE leaves it alive); its own
is streamed or ended, and ending it ends its stream. `/v1/namespaces/{name}/tools` (listing in
any format, search, calls) with any name, query, method, headers and body answers no 500, JSON
errors that say why, and nothing outside the namespace. A `subscriptions/listen` (the 2026-07-28
server-to-client stream, `server/listen.py`) with any filter, id and headers, at `/mcp` or a
namespace, is answered at once with a 200 event stream whose first event acknowledges it, or with
a 4xx JSON-RPC error. Listen and GET streams held at /mcp and in namespaces while hostile
requests run hear a tools list change (alpha grows a tool) exactly where their list changed. At the
end the router holds no more sessions and connections than before
the module (`tests/support/fuzzing.py` `settle`) and has logged no traceback. Bounded like the
other fuzz modules (`bench/fuzz.py` runs them longer).
"""

from __future__ import annotations

import contextlib
import fnmatch
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import Phase, event, example, given, settings
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
    raw_response,
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
JSON_AND_SSE = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def _open_session(router: RouterHandle, target: bytes) -> str | None:
    """A new legacy session opened at `target`; None where initialize is refused."""
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "f", "version": "0"}}}  # fmt: skip
    status, got, data, took = send_raw(
        port_of(router), "POST", target, JSON_AND_SSE, json.dumps(init).encode(), ANSWER_WITHIN + 5
    )
    check_answer(status, got, data, took, ANSWER_WITHIN)
    return got["mcp-session-id"] if status == 200 else None


def _legacy_session(router: RouterHandle, target: bytes) -> str | None:
    """A session opened at `target` (None where initialize is refused), shared by the examples;
    a new one once the last may be near its idle timeout."""
    known = _sessions.get(target)
    if known is not None and time.monotonic() - known[1] < IDLE_TIMEOUT / 2:
        _sessions[target] = (known[0], time.monotonic())
        return known[0]
    session_id = _open_session(router, target)
    if session_id is not None:
        _sessions[target] = (session_id, time.monotonic())
    return session_id


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
        headers = dict(JSON_AND_SSE)
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


# -- GET and DELETE at /mcp/{namespace} ----------------------------------------------------------------

SESSIONS = ["own", "own", "support's", "the root's", "forged", "ended", "none"]
FORGED = "AAAAAAAAAAAAAAAAAAAAAA.forgedforgedforged"


def _mostly(plain: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Two draws in three from `plain`, one from `hostile` (`st.one_of` draws from its first
    branches far less than evenly once their few values were tried)."""
    return st.integers(0, 2).flatmap(lambda i: plain if i else hostile)


stream_headers = _mostly(
    st.fixed_dictionaries({"accept": st.sampled_from(["text/event-stream", "*/*"])}),
    st.fixed_dictionaries(
        {"accept": st.sampled_from(["text/event-stream", "*/*", "application/json", ""]) | header_text},
        optional={
            "mcp-protocol-version": st.sampled_from([LEGACY, "2026-07-28", "2099-01-01", ""]) | header_text,
            "last-event-id": st.sampled_from(["0", "17", "x.1", FORGED + ".1", ""]) | header_text,
            "origin": st.sampled_from(["https://evil.example", "null", "http://127.0.0.1"]) | header_text,
        },
    ),
)
entered = _mostly(st.sampled_from(OPEN_TO_ALL), names)  # mostly the namespaces this agent may enter


def _plain(headers: dict[str, str]) -> bool:
    """Headers with which a session's own GET or DELETE must be served (nothing in them refused)."""
    accept = headers["accept"] in ("text/event-stream", "*/*")
    version = headers.get("mcp-protocol-version", LEGACY) == LEGACY
    last = headers.get("last-event-id", "0").isdigit() and headers.get("last-event-id", "0").isascii()
    origin = headers.get("origin", "http://127.0.0.1") == "http://127.0.0.1"
    return accept and version and last and origin


def _ping(router: RouterHandle, session_id: str, target: bytes) -> int:
    """The status of a ping on a session at the endpoint that opened it (404: it is gone)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 9, "method": "ping"}).encode()
    headers = {**JSON_AND_SSE, "mcp-session-id": session_id, "mcp-protocol-version": LEGACY}
    status, got, data, took = send_raw(port_of(router), "POST", target, headers, body, ANSWER_WITHIN + 5)
    check_answer(status, got, data, took, ANSWER_WITHIN)
    return status


def _ended(router: RouterHandle) -> str:
    """A session opened at /mcp/support and ended there."""
    session_id = _open_session(router, b"/mcp/support")
    assert session_id is not None
    headers = {"mcp-session-id": session_id, "mcp-protocol-version": LEGACY}
    status, _, data, _ = send_raw(port_of(router), "DELETE", b"/mcp/support", headers, b"", ANSWER_WITHIN + 5)
    assert status == 200, (status, data[:300])
    return session_id


@FUZZ
@given(
    raw=entered,
    encoding=st.sampled_from(["raw", "raw", "quote"]),
    query=st.sampled_from(QUERIES),
    method=st.sampled_from(["GET", "GET", "DELETE"]),
    session=st.sampled_from(SESSIONS),
    extra=stream_headers,
    streaming=st.booleans(),
)
def test_get_and_delete_at_a_namespace_reach_only_its_own_sessions(
    router: RouterHandle,
    raw: str,
    encoding: str,
    query: str,
    method: str,
    session: str,
    extra: dict[str, str],
    streaming: bool,
) -> None:
    """A GET (the session's stream) or DELETE (its end) at `/mcp/{name}` with the session opened
    there, another endpoint's, a forged or ended one, or none: no 500 and no traceback, within
    8 s; a name that is no namespace for this agent is a 4xx; only a session's own endpoint
    streams or ends it (another endpoint's session is not found, and lives on), and with plain
    headers it always does; an ended session's stream ends with it, and the session is gone."""
    target = _target(raw, encoding, query)
    named = _named(target)
    inside = named in OPEN_TO_ALL
    home = {"own": target, "support's": b"/mcp/support", "the root's": b"/mcp"}.get(session)
    session_id = {"forged": FORGED, "ended": None, "none": None}.get(session)
    if session == "ended":
        session_id = _ended(router)
    elif home is not None and (inside or session != "own"):
        session_id = _legacy_session(router, home)
    else:
        home = None
    own = home is not None and session_id is not None and _named(home) == named and inside
    headers = {**extra, **({"mcp-session-id": session_id} if session_id is not None else {})}
    stream = None
    if streaming and own and method == "DELETE":  # the session's stream is open while it ends
        plain = {"accept": "text/event-stream", "mcp-session-id": str(session_id)}
        stream = raw_response(port_of(router), "GET", target, plain, b"", ANSWER_WITHIN + 5)
    with contextlib.ExitStack() as held:
        opened = held.enter_context(stream) if stream is not None else None
        assert opened is None or opened.status == 200, opened.status
        started = time.monotonic()
        with raw_response(port_of(router), method, target, headers, b"", ANSWER_WITHIN + 5) as response:
            status, kind = response.status, response.getheader("content-type") or ""
            if status == 200 and method == "GET":  # the stream: its head is in, that will do
                assert kind.startswith("text/event-stream"), kind
                data = b""
            else:
                data = response.read()
        took = time.monotonic() - started
        event(f"{method} {status}{' (own session)' if own else ''}")
        assert b"Traceback" not in data and status != 500 and status < 600, (status, data[:300])
        assert took < ANSWER_WITHIN, f"answered after {took:.1f} s"
        if not inside:  # no namespace this agent may enter: refused, saying why
            assert 400 <= status < 500 and data.strip(), (status, data[:300])
        else:
            check_answer(status, {"content-type": kind}, data, took, ANSWER_WITHIN)
            assert status >= 400 or own, (session, named, status)  # never another endpoint's session
            assert status < 400 or data.strip(), f"a {status} without a body"
            if own and _plain(headers):
                assert status == 200, (status, data[:300])
        if opened is not None and status == 200:  # the session ended: so does its stream, at once
            started = time.monotonic()
            while opened.readline():
                assert time.monotonic() - started < ANSWER_WITHIN, "the stream outlived its session"
    if session_id is None or home is None or method != "DELETE":
        return
    if own and status == 200:  # ended: gone at its endpoint too
        _sessions.pop(home, None)
        assert _ping(router, session_id, home) == 404
    else:  # refused: the session lives on
        assert _ping(router, session_id, home) == 200


# -- /v1/namespaces/{name}/tools -----------------------------------------------------------------------

RESTS = [
    "tools", "tools", "tools", "tools/", "tools/search", "tools/search", "tools/search",
    "tools/alpha__echo/call", "tools/alpha__echo/call", "tools/junk__junk/call", "tools/junk__junk/call",
    "tools/alpha__add/call", "tools/call_tool/call", "tools/search_tools/call", "tools/nope/call",
    "tools//call", "tools/x/y", "toolsx", "", "tools/search/call",
]  # fmt: skip
numbers = st.sampled_from(["5", "1", "0", "-1", "51", "05", "%205", "5x", "", "²", "%C2%B2", "%B2", "%D9%A5"])
words = st.text(max_size=40).map(lambda text: quote(text, safe=""))  # any text, %-encoded
query_values = {
    "format": st.sampled_from(["mcp", "openai", "anthropic", "bogus", "", "%00"]),
    "tools": st.sampled_from(["search", "all", "auto", "bogus", ""]),
    "q": st.sampled_from(["echo", "add+two+numbers", "junk", "", "%20", "%FF", "ÿ"]) | words,
    "limit": numbers | st.integers(1, 6000).map(lambda n: "9" * n),
    "server": st.sampled_from(["alpha", "junk", "nosuch", ""]) | words,
    "x": words,
}
queries = _mostly(
    st.sampled_from(
        [
            "",
            "",
            "?q=echo",
            "?q=add+two+numbers&limit=3",
            "?q=junk&server=junk",
            "?tools=search",
            "?format=openai",
            "?format=anthropic",
            "?format=mcp&tools=all",
            "?q=echo&tools=search",
        ]
    ),
    st.lists(  # any of the parameters, with any values, repeated, in any order
        st.sampled_from(sorted(query_values)).flatmap(
            lambda key: query_values[key].map(lambda v: f"{key}={v}")
        ),
        max_size=4,
    ).map(lambda parts: "?" + "&".join(parts) if parts else ""),
)
surface_headers = _mostly(
    st.sampled_from([{}, {"content-type": "application/json"}, {"accept": "application/json"}]),
    st.fixed_dictionaries(
        {},
        optional={
            "content-type": st.sampled_from(["application/json", "text/plain", ""]) | header_text,
            "accept": st.sampled_from(["application/json", "text/event-stream", "*/*", ""]) | header_text,
            "origin": st.sampled_from(["https://evil.example", "null", "http://127.0.0.1"]) | header_text,
            "authorization": st.sampled_from(["Bearer x", "Basic eA==", ""]) | header_text,
            "x-request-id": header_text,
            "mcp-session-id": header_text,
        },
    ),
)
arguments = st.one_of(
    st.sampled_from(sorted(ARGUMENTS)).map(lambda tool: json.dumps(ARGUMENTS[tool]).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=40),
)


def _surface_named(target: bytes) -> str:
    """The namespace a `/v1/namespaces/...` target names: its first path segment once %-decoded."""
    path = unquote(target.partition(b"?")[0].decode("latin-1"))
    return path[len("/v1/namespaces/") :].partition("/")[0]


def _listed(item: dict[str, Any]) -> str:
    """A tool's name in any of the listing formats (MCP and Anthropic: `name`; OpenAI: `function`)."""
    return str(item["function"]["name"] if "function" in item else item["name"])


@FUZZ
# Found by this property: in search mode an OpenAI or Anthropic listing named the meta-tools with
# a digest (`call_tool_d1259669`) that no call answers to; and a `tools/search` limit of digits
# that `int()` refuses (`str.isdigit` is true for a superscript two, and for 5000 nines): a 500.
@example(raw="lookup", encoding="raw", rest="tools", query="?format=openai", method="GET", extra={}, body=b"")  # fmt: skip
@example(raw="support", encoding="raw", rest="tools/search", query="?q=echo&limit=%C2%B2", method="GET", extra={}, body=b"")  # fmt: skip
@example(raw="support", encoding="raw", rest="tools/search", query="?q=echo&limit=" + "9" * 5000, method="GET", extra={}, body=b"")  # fmt: skip
@given(
    raw=entered,
    encoding=st.sampled_from(["raw", "raw", "quote"]),
    rest=st.sampled_from(RESTS),
    query=queries,
    method=st.sampled_from(["right", "right", "right", "GET", "POST", "DELETE", "PUT"]),
    extra=surface_headers,
    body=st.none() | arguments,  # none: the arguments the tool in the path takes
)
def test_the_namespace_tools_surface_answers_any_request_and_shows_only_the_namespace(
    router: RouterHandle,
    raw: str,
    encoding: str,
    rest: str,
    query: str,
    method: str,
    extra: dict[str, str],
    body: bytes | None,
) -> None:
    """`/v1/namespaces/{name}/tools` (list, search, call) with any name, query, method, headers
    and body: no 500 and no traceback, within 8 s, every refusal JSON saying why; a name that is
    no namespace for this agent is never a 200; a listing or a search in a namespace names no
    tool outside it, and a call of one is refused (or an error result)."""
    if method == "right":
        method = "POST" if rest.endswith("/call") else "GET"
    if body is None:
        tool = rest.removeprefix("tools/").removesuffix("/call")
        body = json.dumps(ARGUMENTS.get(tool, {})).encode()
    path = quote(raw, safe="/%") if encoding == "quote" else raw
    target = b"/v1/namespaces/" + path.encode() + b"/" + rest.encode() + query.encode("utf-8")
    named = _surface_named(target)
    status, got, data, took = send_raw(port_of(router), method, target, extra, body, ANSWER_WITHIN + 5)
    event(
        f"{method} {rest.rsplit('/', 1)[-1] if rest.endswith(('call', 'search')) else 'list'} {status} {named in OPEN_TO_ALL} {rest}"
    )
    check_answer(status, got, data, took, ANSWER_WITHIN, jsonrpc=False)
    assert status < 400 or data.strip(), f"a {status} without a body"
    if status >= 400:
        return
    assert named in OPEN_TO_ALL, (named, status, data[:300])
    document = json.loads(data)
    allowed = _selection(named) | META_NAMES
    if isinstance(document.get("tools"), list):  # a listing (any format) or a search
        shown = {_listed(item) for item in document["tools"]}
        assert shown <= allowed, (named, sorted(shown - allowed))
        return
    called = unquote(target.partition(b"?")[0].decode("latin-1")).split("/")[-2]  # .../tools/{name}/call
    if called == "call_tool":
        inner = json.loads(body).get("name") if body.strip() else None
        if inner not in allowed - {"call_tool"}:
            assert document.get("isError") is True, (named, inner, document)
        return
    assert called in allowed, (named, called, document)


# -- fan-out events while hostile requests run ----------------------------------------------------------

# Where a stream listens, and whether alpha growing a tool changes the tool list seen there: at /mcp
# and in a namespace listing alpha's tools in full, yes; `lookup` lists in search mode (the
# meta-tools and its pinned tool: no change), the others do not select the new tool.
HEARS_GROWTH = {
    "": True, "/support": False, "/junk.desk": False, "/a-1_b": False, "/lookup": False,
    "/lookup?tools=all": True,
}  # fmt: skip
GROWTH_EXAMPLES = 20  # each example adds a tool to alpha for good: a bounded number, campaigns too
TOOLS_CHANGED = "notifications/tools/list_changed"
streams_held = st.lists(
    st.tuples(
        st.sampled_from(["listen", "listen", "get"]), st.sampled_from(sorted(HEARS_GROWTH)), st.booleans()
    ),
    min_size=1,
    max_size=4,
)
noise = st.lists(
    st.tuples(entered, st.sampled_from(["GET", "DELETE", "listen"]), stream_headers, listen_headers, filters),
    min_size=4,
    max_size=12,
)


def _hold(
    router: RouterHandle, kind: str, where: str, flag: bool
) -> tuple[http.client.HTTPResponse, socket.socket]:
    """An open stream, its first bytes read: a 2026-07-28 listen stream asking for tools changes
        (`flag`) or not, acknowledged; or a legacy session's GET stream, opened at `/mcp{where}`. And
    its socket, to wait on with a timeout."""
    conn = http.client.HTTPConnection("127.0.0.1", port_of(router), timeout=ANSWER_WITHIN + 5)
    if kind == "listen":
        params = {"notifications": {"toolsListChanged": flag}, "_meta": envelope()}
        body = {"jsonrpc": "2.0", "id": "held", "method": "subscriptions/listen", "params": params}
        conn.request("POST", f"/mcp{where}", json.dumps(body), modern_headers("subscriptions/listen"))
    else:
        session_id = _open_session(router, f"/mcp{where}".encode())
        assert session_id is not None
        headers = {
            "accept": "text/event-stream",
            "mcp-session-id": session_id,
            "mcp-protocol-version": LEGACY,
        }
        conn.request("GET", f"/mcp{where}", headers=headers)
    sock = conn.sock
    assert sock is not None
    response = conn.getresponse()
    response.close = _closing(response, conn)  # type: ignore[method-assign]
    assert response.status == 200, (kind, where, response.status, response.read()[:300])
    if kind == "listen":
        _next_event(response)  # the acknowledgement
    return response, sock


def _closing(response: http.client.HTTPResponse, conn: http.client.HTTPConnection) -> Any:
    """`response.close` that closes the connection's socket too (the client leaves the stream)."""
    close = response.close

    def both() -> None:
        close()
        conn.close()

    return both


def _next_event(response: http.client.HTTPResponse) -> dict[str, Any]:
    """The next event's message (a socket timeout if none comes in time)."""
    line = b""
    while not line.startswith(b"data:") or not line[5:].strip():
        line = response.readline()
        assert line, "the stream ended"
    message: dict[str, Any] = json.loads(line[5:])
    return message


def _grow(router: RouterHandle) -> str:
    """alpha grows a tool (called on a legacy session: alpha says so on the call's stream); its name."""
    session_id = _open_session(router, b"/mcp")
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "alpha__grow", "arguments": {}},
    }
    headers = {**JSON_AND_SSE, "mcp-session-id": str(session_id), "mcp-protocol-version": LEGACY}
    status, got, data, took = send_raw(
        port_of(router), "POST", b"/mcp", headers, json.dumps(call).encode(), 30
    )
    reply = [m for m in check_answer(status, got, data, took, ANSWER_WITHIN) if m.get("id") == 1]
    return str(reply[0]["result"]["content"][0]["text"])


def _make_noise(router: RouterHandle, requests: list[Any], errors: list[BaseException]) -> None:
    """Hostile GETs, DELETEs (forged sessions) and listen requests at any namespace name, each
    answered without a 500 or a traceback, within 8 s."""
    try:
        for raw, kind, stream_extra, listen_extra, notifications in requests:
            target = _target(raw, "raw", "")
            method, body, headers = kind, b"", {**stream_extra, "mcp-session-id": FORGED}
            if kind == "listen":
                params = {"notifications": notifications, "_meta": envelope()}
                message = {"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen", "params": params}
                method, body = "POST", json.dumps(message).encode()
                headers = {**modern_headers("subscriptions/listen"), **listen_extra}
            started = time.monotonic()
            with raw_response(port_of(router), method, target, headers, body, ANSWER_WITHIN + 5) as response:
                if response.status == 200 and (response.getheader("content-type") or "").startswith(
                    "text/event"
                ):
                    data = response.readline()  # the stream opened: its first line will do
                else:
                    data = response.read()
            assert response.status != 500 and b"Traceback" not in data, (response.status, data[:300])
            assert time.monotonic() - started < ANSWER_WITHIN
    except BaseException as exc:  # asserted by the test
        errors.append(exc)


@settings(
    fuzz_settings(6),
    max_examples=min(fuzz_settings(6).max_examples, GROWTH_EXAMPLES),
    # No shrinking: each example grows alpha for good, so a replay is never the same example.
    phases=[Phase.explicit, Phase.generate],
)
@given(held=streams_held, requests=noise)
def test_streams_hear_exactly_their_own_list_changes_while_hostile_requests_run(
    router: RouterHandle, held: list[tuple[str, str, bool]], requests: list[Any]
) -> None:
    """Listen streams (asking for tools changes or not) and legacy GET streams, at /mcp and in
    namespaces, are held open while another client sends hostile GETs, DELETEs and listen
    requests; alpha grows a tool (and says so). Every stream whose tool list changed, and that
    asked (a listen stream) hears `tools/list_changed` once, within 8 s; no other stream hears
    anything; the hostile requests get no 500 and no traceback."""
    held = [(kind, where.partition("?")[0] if kind == "get" else where, flag) for kind, where, flag in held]
    with contextlib.ExitStack() as stack:
        streams = []
        for kind, where, flag in held:
            response, sock = _hold(router, kind, where, flag)
            stack.callback(response.close)
            streams.append((response, sock, HEARS_GROWTH[where] and (flag or kind == "get")))
        errors: list[BaseException] = []
        hostile = threading.Thread(target=_make_noise, args=(router, requests, errors))
        hostile.start()
        grown = _grow(router)
        wait_until(
            lambda: f"alpha__{grown}" in tool_names(router.mcp_url), ANSWER_WITHIN, "the new tool listed"
        )
        started = time.monotonic()
        for response, sock, hears in streams:
            if hears:
                sock.settimeout(max(0.1, ANSWER_WITHIN - (time.monotonic() - started)))
                message = _next_event(response)
                assert message["method"] == TOOLS_CHANGED, message
        time.sleep(0.3)  # the same broadcast wrote to every stream: anything more is here by now
        for (response, sock, _), (kind, where, flag) in zip(streams, held, strict=True):
            sock.settimeout(0.05)
            with contextlib.suppress(TimeoutError):
                extra = _next_event(response)
                raise AssertionError(f"{kind} at /mcp{where} (asked: {flag}) heard {extra}")
        hostile.join(ANSWER_WITHIN * len(requests))
        assert not errors, errors
