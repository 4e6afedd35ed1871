"""OpenTelemetry: with `otel_endpoint` set, a tool call becomes a SERVER span (the router's, in
the client's trace, under the client's span) and a CLIENT span for the upstream call, exported
over OTLP/HTTP to a real HTTP endpoint; without it, nothing of OpenTelemetry is imported."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import anyio
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from router.up.processes import free_port
from tests.conftest import run_router
from tests.support.mcpcall import call_tool
from tests.support.procs import sample_server_http

pytestmark = pytest.mark.anyio

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


async def test_a_call_is_exported_as_a_server_span_and_an_upstream_client_span(tmp_path: Path) -> None:
    spans: list[Span] = []

    async def collect(request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                spans.extend(scope.spans)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    env = {"TOOLMESH_OTEL_ENDPOINT": f"http://127.0.0.1:{port}/v1/traces", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    try:
        with (
            sample_server_http("svc", log_dir=tmp_path) as (url, _),
            run_router(tmp_path, {"svc": {"url": url}}, env=env) as router,
        ):
            async with aiohttp.ClientSession() as http:
                headers = {"traceparent": f"00-{TRACE}-{PARENT}-01"}
                reply = await call_tool(http, router.mcp_url, "svc__echo", {"text": "hi"}, headers=headers)
                assert reply["result"]["content"][0]["text"] == "svc:hi"
                deadline = time.monotonic() + 10
                while len(spans) < 2 and time.monotonic() < deadline:
                    await anyio.sleep(0.1)
    finally:
        await runner.cleanup()
    by_kind = {span.kind: span for span in spans}
    server, client = by_kind[Span.SPAN_KIND_SERVER], by_kind[Span.SPAN_KIND_CLIENT]
    assert server.trace_id.hex() == TRACE and server.parent_span_id.hex() == PARENT
    assert server.name == "tools/call"
    attributes = {a.key: a.value for a in server.attributes}
    assert attributes["rpc.system"].string_value == "jsonrpc"
    assert attributes["rpc.method"].string_value == "tools/call"
    assert attributes["gen_ai.tool.name"].string_value == "svc__echo"
    assert attributes["url.path"].string_value == "/mcp"
    assert client.trace_id.hex() == TRACE and client.parent_span_id == server.span_id
    assert client.name == "tools/call svc__echo"
    assert {a.key: a.value for a in client.attributes}["rpc.service"].string_value == "svc"
    assert server.start_time_unix_nano <= client.start_time_unix_nano <= client.end_time_unix_nano
    assert client.end_time_unix_nano <= server.end_time_unix_nano


def test_without_an_endpoint_opentelemetry_is_not_imported() -> None:
    code = (
        "import sys; from router.settings import RouterSettings; from router import wiring; "
        "assert wiring.otel_spans_from(RouterSettings()) is None; import router.app; "
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
