"""A cancelled downstream request leaves nothing running upstream, in both eras.

Legacy clients cancel with `notifications/cancelled`; a 2026-07-28 client by closing the response
stream. Either way the router stops waiting and tells the backend (a `notifications/cancelled`
for legacy sessions and stdio children, a closed stream for 2026-07-28 HTTP backends). The
sample server's `slow` tool writes a line to stderr when it is cancelled, which is what we watch.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.conftest import run_router
from tests.support.procs import sample_server_http, sample_server_stdio_entry
from tests.support.waits import eventually

pytestmark = pytest.mark.anyio

CANCELLED = "the backend's call to be cancelled"


async def cancel_a_slow_call(url: str, mode: str) -> None:
    async with Client(url, mode=mode) as client:
        # The first call of an era may wait for the backend to be asked whether it speaks it
        # (over stdio, a child of its own): not part of what is measured here.
        assert (await client.call_tool("s__echo", {"text": "warm"})).content
        started = time.monotonic()
        with anyio.move_on_after(1.5):
            await client.call_tool("s__slow", {"seconds": 60})
        assert time.monotonic() - started < 10
        # the session stays usable afterwards
        assert (await client.call_tool("s__echo", {"text": "still here"})).content


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_cancelling_reaches_a_stdio_backend(tmp_path: Path, mode: str) -> None:
    with run_router(tmp_path, {"s": sample_server_stdio_entry("s")}) as router:
        await cancel_a_slow_call(router.mcp_url, mode)
        await eventually(lambda: "s: slow call cancelled" in router.process.log_text(), 15, CANCELLED)


@pytest.mark.parametrize(("mode", "era"), [("legacy", "legacy"), ("2026-07-28", "modern")])
async def test_cancelling_reaches_an_http_backend(tmp_path: Path, mode: str, era: str) -> None:
    with (
        sample_server_http("s", era=era, log_dir=tmp_path) as (url, backend),  # type: ignore[arg-type]
        run_router(tmp_path, {"s": {"url": url}}) as router,
    ):
        await cancel_a_slow_call(router.mcp_url, mode)
        await eventually(lambda: "s: slow call cancelled" in backend.log_text(), 15, CANCELLED)
