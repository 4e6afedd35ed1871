"""Shared fixtures: a real router process in front of real MCP servers, on free loopback ports."""

from __future__ import annotations

import contextlib
import inspect
import json
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from router.up.processes import ManagedProcess, free_port
from tests.support.procs import write_catalog


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
async def one_event_loop_for_the_session() -> AsyncIterator[None]:
    """Held by every anyio test (below): anyio keeps its test runner, and so its event loop, while
    a fixture holds it, so all of them run on one loop, as the router and the registrar do."""
    yield


@pytest.fixture(autouse=True)
def async_tests_share_one_event_loop(request: pytest.FixtureRequest) -> None:
    """With a loop per test, gRPC (the etcd client) sometimes finished an operation of an earlier
    test after that test's loop had closed, and "Event loop is closed" failed whichever test ran
    then."""
    # a module marked anyio may hold plain functions too: only a coroutine runs on anyio's runner,
    # and a plain test that asked first for the (async) fixture would fail to set it up
    test = getattr(request.node, "function", None)
    if request.node.get_closest_marker("anyio") is not None and inspect.iscoroutinefunction(test):
        request.getfixturevalue("one_event_loop_for_the_session")


@dataclass
class RouterHandle:
    base_url: str
    catalog: Path
    process: ManagedProcess

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    def write_catalog(self, servers: Mapping[str, Any]) -> None:
        """Replace the catalog file in place (the router picks edits up by itself)."""
        self.catalog.write_text(json.dumps({"mcpServers": dict(servers)}))


@contextlib.contextmanager
def run_router(
    tmp_path: Path, servers: Mapping[str, Any], *args: str, env: Mapping[str, str] | None = None
) -> Iterator[RouterHandle]:
    """Start `toolmesh router` on a free port with `servers` as its catalog; wait for /readyz."""
    catalog = write_catalog(tmp_path, servers)
    port = free_port()
    argv = [
        sys.executable, "-m", "router", "router", "--config", str(catalog), "--port", str(port),
        "--log-format", "text", "--log-level", "debug", *args,
    ]  # fmt: skip
    environment = {"TOOLMESH_CATALOG_POLL_INTERVAL": "0.2", "TOOLMESH_RECONNECT_MAX": "1", **(env or {})}
    with ManagedProcess(argv, name="router", env=environment, log_dir=tmp_path) as process:
        base = f"http://127.0.0.1:{port}"
        wait_ready(process, f"{base}/readyz")
        yield RouterHandle(base, catalog, process)


def wait_ready(process: ManagedProcess, url: str, timeout: float = 30.0) -> None:
    """Poll `url` until it answers 200 (the router's /readyz: catalog loaded, first connects done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.is_running():
            raise AssertionError(f"router exited early:\n{process.log_tail()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"router not ready after {timeout} s:\n{process.log_tail()}")
