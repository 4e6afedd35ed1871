"""Check a load balancer in front of router replicas the way MCP needs it.

`replicas_behind(...)` starts embedded-default routers (no NATS, so a legacy session exists only on
the replica that created it) and a load balancer given as a command, and waits for all of them.
`assert_session_affinity(...)` then proves the balancer hashes on `Mcp-Session-Id`: a request of a
session answers 200 on the replica that created it and 404 on any other, so every session's
requests must get one and the same answer, while new sessions spread over the replicas.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from router.up.processes import ManagedProcess, Supervisor
from router.up.readiness import answers

LEGACY_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def post(url: str, message: dict[str, Any], session: str | None = None) -> tuple[int, str | None, bytes]:
    headers = dict(LEGACY_HEADERS)
    if session is not None:
        headers |= {"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
    request = urllib.request.Request(url, json.dumps(message).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("mcp-session-id"), response.read()
    except urllib.error.HTTPError as error:
        return error.code, None, error.read()


def initialize(url: str) -> str:
    params = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    status, session, body = post(url, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
    assert status == 200 and session, body
    return session


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except (OSError, urllib.error.HTTPError):
        return ""


def haproxy_sees_up(stats_url: str, count: int) -> Callable[[], bool]:
    """HAProxy's stats CSV lists `count` servers of backend `routers` as UP."""

    def ready() -> bool:
        rows = [line.split(",") for line in fetch(f"{stats_url}/;csv").splitlines()]
        return sum(1 for row in rows if len(row) > 17 and row[0] == "routers" and row[17] == "UP") == count

    return ready


def envoy_sees_healthy(admin_url: str, count: int) -> Callable[[], bool]:
    """Envoy's admin /clusters lists `count` healthy hosts in cluster `routers`."""

    def ready() -> bool:
        lines = fetch(f"{admin_url}/clusters").splitlines()
        return (
            sum(
                1 for line in lines if line.startswith("routers::") and line.endswith("health_flags::healthy")
            )
            == count
        )

    return ready


def sessions_on(router_url: str) -> float:
    with urllib.request.urlopen(f"{router_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    match = re.search(r"^toolmesh_sessions (\S+)$", text, flags=re.MULTILINE)
    assert match is not None, "no toolmesh_sessions gauge in /metrics"
    return float(match[1])


@contextlib.contextmanager
def replicas_behind(
    balancer: Callable[[Sequence[int]], Sequence[str]],
    router_ports: Sequence[int],
    balancer_ready: Callable[[], bool],
    log_dir: Path,
    timeout: float = 60.0,
) -> Iterator[list[ManagedProcess]]:
    """Routers on `router_ports`, ready; then the balancer command `balancer(router_ports)`, until
    `balancer_ready()` (as in a deployment, where the balancer's first checks find ready replicas:
    a replica that fails them is out until it passes enough in a row, and hashing moves meanwhile)."""
    with Supervisor(log_dir) as run:
        for index, port in enumerate(router_ports):
            argv = [sys.executable, "-m", "router", "router", "--port", str(port), "--log-format", "text"]
            run.start(argv, f"router-{index}")
        for process, port in zip(run.started, router_ports, strict=True):
            process.wait_until(answers(f"http://127.0.0.1:{port}/readyz"), timeout, "/readyz")
        run.start(list(balancer(router_ports)), "balancer").wait_until(balancer_ready, timeout, "its checks")
        yield run.started


def assert_session_affinity(mcp_url: str, router_urls: Sequence[str], sessions: int = 24) -> None:
    """Every request of a session reaches one replica; new sessions reach all of them.

    At random, `sessions` sessions of 4 requests over 2 replicas would keep every session on one
    replica with probability 8**-sessions; initialize requests all landing on one replica, 2**-23.
    """
    created = [initialize(mcp_url) for _ in range(sessions)]
    counts = [sessions_on(url) for url in router_urls]
    assert sum(counts) == sessions and min(counts) > 0, f"initialize (no session id) should spread: {counts}"
    outcomes: list[set[int]] = []
    for session in created:
        outcomes.append(
            {post(mcp_url, {"jsonrpc": "2.0", "id": n, "method": "ping"}, session)[0] for n in range(4)}
        )
    assert all(len(seen) == 1 for seen in outcomes), (
        f"a session's requests reached several replicas: {outcomes}"
    )
    assert {200} in outcomes, f"no session hashed to the replica that created it ({sessions} tries)"
