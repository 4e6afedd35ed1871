"""OpenTelemetry spans over OTLP, when `otel_endpoint` is set (the `otel` extra).

Imported only then (router/wiring.py): without it nothing of OpenTelemetry is loaded. The router
already continues the client's `traceparent` per request (router/observe/tracing.py) and sends
the backend a `traceparent` whose parent is the router's span id; the spans exported here carry
exactly those ids, so the client's, the router's and the backend's spans form one trace:

- `tools/call` (kind SERVER): the router's handling of the request, from admission to the reply;
  its span id is the router's, its parent the client's span (if the client sent one).
- `tools/call <tool>` (kind CLIENT): the upstream call, child of the SERVER span, covering the
  time the caller spent on it (balancing, retries and the backend).

Both are recorded after the reply has left, from times measured on the request path (two clock
reads), so exporting costs the request nothing. Attributes follow the RPC and HTTP semantic
conventions: `rpc.system` (`jsonrpc`), `rpc.method`, `rpc.jsonrpc.error_code`,
`http.request.method`, `url.path`, plus `mcp.method.name`, `gen_ai.tool.name`, `toolmesh.server`,
`toolmesh.instance`, `toolmesh.agent` and `toolmesh.outcome`. Spans go out in batches
(`BatchSpanProcessor`) to an OTLP/HTTP endpoint (`.../v1/traces`).
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from anyio.abc import TaskGroup
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from router.lifecycle import Service
from router.observe.tracing import Trace


class _GivenIds(IdGenerator):
    """Span ids the router already chose (and told the backend), not new random ones."""

    def __init__(self) -> None:
        self.next_span: int | None = None
        self.next_trace: int | None = None
        self.fallback = RandomIdGenerator()

    def generate_span_id(self) -> int:
        given, self.next_span = self.next_span, None
        return given if given is not None else self.fallback.generate_span_id()

    def generate_trace_id(self) -> int:
        given, self.next_trace = self.next_trace, None
        return given if given is not None else self.fallback.generate_trace_id()


class OtelSpans(Service):
    """A service only to flush on the way out: spans are batched by the SDK's own thread."""

    def __init__(self, endpoint: str, service_name: str = "toolmesh") -> None:
        self._ids = _GivenIds()
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}), id_generator=self._ids
        )
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        self.tracer = self.provider.get_tracer("toolmesh")

    def record(
        self,
        trace_ctx: Trace,
        *,
        method: str,
        path: str,
        seconds: float,
        upstream: tuple[float, float] | None,
        tool: str | None,
        server: str | None,
        instance: str | None,
        agent: str,
        outcome: str,
        error_code: int | None,
    ) -> None:
        """One finished request: `seconds` it took, `upstream` (start, end) in perf_counter time."""
        end_ns = time.time_ns()
        offset = time.perf_counter()
        # `seconds` ends when the reply was ready, not now (after it was written): the request
        # began at least that long ago, and no later than its upstream call began.
        start_ns = end_ns - int(seconds * 1e9)
        if upstream is not None:
            start_ns = min(start_ns, end_ns - int((offset - upstream[0]) * 1e9))
        trace_id = int(trace_ctx.trace_id, 16)
        flags = TraceFlags(TraceFlags.SAMPLED)
        parent = None
        if trace_ctx.parent_id is not None:
            remote = SpanContext(trace_id, int(trace_ctx.parent_id, 16), is_remote=True, trace_flags=flags)
            parent = trace.set_span_in_context(NonRecordingSpan(remote))
        else:  # no client span: the router's span is the root of the trace it started
            self._ids.next_trace = trace_id
        attributes: dict[str, Any] = {
            "rpc.system": "jsonrpc",
            "rpc.method": method,
            "mcp.method.name": method,
            "http.request.method": "POST",
            "url.path": path,
            "toolmesh.agent": agent,
            "toolmesh.outcome": outcome,
        }
        if tool:
            attributes["gen_ai.tool.name"] = tool
        if server:
            attributes["toolmesh.server"] = server
        if error_code is not None:
            attributes["rpc.jsonrpc.error_code"] = error_code
        self._ids.next_span = int(trace_ctx.span_id, 16)
        span = self.tracer.start_span(
            method, context=parent, kind=SpanKind.SERVER, attributes=attributes, start_time=start_ns
        )
        if error_code is not None:
            span.set_status(Status(StatusCode.ERROR, f"JSON-RPC error {error_code}"))
        if upstream is not None and server is not None:
            began, ended = upstream
            child = self.tracer.start_span(
                f"{method} {tool}" if tool else method,
                context=trace.set_span_in_context(span),
                kind=SpanKind.CLIENT,
                attributes={
                    "rpc.system": "jsonrpc",
                    "rpc.method": method,
                    "rpc.service": server,
                    "toolmesh.server": server,
                    **({"toolmesh.instance": instance} if instance else {}),
                    **({"gen_ai.tool.name": tool} if tool else {}),
                },
                start_time=end_ns - int((offset - began) * 1e9),
            )
            child.end(end_time=end_ns - int((offset - ended) * 1e9))
        span.end(end_time=end_ns)

    async def start(self, tg: TaskGroup) -> None:
        pass

    async def stop(self) -> None:
        await anyio.to_thread.run_sync(self.provider.shutdown)  # flushes what is batched
