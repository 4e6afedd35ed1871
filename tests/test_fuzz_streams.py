"""Property-based: resuming a stream with a forged, huge or garbage `Last-Event-ID`.

The event store (server/events.py) answers any id with the stream it names or "unknown", never an
exception, also when the id starts with one of the session's real stream ids; and a router asked
for a session's GET stream with any such id answers the stream (200, event stream), or a refusal
(4xx, a JSON-RPC error saying why), never a 5xx, within its timeouts. Bounded like the other
fuzz tests (`bench/fuzz.py` runs them longer)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.server.events import EventStore
from tests.conftest import RouterHandle, run_router
from tests.support.fuzzing import fuzz_settings
from tests.support.procs import sample_server_stdio_entry

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
    with run_router(tmp, {"alpha": sample_server_stdio_entry("alpha")}) as handle:
        yield handle
    log = handle.process.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]


def _port(router: RouterHandle) -> int:
    return int(router.base_url.rsplit(":", 1)[1])


def _initialize(router: RouterHandle) -> str:
    params = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}}
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", _port(router), timeout=30)
    try:
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        conn.request("POST", "/mcp", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        return str(response.getheader("mcp-session-id"))
    finally:
        conn.close()


_sessions: dict[str, str] = {}


@FUZZ
@given(
    last_event_id=_forged("AbCdEf12"),
    session=st.sampled_from(["own", "own", "forged", "none"]),
    version=st.sampled_from([LEGACY, LEGACY, "2026-07-28", "garbage"]),
)
def test_a_get_stream_with_any_last_event_id_is_answered_properly(
    router: RouterHandle, last_event_id: str, session: str, version: str
) -> None:
    if "id" not in _sessions:
        _sessions["id"] = _initialize(router)
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
    conn = http.client.HTTPConnection("127.0.0.1", _port(router), timeout=ANSWER_WITHIN + 5)
    try:
        conn.putrequest("GET", "/mcp", skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value.encode("latin-1"))
        conn.endheaders()
        response = conn.getresponse()
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
