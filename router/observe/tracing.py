"""W3C trace context (`traceparent`): continue the client's trace, or start one, per request.

The client's context comes from the `traceparent` HTTP header or, failing that, from the
request's `_meta.traceparent` (SEP-414).

The router is one hop of the trace: each request gets its own span id, and the backend receives
a `traceparent` whose parent is that span, so an OpenTelemetry-instrumented backend joins the
client's trace. The ids also go into the audit record, which ties audit lines to traces.
"""

from __future__ import annotations

import random
import re
from typing import Any, NamedTuple

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class Trace(NamedTuple):
    """A request's place in a W3C trace: the trace, our span, the caller's span, the flags (a
    named tuple: one is built per request)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    flags: str

    def traceparent(self) -> str:
        """The header for the next hop: our span is its parent."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def start(header: str | None) -> Trace:
    """Continue a valid incoming `traceparent`, or start a new trace (sampled flag off)."""
    parent = _parse(header)
    if parent is not None:
        return Trace(parent[0], _span_id(), parent[1], parent[2])
    return Trace(f"{random.getrandbits(128) or 1:032x}", _span_id(), None, "00")


def continue_from_meta(trace: Trace, meta: Any) -> Trace:
    """A trace the HTTP header did not continue joins the client's `_meta.traceparent` (SEP-414:
    the MCP carrier, the one a client sends when its transport sets no headers). A valid header
    wins: it names the nearer hop of the same trace. Malformed values are ignored."""
    if trace.parent_id is not None or not isinstance(meta, dict):
        return trace
    value = meta.get("traceparent")
    parent = _parse(value) if isinstance(value, str) else None
    return trace if parent is None else Trace(parent[0], trace.span_id, parent[1], parent[2])


def _parse(value: str | None) -> tuple[str, str, str] | None:
    """(trace id, parent span id, flags) of a valid `traceparent`, else None."""
    if value is None:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None:
        return None
    version, trace_id, parent_id, flags = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id, parent_id, flags


def _span_id() -> str:
    """Random, as W3C asks, but not secret: ids only need to be unique, so no system entropy
    is drawn per request."""
    return f"{random.getrandbits(64) or 1:016x}"
