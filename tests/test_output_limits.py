"""Output limits: an oversized tool result is cut with a marker or refused, as the catalog entry
says, in both protocol eras and on `/v1/tools`, through a real router and a real backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from router.catalog.server_rules import ServerPolicy, ToolPolicy
from router.errors import ResultTooLarge
from router.relay.output_limit import Limit, OutputLimits, enforce
from router.server.replies import response_bytes
from tests.conftest import RouterHandle, run_router
from tests.support.mcpcall import call_tool as modern_call
from tests.support.procs import sample_server_http

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def text_result(*texts: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text} for text in texts], "isError": False}


def test_a_result_within_its_limit_passes_untouched_and_is_measured() -> None:
    result = text_result("small")
    kept, encoded = enforce(result, Limit(1000, "truncate", "max_result_bytes=1000"), "svc", "echo")
    assert kept is result and encoded == orjson.dumps(result)  # the JSON the reply then sends


def test_an_oversized_text_result_is_cut_to_the_limit_with_a_marker_naming_it() -> None:
    result = text_result("é" * 5000, "second item", "third")
    kept, encoded = enforce(result, Limit(2000, "truncate", "max_result_bytes=2000"), "svc", "echo")
    assert encoded == orjson.dumps(kept) and len(encoded) <= 2000
    first, marker = kept["content"]
    assert result["content"][0]["text"].startswith(first["text"]) and len(first["text"]) > 500
    assert marker["text"].startswith("[toolmesh: result cut to 2000 of ")
    assert (
        "tool 'echo' on server 'svc' (max_result_bytes=2000); 2 more content items left out]"
        in marker["text"]
    )
    assert kept["isError"] is False


def test_the_reply_sends_the_measured_json_byte_for_byte_as_encoding_the_result_again_would() -> None:
    """The reply reuses the JSON the output limit measured (one `orjson.dumps` per result, not
    two): in both eras, with or without a `resultType` of its own, an empty result included."""
    for result in (text_result("small"), {}, {**text_result("x"), "resultType": "complete"}):
        _, encoded = enforce(result, Limit(1000, "truncate", "max_result_bytes=1000"), "svc", "echo")
        for modern in (False, True):
            assert response_bytes(7, result, modern, encoded) == response_bytes(7, result, modern), (
                result,
                modern,
            )
    marked = b'{"content":[],"measured":true}'  # the given bytes are what goes out, not a new encoding
    assert (
        response_bytes(7, {"content": []}, False, marked)
        == b'{"jsonrpc":"2.0","id":7,"result":' + marked + b"}"
    )
    assert (
        orjson.loads(response_bytes(7, {"content": []}, True, marked))["result"]["resultType"] == "complete"
    )


def test_refuse_mode_and_structured_content_fail_naming_the_limit() -> None:
    big = text_result("x" * 5000)
    with pytest.raises(ResultTooLarge) as refused:
        enforce(big, Limit(1000, "refuse", "max_result_tokens=250"), "svc", "echo")
    assert refused.value.code == -32006
    assert "over its output limit max_result_tokens=250 (1000 bytes)" in refused.value.message
    structured = {**big, "structuredContent": {"text": "x" * 5000}}
    with pytest.raises(ResultTooLarge, match="structured content is never cut"):
        enforce(structured, Limit(1000, "truncate", "max_result_bytes=1000"), "svc", "echo")


def test_the_tool_limit_overrides_the_server_limit_which_overrides_the_default() -> None:
    limits = OutputLimits(10_000)
    assert limits.limit_for(None, "echo").bytes == 10_000
    server = ServerPolicy(
        max_result_tokens=500,
        over_limit="refuse",
        tools=(("echo", ToolPolicy(max_result_bytes=100)), ("add", ToolPolicy(over_limit="truncate"))),
    )
    assert limits.limit_for(server, "echo") == Limit(100, "refuse", "max_result_bytes=100")
    assert limits.limit_for(server, "add") == Limit(2000, "truncate", "max_result_tokens=500")
    assert limits.limit_for(server, "other") == Limit(2000, "refuse", "max_result_tokens=500")
    assert limits.limit_for(ServerPolicy(max_result_bytes=0), "x").bytes == 0  # 0: no limit


async def legacy_call(
    http: aiohttp.ClientSession,
    router: RouterHandle,
    name: str,
    args: Any,
    headers: dict[str, str] | None = None,
) -> Any:
    """A 2025-11-25 session: initialize, initialized, one tools/call; the JSON-RPC response."""
    params = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    base = {**JSON, **(headers or {})}
    async with http.post(router.mcp_url, json=init, headers=base) as response:
        session = {"mcp-session-id": response.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    async with http.post(router.mcp_url, json=done, headers={**base, **session}):
        pass
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": args}}
    async with http.post(router.mcp_url, json=call, headers={**base, **session}) as response:
        raw = (await response.read()).decode()
    if raw.startswith(("event:", "data:", "id:")):
        raw = [line[5:] for line in raw.splitlines() if line.startswith("data:") and line[5:].strip()][-1]
    return json.loads(raw)


async def test_oversized_results_are_cut_or_refused_in_both_eras_and_over_plain_http(tmp_path: Path) -> None:
    huge = "line of a very long tool result\n" * 12_000  # ~380 kB: over the router's default too
    with sample_server_http("svc", log_dir=tmp_path) as (url, _):
        servers = {
            "cut": {"url": url, "max_result_bytes": 4000, "tools": {"add": {"max_result_bytes": 20}}},
            "strict": {"url": url, "max_result_tokens": 1000, "over_limit": "refuse"},
            "plain": {"url": url},  # the router's default limit, 256 KiB
        }
        with run_router(tmp_path, servers) as router:
            async with aiohttp.ClientSession() as http:
                for era, call in (("legacy", legacy_call), ("modern", None)):
                    if call is None:
                        cut = await modern_call(http, router.mcp_url, "cut__echo", {"text": huge})
                        refused = await modern_call(http, router.mcp_url, "strict__echo", {"text": huge})
                        structured = await modern_call(http, router.mcp_url, "cut__add", {"a": 1, "b": 2})
                        default = await modern_call(http, router.mcp_url, "plain__echo", {"text": huge})
                    else:
                        cut = await call(http, router, "cut__echo", {"text": huge})
                        refused = await call(http, router, "strict__echo", {"text": huge})
                        structured = await call(http, router, "cut__add", {"a": 1, "b": 2})
                        default = await call(http, router, "plain__echo", {"text": huge})
                    content = cut["result"]["content"]
                    assert len(orjson.dumps(cut["result"])) <= 4000, era
                    assert content[0]["text"].startswith("svc:line of a very long tool result\n"), era
                    assert content[-1]["text"].startswith("[toolmesh: result cut to 4000 of "), era
                    assert "(max_result_bytes=4000)]" in content[-1]["text"], era

                    error = refused["error"]
                    assert error["code"] == -32006, era
                    assert "over its output limit max_result_tokens=1000 (4000 bytes)" in error["message"]
                    assert error["data"]["server"] == "strict" and error["data"]["tool"] == "echo"

                    assert structured["error"]["code"] == -32006, (era, structured)
                    assert "structured content is never cut" in structured["error"]["message"]

                    assert len(orjson.dumps(default["result"])) <= 256 * 1024, era
                    assert "(max_result_bytes=262144)]" in default["result"]["content"][-1]["text"], era

                tools = f"{router.base_url}/v1/tools"
                body = orjson.dumps({"text": huge})
                async with http.post(f"{tools}/cut__echo/call", data=body, headers=JSON) as response:
                    assert response.status == 200
                    result = await response.json()
                    assert result["content"][-1]["text"].startswith("[toolmesh: result cut to 4000 of ")
                async with http.post(f"{tools}/strict__echo/call", data=body, headers=JSON) as response:
                    assert response.status == 502
                    error = (await response.json())["error"]
                    assert error["code"] == -32006 and "max_result_tokens=1000" in error["message"]
                async with http.post(
                    f"{tools}/cut__echo/call", data=b'{"text": "hi"}', headers=JSON
                ) as response:
                    assert response.status == 200
                    assert (await response.json())["content"] == [{"type": "text", "text": "svc:hi"}]
