"""The requestState the router mints for a 2026-07-28 client in front of a legacy backend.

It names the parked upstream call and is signed: an altered state, or one signed with another
key, is refused with -32602 and never reaches a call. The wire test drives one input-required
round by hand against server-everything (legacy, over stdio) behind the router.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from router.errors import RPCError
from router.relay.parking import StateCodec
from tests.conftest import run_router
from tests.support.mcp_http import sampling_tool_call
from tests.support.procs import everything_stdio_entry


def test_minted_state_round_trips_and_refuses_tampering() -> None:
    codec = StateCodec(b"k" * 32)
    state = codec.mint({"call": "abc", "server": "s"})
    assert StateCodec.is_ours(state) and codec.open(state) == {"call": "abc", "server": "s"}
    body, mac = state.removeprefix("tm1.").split(".")
    forged = StateCodec(b"other key").mint({"call": "abc", "server": "s"})
    for bad in (
        state[:-2] + ("AA" if not state.endswith("AA") else "BB"),
        f"tm1.{body}x.{mac}",
        forged,
        "tm1.junk",
    ):
        with pytest.raises(RPCError) as caught:
            codec.open(bad)
        assert caught.value.code == -32602


@pytest.mark.anyio
@pytest.mark.npm
async def test_an_input_required_round_through_the_router(tmp_path: Path) -> None:
    call = {"name": "everything__trigger-sampling-request", "arguments": {"prompt": "2+2?"}}
    with run_router(tmp_path, {"everything": everything_stdio_entry()}) as router:
        async with aiohttp.ClientSession() as http:
            status, first = await sampling_tool_call(http, router.mcp_url, 1, call)
            assert status == 200, first
            result = first["result"]
            assert result["resultType"] == "input_required"
            ((key, question),) = result["inputRequests"].items()
            assert question["method"] == "sampling/createMessage"
            state = result["requestState"]
            assert state.startswith("tm1.")

            answer = {"role": "assistant", "content": {"type": "text", "text": "four"}, "model": "m"}
            tampered = state[:-4] + ("AAAA" if not state.endswith("AAAA") else "BBBB")
            status, refused = await sampling_tool_call(
                http, router.mcp_url, 2, {**call, "inputResponses": {key: answer}, "requestState": tampered}
            )
            assert status == 400 and refused["error"]["code"] == -32602, refused

            status, missing = await sampling_tool_call(
                http, router.mcp_url, 3, {**call, "inputResponses": {}, "requestState": state}
            )
            assert missing["result"]["resultType"] == "input_required"  # asked again, same question

            status, done = await sampling_tool_call(
                http, router.mcp_url, 4, {**call, "inputResponses": {key: answer}, "requestState": state}
            )
            assert status == 200, done
            assert done["result"]["resultType"] == "complete"
            assert "four" in done["result"]["content"][0]["text"]

            # the call is over: its state cannot be replayed
            status, replay = await sampling_tool_call(
                http, router.mcp_url, 5, {**call, "inputResponses": {key: answer}, "requestState": state}
            )
            assert status == 400 and replay["error"]["code"] == -32602, replay
