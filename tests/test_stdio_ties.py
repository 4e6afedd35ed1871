"""Over stdio, which call a server-to-client request belongs to is known only if the server says.

Neither SDK puts the related request id on a pipe (it is transport metadata, carried by HTTP
streams only), so server-everything's questions name nothing; the router then relies on a call
having its child to itself (tests/test_stdio_variants.py). A server may name the call in the
request's `_meta`: the related-request-id key, or the call's progress token (which the router
made unique upstream). `tests/servers/tied_asker.py` does exactly that, and here both clients
share its one child (`stdio_variants` 0), so only the tie can tell their questions apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, types

from tests.conftest import run_router
from tests.support.procs import TIED_ASKER_ENTRY
from tests.test_relay import Recorder, text_of

pytestmark = pytest.mark.anyio

ASKER = TIED_ASKER_ENTRY
SHARED = {"TOOLMESH_STDIO_VARIANTS": "0"}


async def two_clients_ask(url: str, tie: str, hold: float) -> tuple[dict[str, str], dict[str, Recorder]]:
    users = {label: Recorder(label) for label in ("alice", "bob")}
    results: dict[str, str] = {}

    async def progress(value: float, total: float | None, message: str | None) -> None:
        return None

    async def run(label: str) -> None:
        async with Client(url, mode="legacy", sampling_callback=users[label].sampling) as client:
            result: types.CallToolResult = await client.call_tool(
                "asker__ask",
                {"prompt": f"for {label}", "tie": tie, "delay": 1.0, "hold": hold},
                progress_callback=progress,  # gives the call a progress token
            )
            results[label] = text_of(result)

    async with anyio.create_task_group() as tg:
        for label in users:
            tg.start_soon(run, label)
    return results, users


@pytest.mark.parametrize("tie", ["related", "progress"])
async def test_a_question_that_names_its_call_reaches_that_client(tmp_path: Path, tie: str) -> None:
    with run_router(tmp_path, {"asker": ASKER}, env=SHARED) as router:
        results, users = await two_clients_ask(router.mcp_url, tie, hold=1.0)
    for label, user in users.items():
        assert results[label] == f"sampled: answer from {label}", results
        assert len(user.sampled) == 1
        asked: Any = user.sampled[0].messages[0].content
        assert asked.text == f"for {label}"
        # the tie meant something upstream only: the router's token and upstream ids stay there
        assert not user.sampled[0].meta, user.sampled[0].meta


async def test_a_question_that_names_nothing_is_refused_while_calls_overlap(tmp_path: Path) -> None:
    with run_router(tmp_path, {"asker": ASKER}, env=SHARED) as router:
        results, users = await two_clients_ask(router.mcp_url, "none", hold=2.0)
    for label, user in users.items():
        assert results[label].startswith("refused: sampling/createMessage refused by the router: 2 calls"), (
            results
        )
        assert not user.sampled
