"""The nesting cap's helpers without a router: what a client gets for a message the router cannot
encode, and how often the log hears about dropped ones."""

from __future__ import annotations

import logging

import anyio
import orjson
import pytest

from router import nesting
from router.nesting import MAX_NESTING, client_json, too_deep
from tests.servers.junk import nested

TOO_DEEP = 300  # past what orjson encodes (255)


def test_too_deep_measures_levels_not_brackets() -> None:
    flat = {"items": [[0]] * 500}  # many brackets, two levels
    assert not too_deep(orjson.dumps(flat), flat)
    at_cap, past_cap = nested(MAX_NESTING), nested(MAX_NESTING + 1)
    assert not too_deep(orjson.dumps(at_cap), at_cap)
    assert too_deep(orjson.dumps(past_cap), past_cap)


def test_a_reply_too_deep_becomes_an_error_with_its_id() -> None:
    data = client_json({"jsonrpc": "2.0", "id": 7, "result": {"content": nested(TOO_DEEP)}})
    assert data is not None
    reply = orjson.loads(data)
    assert reply["id"] == 7 and reply["error"]["code"] == -32603
    assert "could not be encoded" in reply["error"]["message"]


def test_dropped_notifications_are_counted_and_warned_of_once_a_minute(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend sending a deep notification with every progress tick gets one warning a minute
    (with how many were dropped), not one per message."""
    clock = [1000.0]
    monkeypatch.setattr(nesting, "_clock", lambda: clock[0])
    monkeypatch.setattr(nesting, "_warned_at", -float("inf"))
    monkeypatch.setattr(nesting, "_drops", 0)
    deep = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"x": nested(TOO_DEEP)}}
    caplog.set_level(logging.WARNING, logger="toolmesh.nesting")
    for _ in range(50):
        assert client_json(deep) is None
    warnings = [r for r in caplog.records if r.name == "toolmesh.nesting"]
    assert len(warnings) == 1 and warnings[0].__dict__["dropped"] == 1
    clock[0] += nesting.DROP_LOG_EVERY
    assert client_json(deep) is None
    warnings = [r for r in caplog.records if r.name == "toolmesh.nesting"]
    assert len(warnings) == 2 and warnings[1].__dict__["dropped"] == 50  # 49 held back, and this one


@pytest.mark.anyio
async def test_drops_held_back_reach_the_log_when_the_minute_is_over(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drops that stop after the first warning are not lost: their count is logged once the
    minute is over, without waiting for a later drop."""
    clock = [1000.0]
    monkeypatch.setattr(nesting, "_clock", lambda: clock[0])
    monkeypatch.setattr(nesting, "_warned_at", -float("inf"))
    monkeypatch.setattr(nesting, "_drops", 0)
    monkeypatch.setattr(nesting, "_flush", None)
    deep = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"x": nested(TOO_DEEP)}}
    caplog.set_level(logging.WARNING, logger="toolmesh.nesting")
    assert client_json(deep) is None  # warned at once
    clock[0] += nesting.DROP_LOG_EVERY - 0.05  # the minute is all but over
    for _ in range(3):
        assert client_json(deep) is None
    assert len([r for r in caplog.records if r.name == "toolmesh.nesting"]) == 1
    await anyio.sleep(0.3)  # the timer fires: no further drop needed
    warnings = [r for r in caplog.records if r.name == "toolmesh.nesting"]
    assert len(warnings) == 2 and warnings[1].__dict__["dropped"] == 3
