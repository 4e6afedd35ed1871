"""Which tool calls a load balancer's retry may run: the attempt records.

A load balancer in front of the replicas (Envoy in `toolmesh up`, HAProxy in `compose/`) sends a
request again, to another replica, when the connection it wrote the request on breaks before a
response came back: the replica died. It cannot know whether the request reached that replica
and ran. The router can: before a tool call goes upstream, the replica records the call's
attempt key in the shared store (`CallRecords.begin`, an atomic create), and forgets it once the
call ended (`end`). A request whose key is already recorded is a second attempt of a call a
replica started and never finished: it is answered with `CallInterrupted` ("the replica handling
this call died while it ran") instead of running the tool twice. A request no replica saw finds
no record and simply runs. So the balancer may retry every request whose connection broke.

Only calls that must not run twice are recorded: reads, lists and tools the caller may repeat
(`Caller.may_repeat`: `"retry": "safe"`, or a trusted server's `readOnlyHint`/`idempotentHint`)
cost nothing and are simply run again. With one replica there is no store and nothing is
recorded; with the shared store unreachable a call runs unrecorded (as it did before).

The attempt key names one client request across the balancer's attempts: the balancer's
`X-Request-Id` (one per client request, the same on each retry), the legacy session id if any and
the JSON-RPC id if any. A request without `X-Request-Id` did not come through a balancer that
retries, so it is not recorded and costs nothing (a client that sends its own `X-Request-Id`
and reuses it with the same session and JSON-RPC id is refused, as the duplicate it is).
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import orjson

REQUEST_ID_HEADER = "x-request-id"


class CallRecords(Protocol):
    """Where attempt records live: the shared store (`router/cluster/attempts.py`)."""

    async def begin(self, key: str) -> bool:
        """Record a call about to go upstream; False if it is recorded already (a replica
        started it and did not finish)."""

    def end(self, key: str) -> None:
        """The call ended, one way or another: forget its record (in the background)."""


def attempt_key(session_id: str | None, request_id: str | None, message_id: Any) -> str | None:
    """The key naming one client request across a balancer's retries; None without the
    balancer's request id (no balancer that retries saw the request)."""
    if request_id is None:
        return None
    raw = orjson.dumps([session_id, request_id, message_id])
    return hashlib.blake2b(raw, digest_size=16).hexdigest()
