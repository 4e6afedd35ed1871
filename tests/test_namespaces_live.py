"""A namespace document changed in etcd is served by three router replicas within a second.

Three replicas follow one policy key in a real etcd. The key is rewritten (the `support`
namespace gains a tool); each replica's `/v1/namespaces/support/tools` is polled every 10 ms
from just before the write (the timer includes starting `etcdctl`, so it overstates) until it
lists the new tool. The figures are printed; the test fails above one second.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from tests.conftest import run_router
from tests.guard_support import make_keys
from tests.support.procs import sample_server_stdio_entry
from tests.test_guard_policy import etcd_source

pytestmark = pytest.mark.anyio


def policy_with(*tools: str) -> dict[str, Any]:
    return {
        "default": "allow",
        "namespaces": {"support": {"servers": ["alpha"], "tools": list(tools)}},
    }


async def test_a_namespace_change_reaches_three_replicas_within_a_second(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys.json", {"ops": ["ops"]})
    with contextlib.ExitStack() as stack:
        source_env, put = stack.enter_context(etcd_source(tmp_path))
        put(json.dumps(policy_with("alpha__echo")).encode())
        env = {**source_env, "TOOLMESH_AUTH_KEYS_FILE": str(tmp_path / "keys.json"),
               "TOOLMESH_AUTH_ANONYMOUS": "never"}  # fmt: skip
        routers = []
        for n in range(3):
            directory = tmp_path / f"replica{n}"
            directory.mkdir()
            servers = {"alpha": sample_server_stdio_entry("alpha")}
            routers.append(stack.enter_context(run_router(directory, servers, env=env)))
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {keys['ops']}"}) as http:

            async def listed(base: str) -> set[str]:
                async with http.get(f"{base}/v1/namespaces/support/tools") as response:
                    if response.status != 200:
                        return set()
                    return {tool["name"] for tool in (await response.json())["tools"]}

            for router in routers:
                with anyio.fail_after(15):
                    while await listed(router.base_url) != {"alpha__echo"}:
                        await anyio.sleep(0.1)
            seen: dict[str, float] = {}
            started = time.monotonic()

            async def watch(base: str) -> None:
                with anyio.fail_after(10):
                    while "alpha__add" not in await listed(base):
                        await anyio.sleep(0.01)
                seen[base] = time.monotonic() - started

            async with anyio.create_task_group() as tg:
                for router in routers:
                    tg.start_soon(watch, router.base_url)
                await anyio.to_thread.run_sync(
                    put, json.dumps(policy_with("alpha__echo", "alpha__add")).encode()
                )
    figures = ", ".join(f"{seconds * 1000:.0f} ms" for seconds in sorted(seen.values()))
    print(f"namespace change seen by 3 replicas after: {figures}")
    assert len(seen) == 3 and max(seen.values()) < 1.0, figures
