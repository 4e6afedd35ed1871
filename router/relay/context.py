"""What a request carries through the relay besides its params: the CallContext.

Its own module because every layer that touches a request (the endpoints, the dispatcher, the
call relay, the era bridge, audit) reads it, and none of them should import another to get it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from router.eras import Era
from router.guard.agent import ANONYMOUS, Agent
from router.guard.views import OPEN, View
from router.observe.tracing import Trace
from router.upstream.balancer import Instance
from router.upstream.base import MessageHandler

Result = dict[str, Any] | bytes


@dataclass(slots=True)
class CallContext:
    """What a handler may know about the request beyond its params."""

    era: Era
    emit: MessageHandler | None = None
    client_capabilities: dict[str, Any] = field(default_factory=dict)
    log_level: str | None = None
    agent: Agent = ANONYMOUS
    view: View = OPEN  # what this agent may see and use (router/guard/views.py)
    trace: Trace | None = None
    session_id: str | None = None
    # Filled in by the handler for the audit record and metrics: what the request reached.
    server: str | None = None
    instance: str | None = None
    target: str | None = None
    affinity: dict[str, str] | None = None  # server -> instance this legacy session last used
    via: Literal["mcp", "http"] = "mcp"  # the endpoint: /mcp, or /v1/tools (plain HTTP)
    # Names this client request across a load balancer's retries (router/relay/attempts.py).
    attempt: str | None = None
    result_bytes: int = 0  # a tool result's size as measured by its output limit
    # That result (`result_sent`) and its JSON as measured: the reply sends these bytes when it
    # sends that same object, instead of encoding the result a second time.
    result_sent: Any = None
    result_json: bytes = b""
    upstream_time: tuple[float, float] | None = None  # perf_counter() around the upstream call
    # The tools mode the client asked for on the endpoint URL (`/mcp?tools=search`), if any.
    tools_mode: str | None = None
    cost: float = 0.0  # cost units of the call, from the catalog's `cost` (usage metering)
    denied: str | None = None  # why a policy condition refused the call (for the audit record)
    # The arguments the tool was called with when they are not the request's own (`call_tool` in
    # search mode wraps them): what the audit record and the usage record count.
    arguments: Any = None

    def attempting(self, instance: Instance) -> None:
        """The caller is trying `instance` (the last one tried is what the audit records)."""
        self.instance = instance.instance_id

    # A 2026-07-28 request's `Mcp-Param-*` headers, passed on to 2026-07-28 backends as-is.
    forward_headers: dict[str, str] | None = None
    # A legacy session's resource subscriptions (exposed URIs), edited by resources/subscribe.
    subscriptions: list[str] | None = None
    # A legacy session's own upstream sessions by backend ("server/instance" -> binding).
    upstream: dict[str, dict[str, Any]] | None = None
