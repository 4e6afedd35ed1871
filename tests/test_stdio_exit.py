"""A stdio backend that dies says why: its last stderr lines are logged with its exit code."""

from __future__ import annotations

import logging
import sys

import anyio
import pytest

from router.upstream.stdio import StdioChannel

pytestmark = pytest.mark.anyio

CRASH = "import sys; print('loading config', file=sys.stderr); print('KeyError: API_TOKEN', file=sys.stderr); sys.exit(3)"


async def test_the_exit_log_carries_the_last_stderr_lines(caplog: pytest.LogCaptureFixture) -> None:
    channel = StdioChannel("crashy", sys.executable, ("-c", CRASH), {}, None)
    with caplog.at_level(logging.WARNING, logger="toolmesh.upstream"):
        async with anyio.create_task_group() as tg:
            await channel.open(tg)
            with anyio.fail_after(10):
                await channel.exited.wait()
            await channel.close()
    exits = [record for record in caplog.records if record.getMessage() == "stdio backend exited"]
    assert len(exits) == 1
    assert exits[0].__dict__["code"] == 3
    assert exits[0].__dict__["stderr_tail"] == ["loading config", "KeyError: API_TOKEN"]
