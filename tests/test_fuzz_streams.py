"""Property-based: resuming a stream with a forged, huge or garbage `Last-Event-ID`.

The event store (server/events.py) answers any id with the stream it names or "unknown", never an
exception, also when the id starts with one of the session's real stream ids; and a router asked
for a session's GET stream with any such id answers the stream (200, event stream), or a refusal
(4xx, a JSON-RPC error saying why), never a 5xx, within its timeouts. And a real polled stream
(the junk backend's `polled` mode closes the call's stream after two log messages; the rest of
the call waits in the router's event store) resumed with ids around its real ones gives back
exactly its events after the id, in order, and never to another session. Bounded like the other
fuzz tests (`bench/fuzz.py` runs them longer); at the end the router holds no more sessions and
connections than before (`tests/support/fuzzing.py` `settle`)."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.server.events import EventStore
from tests.conftest import RouterHandle, run_router
from tests.servers.junk import POLLED, log_event
from tests.support.fuzzing import (
    IDLE_ENV,
    IDLE_TIMEOUT,
    assert_no_traceback,
    baseline,
    fuzz_settings,
    port_of,
    running_junk,
    settle,
)
from tests.support.mcp_http import tool_names
from tests.support.procs import sample_server_stdio_entry
from tests.support.waits import wait_until

FUZZ = fuzz_settings(80)
ANSWER_WITHIN = 8.0
LEGACY = "2025-11-25"

latin1 = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40
)
numbers = st.integers(0, 2**70).map(str)
nines = st.integers(1, 6000).map(lambda n: "9" * n)
specials = st.sampled_from(
    ["", "-1", "+1", " 1", "1 ", "0x10", "1e3", "\u00b2", "\u00b9\u00b2", "1.2", "..", "."]
)
suffixes = st.integers(0, 3).flatmap(lambda i: (numbers, specials, latin1, nines)[i])


def _forged(real: str) -> st.SearchStrategy[str]:
    """Mostly ids that start with the session's real stream (the paths that parse a sequence)."""
    return st.integers(0, 9).flatmap(
        lambda i: (
            st.builds(lambda s: f"{real}.{s}", suffixes)
            if i < 5
            else (
                st.builds(lambda a, s: f"{a}.{real}.{s}", latin1, suffixes),  # as if another replica kept it
                numbers | nines,
                latin1,
                st.builds(lambda a, b, c: f"{a}.{b}.{c}", latin1, latin1, suffixes),
                st.integers(1, 20_000).map(lambda n: "a." * n),
            )[i - 5]
        )
    )


@FUZZ
@given(st.data())
def test_the_event_store_answers_any_id_with_a_stream_or_none(data: st.DataObject) -> None:
    store = EventStore(replica=data.draw(st.sampled_from(["", "r1"])))
    log = store.open("session-a")
    for n in range(3):
        store.append(log, b'{"n": %d}' % n)
    last_event_id = data.draw(_forged(log.stream_id))
    found = store.find("session-a", last_event_id)
    if found is not None:
        assert found[0] is log and found[1] >= 0
        log.after(found[1])  # what a resumption replays
    assert store.find("session-b", last_event_id) is None  # never another session's stream
    keeper = store.keeper(last_event_id)
    assert keeper is None or (isinstance(keeper, str) and keeper != store.replica)


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterHandle]:
    tmp: Path = tmp_path_factory.mktemp("fuzz-streams")
    with running_junk(tmp) as junk:
        servers = {"alpha": sample_server_stdio_entry("alpha"), "junk": {"url": junk}}
        with run_router(tmp, servers, env=IDLE_ENV) as handle:
            wait_until(lambda: "junk__junk" in tool_names(handle.mcp_url), 30, "the junk tool listed")
            before = baseline(handle)
            yield handle
            settle(handle, before, "test_fuzz_streams", IDLE_TIMEOUT * 1.5 + 5)
    assert_no_traceback(handle)


def _initialize(router: RouterHandle) -> str:
    params = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}}
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port_of(router), timeout=30)
    try:
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        conn.request("POST", "/mcp", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        return str(response.getheader("mcp-session-id"))
    finally:
        conn.close()


_sessions: dict[str, Any] = {}


@FUZZ
@given(
    last_event_id=_forged("AbCdEf12"),
    session=st.sampled_from(["own", "own", "forged", "none"]),
    version=st.sampled_from([LEGACY, LEGACY, "2026-07-28", "garbage"]),
)
def test_a_get_stream_with_any_last_event_id_is_answered_properly(
    router: RouterHandle, last_event_id: str, session: str, version: str
) -> None:
    if time.monotonic() - _sessions.get("used", 0.0) > IDLE_TIMEOUT / 2:  # may be near its end
        _sessions["id"] = _initialize(router)
    _sessions["used"] = time.monotonic()
    headers = {
        "accept": "text/event-stream",
        "mcp-protocol-version": version,
        "last-event-id": last_event_id,
    }
    if session == "own":
        headers["mcp-session-id"] = _sessions["id"]
    elif session == "forged":
        headers["mcp-session-id"] = _sessions["id"][:-3] + "xyz"
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port_of(router), timeout=ANSWER_WITHIN + 5)
    try:
        response = _get(conn, headers)
        took = time.monotonic() - started
        assert response.status < 500, (response.status, response.read()[:300])
        assert took < ANSWER_WITHIN, f"answered after {took:.1f} s"
        kind = response.getheader("content-type") or ""
        if response.status == 200:
            assert kind.startswith("text/event-stream"), kind  # a stream: open, closed by us
        elif kind.startswith("application/json"):
            document = json.loads(response.read())
            assert isinstance(document["error"]["code"], int) and document["error"]["message"], document
        else:
            assert response.status >= 400, response.status
    finally:
        conn.close()


def _get(conn: http.client.HTTPConnection, headers: dict[str, str]) -> http.client.HTTPResponse:
    """GET /mcp with exactly these headers (values sent as Latin-1 bytes, as a hostile client may)."""
    conn.putrequest("GET", "/mcp", skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value.encode("latin-1"))
    conn.endheaders()
    return conn.getresponse()


# -- a real polled stream, resumed ------------------------------------------------------------------

JSON_SSE = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
CALL_ID = 41


@dataclass
class Polled:
    """A session and the polled call it made: the router's stream id for it and its last sequence
    number (the response); `used` is when the session was last sent a request."""

    session: str
    stream: str
    last: int
    used: float

    def expected(self, after: int) -> list[tuple[str, Any]]:
        """(event id, message) of every event of the stream after sequence number `after`: the log
        messages numbered as the junk backend numbers them, then the response."""
        events: list[tuple[str, Any]] = [(f"{self.stream}.{n}", log_event(n)) for n in range(1, self.last)]
        events.append((f"{self.stream}.{self.last}", "response"))
        return events[after:]


_polled: dict[str, Polled] = {}


def _sse_events(body: bytes) -> list[tuple[str | None, str]]:
    """(id, data) of each event of an SSE body."""
    out: list[tuple[str | None, str]] = []
    for block in re.split(r"\r\n\r\n|\n\n|\r\r", body.decode()):
        lines = re.split(r"\r\n|\r|\n", block)
        ids = [line[3:].strip() for line in lines if line.startswith("id:")]
        data = "\n".join(line[5:].strip() for line in lines if line.startswith("data:"))
        if ids or data:
            out.append((ids[0] if ids else None, data))
    return out


def _polled_stream(router: RouterHandle, who: str) -> Polled:
    """A session with one polled call (made again once the session may be near its idle end)."""
    known = _polled.get(who)
    if known is not None and time.monotonic() - known.used < IDLE_TIMEOUT / 2:
        return known
    session = _initialize(router)
    before, after = (2, 3) if who == "a" else (1, 2)
    arguments = {"mode": POLLED, "before": before, "after": after}
    call = {"jsonrpc": "2.0", "id": CALL_ID, "method": "tools/call",
            "params": {"name": "junk__junk", "arguments": arguments}}  # fmt: skip
    used = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port_of(router), timeout=30)
    try:
        conn.request("POST", "/mcp", body=json.dumps(call), headers={**JSON_SSE, "mcp-session-id": session})
        response = conn.getresponse()
        events = _sse_events(response.read())
    finally:
        conn.close()
    # The stream closed after the priming event and the first `before` messages.
    assert response.status == 200 and len(events) == before + 1, events
    stream = str(events[0][0]).rpartition(".")[0]
    assert [event_id for event_id, _ in events] == [f"{stream}.{n}" for n in range(before + 1)], events
    assert [json.loads(data) for _, data in events[1:]] == [log_event(n) for n in range(1, before + 1)]
    known = _polled[who] = Polled(session, stream, before + after + 1, used)
    return known


def _around(stream: str, last: int) -> st.SearchStrategy[str]:
    """Event ids around a real stream's: its real ones, after its last, with leading zeros or a
    sign, a stream id one character off, as if kept by another replica, or with a part too many."""
    real = st.integers(0, last).map(str)
    seqs = st.one_of(
        real,
        st.integers(last + 1, last + 3).map(str),
        real.map(lambda n: "00" + n),
        st.sampled_from(["-1", "", " 1", "1 ", "+1", "\u00b2", "1.0", "9" * 18, "9" * 19]),
    )
    off = st.sampled_from([stream[:-1], stream + "0", stream.swapcase(), stream[1:], "x" + stream[1:]])
    return st.one_of(
        st.builds(lambda n: f"{stream}.{n}", real),
        st.builds(lambda n: f"{stream}.{n}", seqs),
        st.builds(lambda s, n: f"{s}.{n}", off, seqs),
        st.builds(lambda r, n: f"{r}.{stream}.{n}", st.sampled_from(["r1", "x", ""]), real),
        st.builds(lambda n: f"{stream}.{n}.1", real),
    )


@FUZZ
@given(data=st.data())
def test_a_polled_stream_resumes_with_its_own_events_after_any_id(
    router: RouterHandle, data: st.DataObject
) -> None:
    streams = {who: _polled_stream(router, who) for who in ("a", "b")}
    owner = data.draw(st.sampled_from(["a", "b"]), label="owner")
    requester = data.draw(st.sampled_from(["a", "a", "b", "forged", "none"]), label="requester")
    polled = streams[owner]
    last_event_id = data.draw(_around(polled.stream, polled.last), label="last_event_id")
    headers = {"accept": "text/event-stream", "mcp-protocol-version": LEGACY, "last-event-id": last_event_id}
    if requester in streams:
        headers["mcp-session-id"] = streams[requester].session
        streams[requester].used = time.monotonic()
    elif requester == "forged":
        headers["mcp-session-id"] = polled.session[:-3] + "xyz"
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port_of(router), timeout=ANSWER_WITHIN + 5)
    try:
        response = _get(conn, headers)
        body = response.read()
        took = time.monotonic() - started
    finally:
        conn.close()
    assert response.status < 500, (response.status, body[:300])
    assert took < ANSWER_WITHIN, f"answered after {took:.1f} s"
    stream, _, seq = last_event_id.rpartition(".")
    exact = re.fullmatch(r"0|[1-9][0-9]*", seq) is not None and int(seq) <= polled.last
    if requester == owner and stream == polled.stream and exact:
        assert response.status == 200, (response.status, body[:300])  # a real id of its own stream
    if response.status != 200:
        assert 400 <= response.status < 500, response.status
        error = json.loads(body)["error"]
        assert isinstance(error["code"], int) and error["message"], error
        return
    assert (response.getheader("content-type") or "").startswith("text/event-stream")
    # Only the requester's own stream, from a sequence number the id really gives.
    assert requester == owner and stream.strip() == polled.stream, (requester, owner, last_event_id)
    assert re.fullmatch(r"[0-9]+", seq.strip()), last_event_id
    got = [(event_id, json.loads(text)) for event_id, text in _sse_events(body) if text]
    want = polled.expected(int(seq.strip()))
    assert [event_id for event_id, _ in got] == [event_id for event_id, _ in want], (last_event_id, got)
    for (_, message), (_, expected) in zip(got, want, strict=True):
        if expected == "response":
            assert message["id"] == CALL_ID and message["result"]["content"][0]["text"] == "polled"
        else:
            assert message == expected, (message, expected)
