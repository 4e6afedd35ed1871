"""What the router writes about calls — audit records, metrics, trace context, admin — read back,
and what it sends to backends: their own credentials, never the agent's."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from mcp.shared.exceptions import MCPError

from router.up.processes import ManagedProcess, free_port
from tests.conftest import RouterHandle, run_router
from tests.guard_support import client_with, guarded_env
from tests.header_proxy import header_proxy
from tests.support.procs import sample_server_http, sample_server_stdio_entry

pytestmark = pytest.mark.anyio

BACKEND_SECRET = "backend-secret-7f3a"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@dataclass
class Observed:
    router: RouterHandle
    keys: dict[str, str]
    audit: Path
    seen: list[dict[str, str]]


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    tmp = tmp_path_factory.mktemp("observed")
    policy = {"default": "deny", "groups": {"ops": {"allow": {"servers": ["*"]}}}}
    keys, env = guarded_env(tmp, {"ops": ["ops"], "root": ["admin"], "guest": []}, policy)
    (tmp / "backend-token").write_text(BACKEND_SECRET + "\n")
    env.update(TOOLMESH_AUDIT_ARGUMENTS="true", TOOLMESH_FORWARD_IDENTITY="true")
    with (
        sample_server_http("beta", log_dir=tmp) as (beta_url, _),
        header_proxy(beta_url) as (proxy_url, seen),
    ):
        servers = {
            "alpha": sample_server_stdio_entry("alpha"),
            "beta": {"url": proxy_url, "bearerTokenFile": str(tmp / "backend-token")},
        }
        with run_router(tmp, servers, env=env) as router:
            yield Observed(router, keys, tmp / "audit.jsonl", seen)


def audit_records(path: Path, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.1)


async def test_a_call_is_audited_traced_and_sent_with_the_backends_credentials(observed: Observed) -> None:
    arguments = {"text": "hi", "password": "hunter2", "nested": {"Token": "t0ps3cret"}}
    async with client_with(
        observed.router.mcp_url, observed.keys["ops"], "legacy", traceparent=TRACEPARENT
    ) as ops:
        before = len(observed.seen)
        result = await ops.call_tool("beta__echo", arguments)
        assert result.content[0].text == "beta:hi"  # type: ignore[union-attr]
        with pytest.raises(MCPError):
            await ops.call_tool("beta__nonexistent", {})
    upstream = [h for h in observed.seen[before:] if h.get("mcp-protocol-version")]
    call = next(h for h in upstream if "traceparent" in h)
    # The backend gets its own token, never the agent's key; identity only in the router's headers.
    assert call["authorization"] == f"Bearer {BACKEND_SECRET}"
    assert all(observed.keys["ops"] not in value for h in observed.seen for value in h.values())
    assert call["x-toolmesh-agent"] == "ops" and call["x-toolmesh-groups"] == "ops"
    # The trace continues: same trace id, a new span of the router as parent.
    _, trace_id, parent, flags = call["traceparent"].split("-")
    assert trace_id == TRACE_ID and parent != "00f067aa0ba902b7" and flags == "01"

    records = audit_records(observed.audit, 2)
    ok = next(r for r in records if r["target"] == "beta__echo")
    encoded = json.dumps(arguments, sort_keys=True, separators=(",", ":")).encode()
    assert ok["agent"] == "ops" and ok["server"] == "beta" and ok["instance"] == "beta"
    assert ok["method"] == "tools/call" and ok["outcome"] == "ok" and ok["error_code"] is None
    assert ok["era"] == "legacy" and ok["via"] == "mcp"
    assert ok["arguments_bytes"] == len(encoded)
    assert ok["arguments_sha256"] == hashlib.sha256(encoded).hexdigest()
    assert ok["arguments"] == {"text": "hi", "password": "[redacted]", "nested": {"Token": "[redacted]"}}
    assert ok["trace_id"] == TRACE_ID and ok["span_id"] == parent
    assert 0 < ok["latency_ms"] < 10_000 and ok["time"].endswith("Z")
    assert ok["session"] is not None and len(ok["session"]) == 16
    refused = next(r for r in records if r["target"] == "beta__nonexistent")
    assert refused["outcome"] == "rejected" and refused["error_code"] == -32602 and refused["server"] is None
    text = observed.audit.read_text()
    for secret in ("hunter2", "t0ps3cret", BACKEND_SECRET, observed.keys["ops"]):
        assert secret not in text
    log = observed.router.process.log_path.read_text()
    for secret in (BACKEND_SECRET, observed.keys["ops"], "hunter2"):
        assert secret not in log


async def test_trace_context_reaches_stdio_and_2026_backends_in_meta(observed: Observed) -> None:
    """A stdio child sees no headers and a 2026-07-28 backend reads `_meta`: both get the router's
    span as `_meta.traceparent` (SEP-414), replacing the one the client put there."""
    client_span = "00f067aa0ba902b7"
    async with client_with(
        observed.router.mcp_url, observed.keys["ops"], "legacy", traceparent=TRACEPARENT
    ) as ops:
        for tool in ("alpha__meta", "beta__meta"):  # alpha: stdio, legacy era; beta: HTTP, 2026-07-28
            stale = {"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"}
            result = await ops.call_tool(tool, {}, meta=stale)
            meta = json.loads(result.content[0].text)  # type: ignore[union-attr]
            _, trace_id, parent, flags = meta["traceparent"].split("-")
            assert trace_id == TRACE_ID and parent != client_span and flags == "01", meta
            [record] = [r for r in audit_records(observed.audit, 4) if r["target"] == tool]
            assert record["span_id"] == parent  # the router's own span, as in the audit record


async def test_a_client_without_the_header_is_traced_from_its_meta(observed: Observed) -> None:
    """SEP-414: a client whose transport sets no `traceparent` header sends it in `_meta`; the
    router continues that trace (new span, same trace id) toward stdio and HTTP backends alike."""
    client_span = "00f067aa0ba902b7"
    async with client_with(observed.router.mcp_url, observed.keys["ops"], "2026-07-28") as ops:
        for tool in ("alpha__meta", "beta__meta"):
            audited = len(audit_records(observed.audit, 0))  # the fixture is shared by the module
            result = await ops.call_tool(tool, {}, meta={"traceparent": TRACEPARENT})
            meta = json.loads(result.content[0].text)  # type: ignore[union-attr]
            _, trace_id, parent, flags = meta["traceparent"].split("-")
            assert trace_id == TRACE_ID and parent != client_span and flags == "01", meta
            record = audit_records(observed.audit, audited + 1)[audited]
            assert record["target"] == tool and record["era"] == "modern", record
            assert record["trace_id"] == TRACE_ID and record["span_id"] == parent
        malformed = {"traceparent": "00-not-a-trace-01"}
        result = await ops.call_tool("beta__meta", {}, meta=malformed)
        meta = json.loads(result.content[0].text)  # type: ignore[union-attr]
        assert meta["traceparent"].split("-")[1] != TRACE_ID  # a trace of its own, not an error


async def test_without_trace_propagation_no_trace_context_goes_upstream(tmp_path: Path) -> None:
    servers = {"alpha": sample_server_stdio_entry("alpha")}
    with run_router(tmp_path, servers, env={"TOOLMESH_TRACE_PROPAGATION": "false"}) as router:
        async with client_with(router.mcp_url, None, "legacy", traceparent=TRACEPARENT) as client:
            result = await client.call_tool("alpha__meta", {})
    meta = json.loads(result.content[0].text)  # type: ignore[union-attr]
    assert "traceparent" not in meta, meta


async def test_metrics_count_calls_by_server_tool_and_outcome_without_secrets(observed: Observed) -> None:
    async with client_with(observed.router.mcp_url, observed.keys["ops"], "2026-07-28") as ops:
        for _ in range(3):
            await ops.call_tool("alpha__echo", {"text": "x"})
        failed = await ops.call_tool("alpha__tool_error", {"message": "no"})
        assert failed.is_error
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{observed.router.base_url}/metrics") as response:
            text = await response.text()
        bad = {**{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
               "Authorization": "Bearer tmk_nope_nope"}  # fmt: skip
        async with http.post(
            observed.router.mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=bad
        ):
            pass
        async with http.get(f"{observed.router.base_url}/metrics") as response:
            after = await response.text()
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    ok = 'toolmesh_calls_total{method="tools/call",outcome="ok",server="alpha",tool="alpha__echo"}'
    assert float(samples[ok]) >= 3
    tool_error = 'toolmesh_calls_total{method="tools/call",outcome="tool_error",server="alpha",tool="alpha__tool_error"}'
    assert float(samples[tool_error]) >= 1
    assert 'toolmesh_call_duration_seconds_bucket{le="60.0",method="tools/call",server="alpha"}' in samples
    assert float(samples["toolmesh_policy_generation"]) >= 1
    assert float(samples['toolmesh_backend_up{instance="beta",server="beta"}']) == 1
    assert 'toolmesh_catalog_items{kind="tools"}' in samples and "toolmesh_sessions" in samples
    assert 'toolmesh_auth_failures_total{reason="invalid_key"}' in after
    for secret in (BACKEND_SECRET, *observed.keys.values(), 'agent="', 'session="'):
        assert secret not in after


async def test_admin_needs_admin_credentials_and_status_prints_it(observed: Observed) -> None:
    admin = f"{observed.router.base_url}/admin/"
    async with aiohttp.ClientSession() as http:
        async with http.get(admin) as response:
            assert response.status == 401 and "resource_metadata" in response.headers["WWW-Authenticate"]
        async with http.get(admin, headers={"Authorization": f"Bearer {observed.keys['ops']}"}) as response:
            assert response.status == 403
        async with http.get(admin, headers={"Authorization": f"Bearer {observed.keys['root']}"}) as response:
            assert response.status == 200
            document = await response.json()
    assert document["catalog"]["servers"] == ["alpha", "beta"]
    assert {i["server"]: i["state"] for i in document["instances"]} == {"alpha": "ready", "beta": "ready"}
    assert document["health"] == "ready" and isinstance(document["sessions"], int)
    assert document["policy"]["generation"] >= 1 and document["policy"]["last_error"] is None
    assert BACKEND_SECRET not in json.dumps(document)
    argv = [sys.executable, "-m", "router", "status", "--router", observed.router.base_url]
    shown = await anyio.run_process([*argv, "--token", observed.keys["root"]], check=False)
    assert shown.returncode == 0, shown.stderr
    printed = shown.stdout.decode()
    assert "health:    ready" in printed and "BREAKER" in printed
    beta = next(line for line in printed.splitlines() if line.startswith("beta "))
    assert beta.split()[2:4] == ["ready", "closed"]
    refused = await anyio.run_process(argv, check=False)
    assert refused.returncode == 1 and b"401" in refused.stderr and b"--token" in refused.stderr


def _prometheus() -> str:
    found = shutil.which("prometheus")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"],
            check=False, capture_output=True, timeout=600, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )  # fmt: skip
        found = shutil.which("prometheus")
    if found is None:
        pytest.fail("prometheus is not installed (apt-get install prometheus)")
    return found


@pytest.mark.timeout(600)
async def test_a_real_prometheus_scrapes_the_router(observed: Observed, tmp_path: Path) -> None:
    binary = _prometheus()
    async with client_with(observed.router.mcp_url, observed.keys["ops"], "legacy") as ops:
        for _ in range(2):
            await ops.call_tool("beta__echo", {"text": "p"})
    target = urllib.parse.urlsplit(observed.router.base_url).netloc
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: toolmesh, static_configs: [{{targets: ['{target}']}}]}}]\n"
    )
    port = free_port()
    argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    query = 'sum by (server, tool) (toolmesh_calls_total{server="beta", tool="beta__echo", outcome="ok"})'
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with ManagedProcess(argv, name="prometheus", log_dir=tmp_path):
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 60
            result: list[Any] = []
            while time.monotonic() < deadline:
                try:
                    async with http.get(url) as response:
                        result = (await response.json())["data"]["result"]
                except (aiohttp.ClientError, OSError):
                    result = []
                if result:
                    break
                await anyio.sleep(0.5)
            assert result, "prometheus never saw toolmesh_calls_total"
            assert result[0]["metric"] == {"server": "beta", "tool": "beta__echo"}
            assert float(result[0]["value"][1]) >= 2
            up = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode(
                {"query": "up{job='toolmesh'}"}
            )
            async with http.get(up) as response:
                assert (await response.json())["data"]["result"][0]["value"][1] == "1"
