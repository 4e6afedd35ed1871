"""A single replica never loads the cluster: without `nats` set, nothing in `router/cluster/`
(and no `nats` module) is imported, at start-up, while serving, or at shutdown. Checked in a fresh
interpreter, so modules other tests loaded cannot hide an eager import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
import anyio
from router.app import Router
from router.settings import RouterSettings

async def main() -> None:
    router = Router(RouterSettings(**json.loads(sys.argv[1])))
    started = anyio.Event()
    steps = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    replies = []

    async def receive():
        message = next(steps)
        if message["type"] == "lifespan.shutdown":
            await started.wait()
        return message

    async def send(message):
        replies.append(message)
        if message["type"] == "lifespan.startup.complete":
            started.set()

    async def ask(path):
        scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}

        async def receive_body():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def ignore(message):
            pass

        await router(scope, receive_body, ignore)

    async with anyio.create_task_group() as tg:
        tg.start_soon(router, {"type": "lifespan"}, receive, send)
        await started.wait()
        await ask("/readyz")
        await ask("/metrics")
    assert replies[-1]["type"] == "lifespan.shutdown.complete", replies

if sys.argv[2] == "serve":
    anyio.run(main)
else:
    Router(RouterSettings(**json.loads(sys.argv[1])))
loaded = sorted(m for m in sys.modules if m.startswith("router.cluster") or m.split(".")[0] == "nats")
print(json.dumps(loaded))
"""


def _loaded(settings: dict[str, str], how: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(settings), how],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_a_replica_without_nats_never_imports_the_cluster() -> None:
    assert _loaded({}, "serve") == []


def test_the_check_sees_the_cluster_when_nats_is_set() -> None:
    """The same script, with NATS configured, loads the cluster and nats as soon as the router is
    built, so the check above can fail (built only: serving would wait for a NATS server)."""
    loaded = _loaded({"nats": "nats://127.0.0.1:9", "cluster_key": "k" * 32}, "build")
    assert "router.cluster.assemble" in loaded and "nats" in loaded
