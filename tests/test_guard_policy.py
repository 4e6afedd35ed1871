"""Policy changes apply live and atomically from every source (file, Consul KV, etcd); an invalid
policy is rejected with a precise message and the last valid one stays in force."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import types

from router.errors import ConfigError
from router.guard.policy_document import parse_policy
from router.up.processes import ManagedProcess, free_port
from tests.conftest import run_router
from tests.guard_support import client_with, guarded_env, make_keys, write_policy
from tests.support.procs import REPO_ROOT, sample_server_stdio_entry
from tests.support.waits import eventually

pytestmark = pytest.mark.anyio


def policy_allowing(*tools: str) -> dict[str, Any]:
    return {"default": "deny", "groups": {"guests": {"allow": {"tools": list(tools)}}}}


INVALID = {"default": "deny", "groups": {"guests": {"allow": {"tool": ["alpha__*"]}}}}


# -- parsing: the message names the field and the fix ---------------------------------------------


@pytest.mark.parametrize(
    ("document", "where", "fix"),
    [
        (INVALID, "groups.guests.allow.tool", "did you mean 'tools'?"),
        ({"default": "maybe"}, "default", ""),
        ({"agents": {"bob": {"groups": ["opz"]}}, "groups": {"ops": {}}}, "agents", "did you mean 'ops'?"),
        ({"overrides": [{"tool": "x__y"}]}, "overrides.0", "needs at least one of `enabled`, `name`"),
    ],
)
def test_an_invalid_policy_is_rejected_naming_the_field_and_the_fix(
    document: dict[str, Any], where: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(json.dumps(document).encode(), "(test)")
    assert where in str(caught.value) and fix in str(caught.value)


def test_broken_json_is_rejected_with_the_position() -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_policy(b'{"default": "deny",', "(test)")


# -- sources --------------------------------------------------------------------------------------

Put = Callable[[bytes], None]


@contextlib.contextmanager
def file_source(tmp: Path) -> Iterator[tuple[dict[str, str], Put]]:
    path = tmp / "policy.json"

    def put(data: bytes) -> None:
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(data)
        temporary.replace(path)

    yield {"TOOLMESH_POLICY_FILE": str(path), "TOOLMESH_POLICY_POLL_INTERVAL": "0.2"}, put


@contextlib.contextmanager
def consul_source(tmp: Path) -> Iterator[tuple[dict[str, str], Put]]:
    port = free_port()
    argv = [sys.executable, "-m", "tests.consul_double", "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with ManagedProcess(argv, name="consul-double", log_dir=tmp, cwd=REPO_ROOT):
        _wait_http(f"{url}/v1/status/leader")

        def put(data: bytes) -> None:
            request = urllib.request.Request(f"{url}/v1/kv/toolmesh/policy", data=data, method="PUT")
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200

        yield {"TOOLMESH_POLICY_CONSUL_KEY": "toolmesh/policy", "TOOLMESH_POLICY_CONSUL_URL": url}, put


@contextlib.contextmanager
def etcd_source(tmp: Path) -> Iterator[tuple[dict[str, str], Put]]:
    client, peer = free_port(), free_port()
    endpoint = f"127.0.0.1:{client}"
    etcd = Path(sys.executable).parent / "etcd"
    argv = [
        str(etcd), "--data-dir", str(tmp / "etcd"), "--listen-client-urls", f"http://{endpoint}",
        "--advertise-client-urls", f"http://{endpoint}", "--listen-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-cluster", f"default=http://127.0.0.1:{peer}",
    ]  # fmt: skip
    with ManagedProcess(argv, name="etcd", log_dir=tmp):
        _wait_http(f"http://{endpoint}/health")

        def put(data: bytes) -> None:
            etcdctl = [str(etcd.parent / "etcdctl"), f"--endpoints={endpoint}", "put", "toolmesh/policy"]
            subprocess.run([*etcdctl, data.decode()], check=True, capture_output=True, timeout=30)

        yield {"TOOLMESH_POLICY_ETCD_KEY": "toolmesh/policy", "TOOLMESH_POLICY_ETCD_ENDPOINT": endpoint}, put


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, urllib.error.URLError), urllib.request.urlopen(url, timeout=1):
            return
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


SOURCES = {"file": file_source, "consul": consul_source, "etcd": etcd_source}


@pytest.mark.parametrize("kind", list(SOURCES))
async def test_policy_updates_apply_live_and_invalid_ones_keep_the_last_valid(
    tmp_path: Path, kind: str
) -> None:
    keys = make_keys(tmp_path / "keys.json", {"guest": ["guests"], "root": ["admin"]})
    with SOURCES[kind](tmp_path) as (source_env, put):
        put(json.dumps(policy_allowing("alpha__echo")).encode())
        env = {
            **source_env,
            "TOOLMESH_AUTH_KEYS_FILE": str(tmp_path / "keys.json"),
            "TOOLMESH_AUTH_ANONYMOUS": "never",
        }
        with run_router(tmp_path, {"alpha": sample_server_stdio_entry("alpha")}, env=env) as router:

            async def visible() -> set[str]:
                async with client_with(router.mcp_url, keys["guest"], "legacy") as guest:
                    return {tool.name for tool in (await guest.list_tools()).tools}

            async def until(expected: set[str]) -> None:
                deadline = time.monotonic() + 15
                while (seen := await visible()) != expected:
                    assert time.monotonic() < deadline, f"still {seen}, wanted {expected}"
                    await anyio.sleep(0.2)

            assert await visible() == {"alpha__echo"}
            await anyio.to_thread.run_sync(
                put, json.dumps(policy_allowing("alpha__echo", "alpha__add")).encode()
            )
            await until({"alpha__echo", "alpha__add"})
            await anyio.to_thread.run_sync(put, json.dumps(INVALID).encode())
            deadline = time.monotonic() + 15
            while "policy rejected" not in router.process.log_path.read_text():
                assert time.monotonic() < deadline, "the invalid policy was not noticed"
                await anyio.sleep(0.2)
            assert "groups.guests.allow.tool" in router.process.log_path.read_text()
            assert await visible() == {"alpha__echo", "alpha__add"}  # the last valid policy stays
            admin = await anyio.to_thread.run_sync(_admin, router.base_url, keys["root"])
            assert "did you mean 'tools'?" in admin["policy"]["last_error"]
            # A valid update after an invalid one applies again.
            await anyio.to_thread.run_sync(put, json.dumps(policy_allowing("alpha__add")).encode())
            await until({"alpha__add"})


def _admin(base_url: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{base_url}/admin/", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        document: dict[str, Any] = json.loads(response.read())
        return document


async def test_a_policy_change_tells_exactly_the_clients_whose_lists_it_changed(tmp_path: Path) -> None:
    """A guest's tool list grows with the new policy: the guest's session hears tools/list_changed;
    the admin's lists are the same under both policies, so it hears nothing."""
    admins = {"admin": {"allow": {"tools": ["*"]}}}
    first = {
        **policy_allowing("alpha__echo"),
        "groups": {**policy_allowing("alpha__echo")["groups"], **admins},
    }
    grown = policy_allowing("alpha__echo", "alpha__add")
    second = {**grown, "groups": {**grown["groups"], **admins}}
    keys, env = guarded_env(tmp_path, {"guest": ["guests"], "root": ["admin"]}, first)
    env["TOOLMESH_POLICY_POLL_INTERVAL"] = "0.1"
    heard: dict[str, list[str]] = {"guest": [], "root": []}

    def inbox(who: str) -> Callable[[Any], Any]:
        async def record(message: Any) -> None:
            if isinstance(message, types.ServerNotification):
                heard[who].append(message.method)

        return record

    with run_router(tmp_path, {"alpha": sample_server_stdio_entry("alpha")}, env=env) as router:
        async with (
            client_with(router.mcp_url, keys["guest"], "legacy", message_handler=inbox("guest")) as guest,
            client_with(router.mcp_url, keys["root"], "legacy", message_handler=inbox("root")),
        ):
            assert {tool.name for tool in (await guest.list_tools()).tools} == {"alpha__echo"}
            await anyio.sleep(0.5)  # the GET streams are open
            await anyio.to_thread.run_sync(write_policy, tmp_path / "policy.json", second)
            await eventually(lambda: "notifications/tools/list_changed" in heard["guest"])
            assert {tool.name for tool in (await guest.list_tools()).tools} == {"alpha__echo", "alpha__add"}
            await anyio.sleep(0.5)
            assert heard == {"guest": ["notifications/tools/list_changed"], "root": []}
