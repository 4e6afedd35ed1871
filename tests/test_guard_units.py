"""The guard's decisions in-process: policy views (rules, members, overrides, caching) and JWT
verification with a PEM public key."""

from __future__ import annotations

import time
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from router.catalog.index import Definitions, Index
from router.catalog.naming import NamingPolicy
from router.guard.agent import Agent, AuthError
from router.guard.guard import Guard
from router.guard.tokens import JwtConfig, JwtVerifier
from router.guard.views import OPEN

pytestmark = pytest.mark.anyio


def index(generation: int = 1) -> Index:
    tools = tuple({"name": name, "description": name} for name in ("read", "write", "drop"))
    servers = {s: Definitions(tools=tools, capabilities={"tools": {}}) for s in ("db", "files")}
    return Index(NamingPolicy(), servers, generation)


def listed(guard: Guard, agent: Agent, idx: Index) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = orjson.loads(guard.view(agent).pages(idx, "tools", 0)[0])
    return items


def test_rules_from_everyone_groups_members_and_the_agent_combine_and_deny_wins() -> None:
    guard = Guard()
    guard.install(
        orjson.dumps({
            "default": "deny",
            "everyone": {"allow": {"tools": ["files__read"]}},
            "groups": {"dba": {"members": ["carol"], "allow": {"servers": ["db"]}, "deny": {"tools": ["*__drop"]}}},
            "agents": {"dave": {"groups": ["dba"], "allow": {"tools": ["files__write"]}}},
            "overrides": [{"tool": "db__read", "description": "Read rows.", "groups": ["dba"]},
                          {"tool": "files__read", "enabled": False, "groups": ["dba"]}],
        }),
        "(test)",
    )  # fmt: skip
    idx = index()
    nobody = {item["name"] for item in listed(guard, Agent("x"), idx)}
    assert nobody == {"files__read"}
    carol = {item["name"]: item for item in listed(guard, Agent("carol"), idx)}  # a member by the policy
    assert set(carol) == {"db__read", "db__write"}  # files__read disabled for dba; drop denied
    assert carol["db__read"]["description"] == "Read rows."
    dave = {item["name"] for item in listed(guard, Agent("dave"), idx)}
    assert dave == {"db__read", "db__write", "files__write"}
    token_group = {item["name"] for item in listed(guard, Agent("erin", frozenset({"dba"}), "jwt"), idx)}
    assert token_group == {"db__read", "db__write"}  # groups from the token count too
    assert guard.view(Agent("carol")) is guard.view(
        Agent("frank", frozenset({"dba"}))
    )  # same scope, one view


def test_a_new_policy_replaces_views_and_a_new_index_replaces_pages() -> None:
    guard = Guard()
    assert guard.view(Agent("x")) is OPEN
    guard.install(b'{"default": "allow", "everyone": {"deny": {"servers": ["db"]}}}', "(one)")
    first = guard.view(Agent("x"))
    assert {item["name"] for item in listed(guard, Agent("x"), index(1))} == {
        "files__read",
        "files__write",
        "files__drop",
    }
    pages = first.pages(index(1), "tools", 0)
    assert first.pages(index(1), "tools", 0) is pages  # cached while the catalog generation holds
    assert first.pages(index(2), "tools", 0) is not pages  # a new generation: filtered again
    guard.install(b'{"default": "deny"}', "(two)")
    assert guard.view(Agent("x")) is not first
    assert listed(guard, Agent("x"), index(2)) == []


async def test_jwt_with_a_pem_public_key_checks_signature_audience_and_expiry() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verifier = JwtVerifier(
        JwtConfig(
            issuer="iss", audience="aud", algorithms=["ES256"], public_key=pem.decode(), groups_claim="scope"
        )
    )
    claims = {"sub": "bot", "iss": "iss", "aud": "aud", "exp": int(time.time()) + 60, "scope": "read write"}
    agent = await verifier.verify(jwt.encode(claims, key, algorithm="ES256"))
    assert agent == Agent("bot", frozenset({"read", "write"}), "jwt")
    for bad in (
        {**claims, "aud": "other"},
        {**claims, "exp": int(time.time()) - 120},
        {k: v for k, v in claims.items() if k != "exp"},
    ):
        with pytest.raises(AuthError):
            await verifier.verify(jwt.encode(bad, key, algorithm="ES256"))
    with pytest.raises(AuthError, match="not accepted"):
        await verifier.verify(
            jwt.encode(claims, "a-secret-that-is-long-enough-for-hs256!!", algorithm="HS256")
        )
