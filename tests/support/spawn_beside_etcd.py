"""Spawn short-lived children the way the router spawns stdio backends (uvloop, pipes, a new
session) while an etcd client is starting and watching, and print how many died of a signal.

Run in its own process (`python -m tests.support.spawn_beside_etcd URL COUNT`): whether gRPC's
fork support is on is decided once, when grpc is first imported, so a check inside the test
process would only see what an earlier test left behind.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import aclosing

import anyio

from router.kv.etcd import EtcdKV


async def spawn_one(url: str, delay: float) -> int:
    """A fresh client (its channel connecting, its watch starting), then one child next to it."""
    async with EtcdKV(url) as kv, anyio.create_task_group() as tg:

        async def watch() -> None:
            async with aclosing(kv.watch_key("toolmesh-test/fork")) as values:
                async for _ in values:
                    pass

        tg.start_soon(watch)
        await anyio.sleep(delay)
        child = await anyio.open_process(
            ["cat"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert child.stdin is not None
        try:
            await child.stdin.send(b"hello\n")
            await child.stdin.aclose()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the child is gone; its exit code says why
        code = await child.wait()
        tg.cancel_scope.cancel()
        return code


async def main(url: str, count: int) -> None:
    codes = [await spawn_one(url, (i % 10) * 0.005) for i in range(count)]
    killed = [code for code in codes if code < 0]
    print(f"spawned {count}, killed by a signal {len(killed)}: {sorted(set(killed))}")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]), backend_options={"use_uvloop": True})
