"""Server-to-client requests across replicas: the question on one, the client's answer posted to
another, its GET stream on a third. server-everything (npm, legacy era) asks for sampling in the
middle of a call and for roots on its own, outside any call.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from tests.support.cluster import Cluster, McpHttp, cluster
from tests.support.mcp_http import sampling_tool_call
from tests.support.procs import everything_http

pytestmark = [pytest.mark.anyio, pytest.mark.npm, pytest.mark.slow]

ROOTS = {"roots": [{"uri": "file:///work/project", "name": "project"}]}


@pytest.fixture
def three(tmp_path: Path) -> Iterator[Cluster]:
    with everything_http(log_dir=tmp_path) as url, cluster(tmp_path, {"everything": {"url": url}}) as group:
        yield group


def _text(reply: dict[str, Any]) -> str:
    assert "result" in reply, reply
    return " ".join(str(item.get("text", "")) for item in reply["result"].get("content", []))


async def test_sampling_mid_call_is_answered_through_another_replica(three: Cluster) -> None:
    r0, r1, _ = three.replicas
    asked: list[dict[str, Any]] = []

    async def llm(request: dict[str, Any]) -> dict[str, Any]:
        asked.append(request)
        assert request["method"] == "sampling/createMessage"
        return {"role": "assistant", "content": {"type": "text", "text": "answer via r1"}, "model": "t"}

    async with aiohttp.ClientSession() as http:
        client = McpHttp(http)
        await client.initialize(r0.mcp_url, capabilities={"sampling": {}})
        with anyio.fail_after(30):
            reply = await client.call_answering(
                r0.mcp_url,
                "tools/call",
                {"name": "everything__trigger-sampling-request", "arguments": {"prompt": "hi"}},
                llm,
                answer_url=r1.mcp_url,  # the load balancer sent the answer elsewhere
            )
        assert len(asked) == 1
        assert "answer via r1" in _text(reply)


async def test_a_request_outside_a_call_reaches_the_get_stream_on_another_replica(three: Cluster) -> None:
    r0, r1, r2 = three.replicas
    listed: list[str] = []
    async with aiohttp.ClientSession() as http:
        client = McpHttp(http)
        await client.initialize(r0.mcp_url, capabilities={"roots": {"listChanged": True}})
        async with client.stream(r1.mcp_url) as events, anyio.create_task_group() as tg:

            async def answer_roots() -> None:
                async for message in events:
                    if message.get("method") == "roots/list":
                        listed.append(message["id"])
                        reply = {"jsonrpc": "2.0", "id": message["id"], "result": ROOTS}
                        assert (await client.post(r2.mcp_url, reply)).status == 202

            tg.start_soon(answer_roots)
            await anyio.sleep(0.3)
            # the first call opens this client's upstream session (from r0); the backend then asks
            # for roots on its own: the question is born on r0, the stream is on r1
            assert (
                await client.request(
                    r0.mcp_url, "tools/call", {"name": "everything__echo", "arguments": {"message": "x"}}
                )
            ).status == 200
            with anyio.fail_after(20):
                while not listed:
                    await anyio.sleep(0.05)
            first = len(listed)
            in_call: list[str] = []

            async def roots(request: dict[str, Any]) -> dict[str, Any]:
                in_call.append(request["method"])
                return ROOTS

            # a first call on r2 opens r2's own upstream session: the backend asks for roots there,
            # outside any call: born on r2, delivered on r1, answered through r2 again
            echo = {"name": "everything__echo", "arguments": {"message": "y"}}
            assert (await client.request(r2.mcp_url, "tools/call", echo)).status == 200
            with anyio.fail_after(20):
                while len(listed) == first:
                    await anyio.sleep(0.05)
            # (a roots-reading tool as the very first call on a replica hangs: the relay's race,
            # reported, not this layer's)
            with anyio.fail_after(30):
                reply = await client.call_answering(
                    r2.mcp_url,
                    "tools/call",
                    {"name": "everything__get-roots-list", "arguments": {}},
                    roots,
                    answer_url=r0.mcp_url,
                )
            assert "file:///work/project" in _text(reply)
            tg.cancel_scope.cancel()


SAMPLE_CALL = {"name": "everything__trigger-sampling-request", "arguments": {"prompt": "2+2?"}}
FOUR = {"role": "assistant", "content": {"type": "text", "text": "four"}, "model": "m"}


async def test_a_parked_call_resumes_from_another_replica(three: Cluster) -> None:
    r0, r1, r2 = three.replicas
    async with aiohttp.ClientSession() as http:
        status, first = await sampling_tool_call(http, r0.mcp_url, 1, SAMPLE_CALL)
        assert status == 200 and first["result"]["resultType"] == "input_required", first
        ((key, _),) = first["result"]["inputRequests"].items()
        state = first["result"]["requestState"]
        # the retry lands on r1: carried to r0, which holds the upstream call
        status, done = await sampling_tool_call(
            http, r1.mcp_url, 2, {**SAMPLE_CALL, "inputResponses": {key: FOUR}, "requestState": state}
        )
        assert status == 200, done
        assert done["result"]["resultType"] == "complete" and "four" in done["result"]["content"][0]["text"]
        # a call parked on a replica that dies: the retry elsewhere fails at once, retryable
        status, again = await sampling_tool_call(http, r2.mcp_url, 3, SAMPLE_CALL)
        assert again["result"]["resultType"] == "input_required", again
        ((key, _),) = again["result"]["inputRequests"].items()
        three.replicas[2].process.stop()
        with anyio.fail_after(5):
            status, gone = await sampling_tool_call(
                http,
                r1.mcp_url,
                4,
                {
                    **SAMPLE_CALL,
                    "inputResponses": {key: FOUR},
                    "requestState": again["result"]["requestState"],
                },
            )
        assert gone["error"]["code"] == -32602, gone
        assert (
            "another router replica" in gone["error"]["message"]
            and "send the request again" in gone["error"]["message"]
        )
