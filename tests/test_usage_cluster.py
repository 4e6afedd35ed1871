"""Usage across replicas: three routers on one NATS, calls spread over them, one stopped
mid-run; every replica's /v1/usage then counts each call exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import anyio
import pytest

from tests.guard_support import guarded_env
from tests.support.cluster import cluster
from tests.support.mcpcall import call_tool
from tests.support.procs import sample_server_http

pytestmark = pytest.mark.anyio


async def test_usage_sums_equal_the_calls_made_across_replicas_after_one_stops(tmp_path: Path) -> None:
    keys, env = guarded_env(tmp_path, {"ops": ["admins"], "guest": ["guests"]}, {"default": "allow"})
    env["TOOLMESH_ADMIN_GROUPS"] = "admins"
    with (
        sample_server_http("svc", log_dir=tmp_path) as (url, _),
        cluster(tmp_path, {"svc": {"url": url}}, env=env) as group,
    ):
        replicas = list(group.replicas)
        made = {"guest": 0, "ops": 0}
        async with aiohttp.ClientSession() as http:
            for n in range(60):
                if n == 30:
                    await anyio.to_thread.run_sync(replicas[2].process.stop)  # mid-run
                alive = replicas[:2] if n >= 30 else replicas
                agent = "guest" if n % 3 else "ops"
                target = alive[n % len(alive)]
                headers = {"Authorization": f"Bearer {keys[agent]}"}
                reply = await call_tool(http, target.mcp_url, "svc__echo", {"text": str(n)}, headers=headers)
                assert "result" in reply, reply
                made[agent] += 1

            ops = {"Authorization": f"Bearer {keys['ops']}"}
            for replica in replicas[:2]:
                deadline = time.monotonic() + 15
                while True:
                    async with http.get(
                        f"{replica.base_url}/v1/usage?by=agent&period=day", headers=ops
                    ) as response:
                        assert response.status == 200
                        rows = (await response.json())["rows"]
                    counted = {row["agent"]: row["calls"] for row in rows}
                    if counted == made or time.monotonic() > deadline:
                        break
                    await anyio.sleep(0.2)
                assert counted == made, (replica.base_url, counted, made)
