"""Identity: JWT bearer tokens (HS256, RS256 and ES256 from a JWKS URL, issuer and audience
checked, keys rotated), API keys created and revoked with the CLI while the router runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from router.up.processes import free_port
from tests.conftest import run_router
from tests.support.procs import sample_server_stdio_entry

pytestmark = pytest.mark.anyio

ISSUER = "https://issuer.example"
AUDIENCE = "https://toolmesh.example/mcp"
SECRET = "a-shared-secret-of-at-least-32-bytes!!"
BASE = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
PING = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}  # fmt: skip


def token(key: Any, algorithm: str, kid: str | None = None, **overrides: Any) -> str:
    claims = {
        "sub": "agent-7",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int(time.time()) + 300,
        "groups": ["ops"],
    }
    claims.update(overrides)
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


def jwk(public_key: Any, kid: str, algorithm: type[RSAAlgorithm] | type[ECAlgorithm]) -> dict[str, Any]:
    return {**json.loads(algorithm.to_jwk(public_key)), "kid": kid}


async def status_of(http: aiohttp.ClientSession, url: str, bearer: str) -> tuple[int, str]:
    headers = {**BASE, "Authorization": f"Bearer {bearer}"}
    async with http.post(url, json=PING, headers=headers) as response:
        return response.status, response.headers.get("WWW-Authenticate", "")


async def test_jwt_bearer_tokens_are_checked_and_keys_come_from_the_jwks_url(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    published = {
        "keys": [jwk(rsa_key.public_key(), "r1", RSAAlgorithm), jwk(ec_key.public_key(), "e1", ECAlgorithm)]
    }
    fetches: list[float] = []

    async def jwks(request: web.Request) -> web.Response:
        fetches.append(time.monotonic())
        return web.json_response(published)

    app = web.Application()
    app.router.add_get("/jwks.json", jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    env = {
        "TOOLMESH_AUTH_ANONYMOUS": "never",
        "TOOLMESH_AUTH_JWT_ISSUER": ISSUER,
        "TOOLMESH_AUTH_JWT_AUDIENCE": AUDIENCE,
        "TOOLMESH_AUTH_JWT_ALGORITHMS": "HS256,RS256,ES256",
        "TOOLMESH_AUTH_JWT_SECRET": SECRET,
        "TOOLMESH_AUTH_JWKS_URL": f"http://127.0.0.1:{port}/jwks.json",
    }
    try:
        with run_router(tmp_path, {"alpha": sample_server_stdio_entry("alpha")}, env=env) as router:
            url = router.mcp_url
            # New connections each time: the test sleeps past the server's keep-alive below.
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
                assert (await status_of(http, url, token(SECRET, "HS256")))[0] == 200
                assert (await status_of(http, url, token(rsa_key, "RS256", "r1")))[0] == 200
                assert (await status_of(http, url, token(ec_key, "ES256", "e1")))[0] == 200
                assert len(fetches) == 1  # cached
                refused = {
                    "wrong audience": token(SECRET, "HS256", aud="https://elsewhere.example"),
                    "wrong issuer": token(SECRET, "HS256", iss="https://evil.example"),
                    "expired": token(SECRET, "HS256", exp=int(time.time()) - 3600),
                    "wrong key": token(
                        rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256", "r1"
                    ),
                    "wrong secret": token("another-secret-of-at-least-32-bytes!!!", "HS256"),
                    "no subject": token(SECRET, "HS256", sub=""),
                    "alg none": jwt.encode(
                        {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": 2**31}, None, algorithm="none"
                    ),
                }
                for why, bad in refused.items():
                    status, challenge = await status_of(http, url, bad)
                    assert status == 401, why
                    assert 'error="invalid_token"' in challenge and "resource_metadata=" in challenge, why
                assert "expired" in (await status_of(http, url, refused["expired"]))[1]
                # Key rotation: a token with a kid the cache does not know triggers one refetch.
                published["keys"].append(jwk(rotated.public_key(), "r2", RSAAlgorithm))
                await anyio.sleep(5.5)  # the refetch on an unknown kid is rate-limited
                assert (await status_of(http, url, token(rotated, "RS256", "r2")))[0] == 200
                assert len(fetches) == 2
                for _ in range(5):  # junk kids do not make the router hammer the issuer
                    assert (await status_of(http, url, token(rotated, "RS256", "junk")))[0] == 401
                assert len(fetches) <= 3
    finally:
        await runner.cleanup()


async def test_api_keys_are_created_listed_and_revoked_live_with_the_cli(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "router", "keys", "--file", str(keys_file), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    created = cli("create", "--agent", "builder", "--group", "ops")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("tmk_")
    assert key not in keys_file.read_text()  # only its hash is stored
    assert oct(keys_file.stat().st_mode & 0o777) == "0o600"
    key_id = key.split("_")[1]
    listing = cli("list")
    assert key_id in listing.stdout and "builder" in listing.stdout and key not in listing.stdout
    env = {"TOOLMESH_AUTH_ANONYMOUS": "never", "TOOLMESH_AUTH_KEYS_FILE": str(keys_file)}
    with run_router(tmp_path, {"alpha": sample_server_stdio_entry("alpha")}, env=env) as router:
        async with aiohttp.ClientSession() as http:
            assert (await status_of(http, router.mcp_url, key))[0] == 200
            assert (await status_of(http, router.mcp_url, key[:-2] + "xx"))[0] == 401
            revoked = await anyio.to_thread.run_sync(cli, "revoke", key_id)
            assert revoked.returncode == 0, revoked.stderr
            deadline = time.monotonic() + 10
            while (await status_of(http, router.mcp_url, key))[0] != 401:
                assert time.monotonic() < deadline, "revocation not applied within 10 s"
                await anyio.sleep(0.2)
        assert key not in router.process.log_path.read_text()  # the secret never reaches the logs
    unknown = cli("revoke", "nosuchid")
    assert unknown.returncode == 2 and "no such key" in unknown.stderr and key_id in unknown.stderr
