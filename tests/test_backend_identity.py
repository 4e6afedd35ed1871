"""Identity for backends: a real backend that opted in verifies the router's JWT through the
router's JWKS endpoint (PyJWT, as docs/security.md shows), learns who each call is for, and
rejects a forged or expired token; keys rotate while calls are in flight without losing one."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from router.catalog.config_file import parse_catalog
from router.errors import ConfigError
from tests.conftest import run_router
from tests.guard_support import client_with, guarded_env
from tests.support.cluster import cluster
from tests.support.procs import sample_server_http

pytestmark = pytest.mark.anyio

POLICY = {"default": "allow", "namespaces": {"desk": {"servers": ["svc"]}}}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


async def direct(url: str, token: str | None) -> int:
    headers = {**MCP_HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}
    async with aiohttp.ClientSession() as http, http.post(url, json=INIT, headers=headers) as response:
        return response.status


async def test_a_backend_verifies_the_routers_token_and_rejects_forged_and_expired_ones(
    tmp_path: Path,
) -> None:
    keys, env = guarded_env(tmp_path, {"alice": ["finance", "ops"]}, POLICY)
    env |= {"TOOLMESH_IDENTITY_TOKEN_SECONDS": "5"}
    log = tmp_path / "claims.jsonl"
    with run_router(tmp_path, {}, env=env) as router:
        verify = ["--verify-jwks", f"{router.base_url}/.well-known/jwks.json", "--claims-log", str(log)]
        with sample_server_http("svc", log_dir=tmp_path, extra_args=verify) as (url, _):
            assert await direct(url, None) == 401
            router.write_catalog({"svc": {"url": url, "identity": True}})
            async with client_with(router.mcp_url, keys["alice"], "legacy") as client:
                with anyio.fail_after(20):
                    while "svc__echo" not in {t.name for t in (await client.list_tools()).tools}:
                        await anyio.sleep(0.2)
                result = await client.call_tool("svc__echo", {"text": "hi"})
                assert not result.is_error
            async with client_with(f"{router.mcp_url}/desk", keys["alice"], "2026-07-28") as client:
                assert not (await client.call_tool("svc__echo", {"text": "in desk"})).is_error
            seen = records(log)
            calls = [r for r in seen if r["claims"]["sub"] == "alice"]
            assert len(calls) >= 2, seen
            claims = calls[0]["claims"]
            assert claims["iss"] == "toolmesh" and claims["aud"] == "svc"
            assert claims["groups"] == ["finance", "ops"] and claims["rid"]
            assert 0 < claims["exp"] - claims["iat"] <= 5
            assert any(r["claims"].get("namespace") == "desk" for r in calls)
            assert any(r["claims"]["sub"] == "toolmesh" for r in seen), "the router's own requests"

            token = calls[-1]["token"]
            assert await direct(url, token) != 401  # the genuine token, replayed in time
            head, payload, signature = token.split(".")
            body = json.loads(base64.urlsafe_b64decode(payload + "=="))
            tampered = base64.urlsafe_b64encode(json.dumps({**body, "sub": "admin"}).encode()).rstrip(b"=")
            assert await direct(url, f"{head}.{tampered.decode()}.{signature}") == 401
            own_key = ec.generate_private_key(ec.SECP256R1())
            forged = jwt.encode({**body, "sub": "admin"}, own_key, "ES256", headers={"kid": calls[-1]["kid"]})
            assert await direct(url, forged) == 401
            other_audience = [r for r in seen if r["claims"]["aud"] != "svc"]
            assert not other_audience
            await anyio.sleep(max(0.0, body["exp"] - time.time()) + 1.5)
            assert await direct(url, token) == 401, "expired"


async def test_keys_rotate_with_calls_in_flight_and_none_is_lost(tmp_path: Path) -> None:
    keys, env = guarded_env(tmp_path, {"alice": ["finance"]}, POLICY)
    env |= {"TOOLMESH_IDENTITY_KEY_ROTATION": "2", "TOOLMESH_IDENTITY_TOKEN_SECONDS": "5"}
    log = tmp_path / "claims.jsonl"
    with run_router(tmp_path, {}, env=env) as router:
        verify = ["--verify-jwks", f"{router.base_url}/.well-known/jwks.json", "--claims-log", str(log)]
        with sample_server_http("svc", log_dir=tmp_path, extra_args=verify) as (url, _):
            router.write_catalog({"svc": {"url": url, "identity": True}})
            failures: list[str] = []
            done = 0

            async def caller(mode: str) -> None:
                nonlocal done
                async with client_with(router.mcp_url, keys["alice"], mode) as client:
                    with anyio.fail_after(20):
                        while "svc__slow" not in {t.name for t in (await client.list_tools()).tools}:
                            await anyio.sleep(0.2)
                    with anyio.move_on_after(7):
                        while True:
                            result = await client.call_tool("svc__slow", {"seconds": 0.3})
                            if result.is_error:
                                failures.append(str(result.content))
                            done += 1

            async with anyio.create_task_group() as tg:
                for mode in ["legacy", "2026-07-28", "legacy"]:
                    tg.start_soon(caller, mode)
            assert not failures and done > 20
            kids = {r["kid"] for r in records(log) if r["claims"]["sub"] == "alice"}
            assert len(kids) >= 3, "several keys signed calls: they rotated meanwhile"


def test_identity_is_refused_where_it_cannot_work() -> None:
    with pytest.raises(ConfigError, match="identity"):
        parse_catalog(b'{"mcpServers": {"s": {"command": "x", "identity": true}}}', "test")
    with pytest.raises(ConfigError, match="another header"):
        parse_catalog(
            b'{"mcpServers": {"s": {"url": "http://h/mcp", "headers": {"Authorization": "k"}, "identity": true}}}',
            "test",
        )
    catalog = parse_catalog(
        b'{"mcpServers": {"s": {"url": "http://h/mcp", "headers": {"Authorization": "k"},'
        b' "identity": {"header": "X-Toolmesh-Identity", "audience": "api://s"}}}}',
        "test",
    )
    identity = next(iter(catalog.records())).policy.identity
    assert identity is not None and identity.audience == "api://s"


async def test_replicas_share_the_keys_through_nats(tmp_path: Path) -> None:
    """A backend that knows one replica's JWKS verifies the tokens of every replica, across
    rotations (each replica may be the one that rotates)."""
    keys, env = guarded_env(tmp_path, {"alice": ["finance"]}, POLICY)
    env |= {"TOOLMESH_IDENTITY_KEY_ROTATION": "2", "TOOLMESH_IDENTITY_TOKEN_SECONDS": "5"}
    log = tmp_path / "claims.jsonl"
    with cluster(tmp_path, {}, replicas=2, env=env) as group:
        first, second = group.replicas
        verify = ["--verify-jwks", f"{first.base_url}/.well-known/jwks.json", "--claims-log", str(log)]
        with sample_server_http("svc", log_dir=tmp_path, extra_args=verify) as (url, _):
            group.catalog.write_text(json.dumps({"mcpServers": {"svc": {"url": url, "identity": True}}}))
            async with aiohttp.ClientSession() as http:
                sets = []
                for replica in group.replicas:
                    async with http.get(f"{replica.base_url}/.well-known/jwks.json") as response:
                        sets.append({key["kid"] for key in (await response.json())["keys"]})
                assert sets[0] & sets[1], "the replicas publish one key set"
            failures = 0
            for replica in [first, second] * 3:
                async with client_with(replica.mcp_url, keys["alice"], "legacy") as client:
                    with anyio.fail_after(20):
                        while "svc__echo" not in {t.name for t in (await client.list_tools()).tools}:
                            await anyio.sleep(0.2)
                    for _ in range(5):
                        failures += (await client.call_tool("svc__echo", {"text": "x"})).is_error
                        await anyio.sleep(0.2)
            assert failures == 0
            kids = {r["kid"] for r in records(log) if r["claims"]["sub"] == "alice"}
            assert len(kids) >= 2
