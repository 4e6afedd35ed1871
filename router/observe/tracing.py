"""W3C trace context (`traceparent`): continue the client's trace, or start one, per request.

The router is one hop of the trace: each request gets its own span id, and the backend receives
a `traceparent` whose parent is that span, so an OpenTelemetry-instrumented backend joins the
client's trace. The ids also go into the audit record, which ties audit lines to traces.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class Trace:
    trace_id: str
    span_id: str
    parent_id: str | None
    flags: str

    def traceparent(self) -> str:
        """The header for the next hop: our span is its parent."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def start(header: str | None) -> Trace:
    """Continue a valid incoming `traceparent`, or start a new trace (sampled flag off)."""
    if header is not None:
        match = _TRACEPARENT.match(header.strip().lower())
        if match is not None:
            version, trace_id, parent_id, flags = match.groups()
            if version != "ff" and trace_id != _ZERO_TRACE and parent_id != _ZERO_SPAN:
                return Trace(trace_id, _span_id(), parent_id, flags)
    return Trace(f"{random.getrandbits(128) or 1:032x}", _span_id(), None, "00")


def _span_id() -> str:
    """Random, as W3C asks, but not secret: ids only need to be unique, so no system entropy
    is drawn per request."""
    return f"{random.getrandbits(64) or 1:016x}"
