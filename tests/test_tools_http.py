"""`/v1/tools`: tool calls over plain HTTP through a real router and real sample servers, with
the same identity, policy, rate limits, breakers and audit as `tools/call` over MCP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from tests.conftest import RouterHandle, run_router
from tests.guard_support import guarded_env
from tests.support.mcpcall import call_tool
from tests.support.procs import sample_server_http

pytestmark = pytest.mark.anyio

POLICY = {"default": "deny", "groups": {"guests": {"allow": {"tools": ["svc__echo", "svc__add"]}}}}
LIMITED = {"rate": 1, "period": 60, "server": "svc", "tool": "add"}  # one call a minute, shared


@contextlib.contextmanager
def guarded_router(tmp: Path, servers: dict[str, Any]) -> Iterator[tuple[RouterHandle, dict[str, str]]]:
    keys, env = guarded_env(tmp, {"guest": ["guests"]}, POLICY)
    with run_router(tmp, servers, env=env) as router:
        yield router, keys


async def post(
    http: aiohttp.ClientSession, url: str, body: bytes | None = b"{}", **headers: str
) -> tuple[int, dict[str, str], Any]:
    headers.setdefault("content-type", "application/json")
    async with http.post(url, data=body, headers=headers) as response:
        return response.status, dict(response.headers), json.loads(await response.read())


async def test_a_tool_call_over_plain_http_goes_through_auth_policy_limits_and_audit(tmp_path: Path) -> None:
    with sample_server_http("svc", log_dir=tmp_path) as (url, _):
        with guarded_router(tmp_path, {"svc": {"url": url, "limits": [LIMITED]}}) as (router, keys):
            tools = f"{router.base_url}/v1/tools"
            bearer = {"Authorization": f"Bearer {keys['guest']}"}
            async with aiohttp.ClientSession() as http:
                status, headers, body = await post(http, f"{tools}/svc__echo/call", b'{"text": "hi"}')
                assert status == 401 and "www-authenticate" in {k.lower() for k in headers}
                assert body["error"]["message"]

                async with http.get(tools, headers=bearer) as response:
                    assert response.status == 200
                    listed = {tool["name"] for tool in (await response.json())["tools"]}
                assert listed == {"svc__echo", "svc__add"}, "the agent's policy view"

                status, _, body = await post(http, f"{tools}/svc__echo/call", b'{"text": "hi"}', **bearer)
                assert status == 200
                assert body["content"] == [{"type": "text", "text": "svc:hi"}]

                # A tool the policy hides fails exactly like one that does not exist.
                status, _, hidden = await post(http, f"{tools}/svc__whoami/call", b"{}", **bearer)
                status2, _, missing = await post(http, f"{tools}/svc__nothing/call", b"{}", **bearer)
                assert status == status2 == 404
                assert hidden["error"]["message"].startswith("Unknown tool: 'svc__whoami'")
                assert missing["error"]["message"].startswith("Unknown tool: 'svc__nothing'")

                # The limit is the one MCP calls count against: an MCP call spends it, HTTP gets 429.
                reply = await call_tool(http, router.mcp_url, "svc__add", {"a": 1, "b": 2}, headers=bearer)
                assert reply["result"]["structuredContent"] == {"sum": 3}
                status, headers, body = await post(
                    http, f"{tools}/svc__add/call", b'{"a": 2, "b": 2}', **bearer
                )
                assert status == 429
                retry_after = int(headers["Retry-After"])
                assert 55 <= retry_after <= 60, retry_after
                assert body["error"]["code"] == -32004
                assert body["error"]["message"].startswith(
                    "rate limit 1/60s on svc/add exceeded; retry after"
                )
                assert 55 < body["error"]["data"]["retryAfter"] <= 60

        records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
        calls = [
            (r["via"], r["target"], r["outcome"], r.get("error_code"))
            for r in records
            if r["method"] == "tools/call"
        ]
        assert ("http", "svc__echo", "ok", None) in calls
        assert ("mcp", "svc__add", "ok", None) in calls  # the MCP call that spent the limit
        assert ("http", "svc__add", "error", -32004) in calls, calls
        assert all(r["agent"] == "guest" for r in records)


async def test_bad_requests_get_json_errors_that_name_the_problem(tmp_path: Path) -> None:
    with (
        sample_server_http("svc", log_dir=tmp_path) as (url, _),
        run_router(tmp_path, {"svc": {"url": url}}, env={"TOOLMESH_MAX_BODY_BYTES": "4096"}) as router,
    ):
        tools = f"{router.base_url}/v1/tools"
        async with aiohttp.ClientSession() as http:
            cases = [
                (b"[1, 2]", {}, 400, "body must be a JSON object"),
                (b"{nope", {}, 400, "body is not JSON"),
                (b"text=hi", {"content-type": "text/plain"}, 415, "application/json"),
                (b"x" * 5000, {}, 413, "body larger than 4096 bytes"),
            ]
            for body, headers, status, phrase in cases:
                got, _, answer = await post(http, f"{tools}/svc__echo/call", body, **headers)
                assert (got, phrase in answer["error"]["message"]) == (status, True), answer
            status, _, answer = await post(http, f"{tools}/svc__whoami/call", None)  # no body, no arguments
            assert status == 200 and answer["content"][0]["text"].isdigit()
            async with http.get(f"{tools}/svc__echo/call") as response:
                assert response.status == 405 and response.headers["Allow"] == "POST"
            async with http.get(f"{tools}/svc__echo") as response:
                assert response.status == 404
                assert "POST /v1/tools/{name}/call" in (await response.json())["error"]["message"]
            status, _, answer = await post(http, f"{tools}/svc__echx/call", b"{}")
            assert status == 404 and answer["error"]["data"]["suggestions"][0] == "svc__echo"
            # The server's own answers: a tool error is still a 200 (the call worked), the
            # server rejecting the arguments is a 400 (not a 404), any other error a 502.
            status, _, answer = await post(http, f"{tools}/svc__echo/call", b'{"text": 5}')
            assert status == 200 and answer["isError"] is True
            status, _, answer = await post(
                http, f"{tools}/svc__fail/call", b'{"message": "no", "code": -32602}'
            )
            assert status == 400 and answer["error"] == {"code": -32602, "message": "svc: no"}
            status, _, answer = await post(http, f"{tools}/svc__fail/call", b'{"message": "broken"}')
            assert status == 502 and answer["error"]["message"] == "svc: broken"


async def test_timeouts_and_open_breakers_are_504_and_503_with_retry_after(tmp_path: Path) -> None:
    env = {"TOOLMESH_BREAKER_FAILURES": "1", "TOOLMESH_BREAKER_RESET": "30"}
    with sample_server_http("svc", log_dir=tmp_path) as (url, process):
        servers = {"svc": {"url": url, "tools": {"echo": {"timeout": 0.5}}}}
        with run_router(tmp_path, servers, env=env) as router:
            call = f"{router.base_url}/v1/tools/svc__echo/call"
            os.kill(process.pid, signal.SIGSTOP)
            try:
                async with aiohttp.ClientSession() as http:
                    status, _, body = await post(http, call, b'{"text": "x"}')
                    assert (
                        status == 504
                        and body["error"]["message"] == "server 'svc' did not answer within 0.5 s"
                    )
                    started = time.monotonic()
                    status, headers, body = await post(http, call, b'{"text": "x"}')
                    assert time.monotonic() - started < 0.5
                    assert status == 503 and "circuit open" in body["error"]["message"]
                    assert 25 <= int(headers["Retry-After"]) <= 30
                    # A healthy instance joining is used at once: "all open" is not remembered
                    # past a change of instances.
                    with sample_server_http("svc", log_dir=tmp_path) as (url2, _):
                        both = {"instances": [{"url": url, "id": "a"}, {"url": url2, "id": "b"}]}
                        router.write_catalog({"svc": {**both, "tools": {"echo": {"timeout": 0.5}}}})
                        deadline = time.monotonic() + 10
                        while (await post(http, call, b'{"text": "y"}'))[0] != 200:
                            assert time.monotonic() < deadline, "the new instance was never used"
                            await anyio.sleep(0.1)
            finally:
                os.kill(process.pid, signal.SIGCONT)
