"""A backend that speaks both eras is spoken to in the era of the client making the request.

The backend is `tests.conformance.sdk_backend`, an `MCPServer` (the official SDK's high-level
server) over Streamable HTTP or stdio, on the router's default `protocol: auto`. Its sampling tool
is written in the 2025 style (`ctx.session.create_message` on the call's own stream), which works
only on a 2025 session; its input-required tools in the 2026-07-28 style, which only the stateless
era carries; its `era` tool says which protocol version a request arrived in. A router that speaks
one era to it for every client breaks one kind of client.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, types

from tests.conftest import RouterHandle, run_router
from tests.guard_support import make_keys
from tests.support.mcp_http import call_tool, get_json
from tests.support.procs import REPO_ROOT, ManagedProcess, free_port, sample_server_http
from tests.support.waits import wait_until

pytestmark = [pytest.mark.anyio]

SDK_BACKEND = [sys.executable, "-m", "tests.conformance.sdk_backend"]


@pytest.fixture(params=["http", "stdio"])
def router(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RouterHandle]:
    if request.param == "stdio":
        entry = {"command": SDK_BACKEND[0], "args": [*SDK_BACKEND[1:], "--stdio"], "cwd": str(REPO_ROOT)}
        with run_router(tmp_path, {"sdk": entry}, "--prefix", "never") as handle:
            yield handle
        return
    port = free_port()
    with ManagedProcess([*SDK_BACKEND, "--port", str(port)], name="sdk-backend", log_dir=tmp_path) as backend:
        url = f"http://127.0.0.1:{port}/mcp"
        backend.wait_http(url, 20.0)
        with run_router(tmp_path, {"sdk": {"url": url}}, "--prefix", "never") as handle:
            yield handle


class User:
    """Client callbacks that answer as an LLM and a user would, and remember being asked."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.sampled: list[types.CreateMessageRequestParams] = []
        self.elicited: list[types.ElicitRequestParams] = []

    async def sampling(
        self, context: Any, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.sampled.append(params)
        content = types.TextContent(type="text", text=f"answer from {self.label}")
        return types.CreateMessageResult(role="assistant", content=content, model="test-model")

    async def elicitation(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.elicited.append(params)
        return types.ElicitResult(action="accept", content={"name": self.label})


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def test_a_2025_client_is_served_on_a_2025_session_where_its_sampling_request_is_relayed(
    router: RouterHandle,
) -> None:
    user = User("alice")
    async with Client(
        router.mcp_url, mode="legacy", sampling_callback=user.sampling, elicitation_callback=user.elicitation
    ) as client:
        era = await client.call_tool("era", {})
        assert text_of(era) == "2025-11-25"
        sampled = await client.call_tool("test_sampling", {"prompt": "capital of France?"})
        assert not sampled.is_error, text_of(sampled)
        assert text_of(sampled) == "LLM response: answer from alice"
        assert [params.messages[0].content for params in user.sampled] == [
            types.TextContent(type="text", text="capital of France?")
        ]
        # a dependency that asks: the SDK asks on the call's stream in this era
        greeted = await client.call_tool("ask_name", {})
        assert text_of(greeted) == "Hello, alice!", text_of(greeted)
        assert len(user.elicited) == 1


async def test_a_2026_client_is_served_statelessly_and_gets_the_backends_own_input_required_result(
    router: RouterHandle,
) -> None:
    user = User("bob")
    async with Client(
        router.mcp_url,
        mode="2026-07-28",
        sampling_callback=user.sampling,
        elicitation_callback=user.elicitation,
    ) as client:
        era = await client.call_tool("era", {})
        assert text_of(era) == "2026-07-28"
        # the backend's input-required result, under its own key (a bridge would name its own)
        first = await client.session.call_tool(
            "test_input_required_result_sampling", {}, allow_input_required=True
        )
        assert isinstance(first, types.InputRequiredResult), first
        assert list(first.input_requests or {}) == ["capital_question"]
        # ... which the client answers by retrying, as the SDK's client does by itself
        answered = await client.call_tool("test_input_required_result_sampling", {})
        assert not answered.is_error, text_of(answered)
        assert "answer from bob" in text_of(answered)
        greeted = await client.call_tool("ask_name", {})
        assert text_of(greeted) == "Hello, bob!", text_of(greeted)
        assert len(user.sampled) == 1 and len(user.elicited) == 1


def test_readyz_and_admin_say_which_eras_each_backend_speaks_and_which_each_client_gets(
    tmp_path: Path,
) -> None:
    keys = make_keys(tmp_path / "keys.json", {"root": ["admin"]})
    env = {"TOOLMESH_AUTH_KEYS_FILE": str(tmp_path / "keys.json")}
    port = free_port()
    stdio = {"command": SDK_BACKEND[0], "args": [*SDK_BACKEND[1:], "--stdio"], "cwd": str(REPO_ROOT)}
    with (
        ManagedProcess([*SDK_BACKEND, "--port", str(port)], name="sdk-backend", log_dir=tmp_path) as both,
        sample_server_http("old", era="legacy", log_dir=tmp_path) as (old_url, _),
    ):
        both_url = f"http://127.0.0.1:{port}/mcp"
        both.wait_http(both_url, 20.0)
        servers = {"both": {"url": both_url}, "old": {"url": old_url}, "kid": stdio}
        with run_router(tmp_path, servers, env=env) as router:

            def eras() -> dict[str, Any]:
                backends = get_json(f"{router.base_url}/readyz")["backends"]
                return {name: backends[name].get("eras") for name in servers}

            def asked() -> dict[str, Any] | None:
                now = eras()
                connected = all(now.values())
                return now if connected and "other_era" not in now["both"] else None

            dual = {"legacy": "2025-11-25", "modern": "2026-07-28"}
            seen = wait_until(asked, 10, "the HTTP backend asked for its other era")
            assert seen["both"] == {
                "speaks": sorted(dual.values()),
                "lists": "2026-07-28",
                "for_clients": dual,
            }
            assert seen["old"] == {
                "speaks": ["2025-11-25"],
                "lists": "2025-11-25",
                "for_clients": {"legacy": "2025-11-25", "modern": "bridged to 2025-11-25"},
            }
            # a stdio child costs a process: the other era is asked when its first client comes
            assert seen["kid"]["other_era"] == "asked when its first client comes"
            assert seen["kid"]["speaks"] == ["2025-11-25"]
            assert text_of_reply(call_tool(router.mcp_url, "kid__era", {})) == "2026-07-28"
            kid = eras()["kid"]
            assert kid == {"speaks": sorted(dual.values()), "lists": "2025-11-25", "for_clients": dual}

            request = urllib.request.Request(
                f"{router.base_url}/admin/", headers={"Authorization": f"Bearer {keys['root']}"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                admin = json.loads(response.read())
            shown = {item["server"]: item["eras"] for item in admin["instances"]}
            assert shown == {**seen, "kid": kid}


def text_of_reply(reply: dict[str, Any]) -> str:
    assert "result" in reply, reply
    return "\n".join(block["text"] for block in reply["result"]["content"] if block["type"] == "text")
