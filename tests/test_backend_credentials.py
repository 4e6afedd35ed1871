"""Per-agent backend credentials: a backend entry maps agents and groups to their own credentials
(from the environment or a file), so a call made for the finance group reaches the backend with
the finance key, another agent's with the entry's own; a real backend records what it got."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from router.catalog.config_file import parse_catalog
from router.errors import ConfigError
from tests.conftest import run_router
from tests.guard_support import client_with, guarded_env
from tests.support.procs import sample_server_http
from tests.support.registries import ETCD_BINARY, etcd_server

pytestmark = pytest.mark.anyio


async def test_calls_use_the_credential_of_their_agent_or_group(tmp_path: Path) -> None:
    keys, env = guarded_env(
        tmp_path, {"fiona": ["finance"], "carl": ["support"], "olga": ["ops"]}, {"default": "allow"}
    )
    (tmp_path / "carl.key").write_text("carl-key\n")
    env |= {"DEFAULT_KEY": "default-key", "FINANCE_KEY": "finance-key"}
    log = tmp_path / "auth.jsonl"
    with sample_server_http("svc", log_dir=tmp_path, extra_args=["--auth-log", str(log)]) as (url, _):
        entry = {
            "url": url,
            "bearerTokenEnv": "DEFAULT_KEY",
            "credentials": [
                {"groups": ["finance"], "bearerTokenEnv": "FINANCE_KEY"},
                {
                    "agents": ["carl"],
                    "headers": {"Authorization": "Bearer ${file:" + str(tmp_path / "carl.key") + "}"},
                },
            ],
        }
        with run_router(tmp_path, {"svc": entry}, env=env) as router:
            for agent in ["fiona", "carl", "olga"]:
                async with client_with(router.mcp_url, keys[agent], "legacy") as client:
                    assert not (await client.call_tool("svc__echo", {"text": f"from {agent}"})).is_error
            async with client_with(router.mcp_url, keys["fiona"], "2026-07-28") as client:
                assert not (await client.call_tool("svc__echo", {"text": "modern fiona"})).is_error
    with anyio.fail_after(5):
        while not log.exists():
            await anyio.sleep(0.1)
    seen: dict[str, list[str]] = {}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        body = json.loads(record["body"]) if record["body"] else {}
        text = (body.get("params") or {}).get("arguments", {}).get("text") if isinstance(body, dict) else None
        if text:
            seen.setdefault(text, []).append(record["authorization"])
        else:
            assert record["authorization"] == "Bearer default-key", "the router's own requests"
    assert seen == {
        "from fiona": ["Bearer finance-key"],
        "modern fiona": ["Bearer finance-key"],
        "from carl": ["Bearer carl-key"],
        "from olga": ["Bearer default-key"],
    }


def test_credentials_are_validated() -> None:
    with pytest.raises(ConfigError, match="agents"):
        parse_catalog(
            b'{"mcpServers": {"s": {"url": "http://h/mcp", "credentials": [{"headers": {"A": "b"}}]}}}'
        )
    with pytest.raises(ConfigError, match="headers"):
        parse_catalog(b'{"mcpServers": {"s": {"url": "http://h/mcp", "credentials": [{"groups": ["g"]}]}}}')
    with pytest.raises(ConfigError, match="stdio"):
        parse_catalog(
            b'{"mcpServers": {"s": {"command": "x", "credentials": [{"groups": ["g"], "headers": {"A": "b"}}]}}}'
        )
    with pytest.raises(ConfigError, match="NOPE_NOT_SET"):
        parse_catalog(
            b'{"mcpServers": {"s": {"url": "http://h/mcp", "credentials": [{"groups": ["g"], "bearerTokenEnv": "NOPE_NOT_SET"}]}}}'
        )
    catalog = parse_catalog(
        b'{"mcpServers": {"s": {"url": "http://h/mcp", "credentials": [{"groups": ["g"], "headers": {"X-Key": "s3cr3t-value"}}]}}}'
    )
    policy = next(iter(catalog.records())).policy
    credential = policy.credential_for("a", frozenset({"g"}))
    assert credential is not None and dict(credential.headers) == {"X-Key": "s3cr3t-value"}
    assert policy.credential_for("a", frozenset({"h"})) is None
    assert "s3cr3t-value" not in repr(policy)
    with pytest.raises(ConfigError, match="etcd://host:port/key"):
        parse_catalog(
            b'{"mcpServers": {"s": {"url": "http://h/mcp", "credentials": [{"groups": ["g"], "bearerTokenKey": "vault:x"}]}}}'
        )


async def test_a_credential_kept_in_etcd_is_read_when_needed_and_never_replaced(tmp_path: Path) -> None:
    keys, env = guarded_env(tmp_path, {"fiona": ["finance"]}, {"default": "allow"})
    env |= {"DEFAULT_KEY": "default-key", "TOOLMESH_CREDENTIAL_KEY_TTL": "0.5"}
    log = tmp_path / "auth.jsonl"
    with (
        etcd_server() as etcd,
        sample_server_http("svc", log_dir=tmp_path, extra_args=["--auth-log", str(log)]) as (url, _),
    ):
        address = etcd.url.removeprefix("http://")
        ctl = [str(ETCD_BINARY.parent / "etcdctl"), f"--endpoints={address}"]

        def etcdctl(*args: str) -> None:
            subprocess.run([*ctl, *args], check=True, capture_output=True, timeout=30)

        etcdctl("put", "secrets/finance", "etcd-key-1")
        entry = {
            "url": url,
            "bearerTokenEnv": "DEFAULT_KEY",
            "credentials": [{"groups": ["finance"], "bearerTokenKey": f"etcd://{address}/secrets/finance"}],
        }
        with run_router(tmp_path, {"svc": entry}, env=env) as router:
            async with client_with(router.mcp_url, keys["fiona"], "legacy") as client:
                assert not (await client.call_tool("svc__echo", {"text": "one"})).is_error
                etcdctl("put", "secrets/finance", "etcd-key-2")
                await anyio.sleep(1.0)  # past the cache's ttl
                assert not (await client.call_tool("svc__echo", {"text": "two"})).is_error
                etcdctl("del", "secrets/finance")
                await anyio.sleep(1.0)
                with pytest.raises(MCPError) as caught:
                    await client.call_tool("svc__echo", {"text": "three"})
                assert "credential" in caught.value.error.message
    seen = {}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        body = json.loads(record["body"]) if record["body"] else {}
        text = (body.get("params") or {}).get("arguments", {}).get("text") if isinstance(body, dict) else None
        if text:
            seen[text] = record["authorization"]
    assert seen == {"one": "Bearer etcd-key-1", "two": "Bearer etcd-key-2"}, "three never went out"
