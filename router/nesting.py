"""How deep JSON may nest: one cap for what a client sends, so the router can always encode it.

orjson parses up to 1024 levels but encodes only up to 255. Without a cap, a client could send
arguments nested 300 deep: parsed fine, then the router failed to re-encode them for the
backend, answered a plain 500 and counted it against the backend's breaker, so a handful of
such calls opened the circuit for every agent. The cap is checked where a body is parsed
(`too_deep`), and an encoding failure after that (a backend's own reply nested past 255) is
reported as what it is (`Unencodable`), never as the backend being down.

128 is serde_json's default, so Rust backends and gateways refuse deeper JSON anyway, and it
leaves the router room below 255 to wrap a message (a parked call, a relayed request).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, Final

import orjson

from router.errors import INTERNAL_ERROR, INVALID_PARAMS, RPCError

MAX_NESTING: Final = 128

log = logging.getLogger("toolmesh.nesting")

DROP_LOG_EVERY: Final = 60.0
"""Seconds between warnings about dropped messages: a backend that sends a deep notification
with every progress tick must not turn the log into its echo. The first drop is logged at once;
the ones after it are counted, and the count reaches the log when the minute is over (on the
event loop's timer; outside a loop, with the first drop a minute or more later)."""
_clock = time.monotonic  # the warnings' clock (a test moves its own)
_drops = 0  # messages dropped since the last warning
_warned_at = -math.inf
_flush: asyncio.TimerHandle | None = None  # the pending count's warning, when the minute is over


class Unencodable(RPCError):
    """A message the router could not encode (nested past orjson's 255 levels). Not a backend
    failure: the breaker does not count it, and the call is not retried elsewhere."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(INTERNAL_ERROR, f"{what} could not be encoded as JSON: {reason}")


def to_json(message: Any, what: str = "the request") -> bytes:
    """`message` as JSON, or Unencodable naming `what` (for a request to a backend: it never
    left the router)."""
    try:
        return orjson.dumps(message)
    except orjson.JSONEncodeError as exc:
        raise Unencodable(what, str(exc)) from None


def too_deep(body: bytes, value: Any, limit: int = MAX_NESTING) -> bool:
    """Does `value` (parsed from `body`) nest deeper than `limit` objects and arrays?

    A body with no more brackets than the limit cannot (the common case, two C-speed counts);
    only a bigger one is walked, level by level, and the walk stops at the first level past
    the limit."""
    if body.count(b"{") + body.count(b"[") <= limit:
        return False
    level = [value] if isinstance(value, (dict, list)) else []
    for _ in range(limit):
        deeper: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            deeper.extend(child for child in children if isinstance(child, (dict, list)))
        if not deeper:
            return False
        level = deeper
    return True


def nesting_error(what: str = "the message") -> RPCError:
    """The client's error for JSON deeper than the cap, naming the cap and what to do."""
    return RPCError(
        INVALID_PARAMS,
        f"Invalid params: {what} nests deeper than {MAX_NESTING} levels of objects and arrays; "
        "send flatter JSON",
        {"maxNesting": MAX_NESTING},
    )


def client_json(message: dict[str, Any]) -> bytes | None:
    """`message` as JSON for a client. A backend's reply nested past what orjson encodes
    becomes an error reply with the same id; any other message that cannot be encoded (a
    notification) is dropped (None): the stream it was on goes on."""
    try:
        return orjson.dumps(message)
    except orjson.JSONEncodeError as exc:
        if "id" not in message or "method" in message:
            _dropped(message.get("method"), str(exc))
            return None
        error = Unencodable("the reply", str(exc)).to_error()
        return orjson.dumps({"jsonrpc": "2.0", "id": message["id"], "error": error})


def _dropped(method: Any, reason: str) -> None:
    """Count a dropped message; warn at most once per DROP_LOG_EVERY, with how many since."""
    global _drops, _flush  # noqa: PLW0603 - one counter per process, like a metric
    _drops += 1
    now = _clock()
    if now - _warned_at >= DROP_LOG_EVERY:
        _warn(method, reason, now)
        return
    if _flush is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the count waits for the next drop
            return
        _flush = loop.call_later(_warned_at + DROP_LOG_EVERY - now, _flush_count, method, reason)


def _warn(method: Any, reason: str, now: float) -> None:
    global _drops, _warned_at, _flush  # noqa: PLW0603
    log.warning(
        "dropped messages a client could not be sent",
        extra={"method": method, "reason": reason, "dropped": _drops},
    )
    _drops, _warned_at = 0, now
    if _flush is not None:
        _flush.cancel()
        _flush = None


def _flush_count(method: Any, reason: str) -> None:
    """The minute is over: the drops counted since the last warning reach the log."""
    global _flush  # noqa: PLW0603
    _flush = None
    if _drops:
        _warn(method, reason, _clock())
