"""Helpers for the guard tests: keys, policies, and SDK clients that carry a bearer token."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp.shared.exceptions import MCPError

from router.errors import POLICY_DENIED
from router.guard.agent import Agent
from router.guard.conditions import CallFacts
from router.guard.guard import Guard
from router.guard.identity import KeyStore


def make_keys(path: Path, agents: dict[str, list[str]]) -> dict[str, str]:
    """Create one API key per agent (with its groups) in the keys file; returns agent -> key."""
    store = KeyStore(path)
    return {agent: store.create(agent, groups)[1] for agent, groups in agents.items()}


def write_policy(path: Path, policy: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(policy))
    temporary.replace(path)


def guarded_env(
    tmp: Path, agents: dict[str, list[str]], policy: dict[str, Any]
) -> tuple[dict[str, str], dict[str, str]]:
    """Keys for `agents` and `policy` written under `tmp`; (agent -> key, the router environment
    that requires them, with audit records written to `tmp/audit.jsonl`)."""
    keys = make_keys(tmp / "keys.json", agents)
    write_policy(tmp / "policy.json", policy)
    env = {
        "TOOLMESH_AUTH_ANONYMOUS": "never",
        "TOOLMESH_AUTH_KEYS_FILE": str(tmp / "keys.json"),
        "TOOLMESH_POLICY_FILE": str(tmp / "policy.json"),
        "TOOLMESH_AUDIT_SINK": "file",
        "TOOLMESH_AUDIT_FILE": str(tmp / "audit.jsonl"),
    }
    return keys, env


@contextlib.asynccontextmanager
async def client_with(
    url: str, token: str | None, mode: str, *, message_handler: Any = None, **headers: str
) -> AsyncIterator[Client]:
    """An SDK client whose every HTTP request carries `Authorization: Bearer <token>`."""
    extra = {**({"Authorization": f"Bearer {token}"} if token else {}), **headers}
    async with (
        create_mcp_http_client(headers=extra) as http,
        Client(
            streamable_http_client(url, http_client=http),
            mode=mode,  # type: ignore[arg-type]
            message_handler=message_handler,
        ) as client,
    ):
        yield client


def decides_the_documented_rules(guard: Guard) -> None:
    """The three rules docs/security.md writes in CEL and in Rego decide as the docs say, for a
    policy `guard` holds: one support bot's tenant, deletions on prod in Berlin working hours,
    refunds over 100 for finance only."""
    monday_noon = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)  # 12:00 in Berlin
    saturday = datetime(2026, 12, 5, 11, 0, tzinfo=UTC)
    evening = datetime(2026, 12, 7, 19, 0, tzinfo=UTC)

    def decide(groups: set[str], claims: dict[str, Any], server: str, tool: str, arguments: Any,
               namespace: str = "", now: datetime = monday_noon) -> bool:  # fmt: skip
        agent = Agent("a", frozenset(groups), "jwt", claims)
        facts = CallFacts("a", agent.groups, claims, server, tool, f"{server}__{tool}", {}, arguments,
                          namespace, "modern", "mcp", now)  # fmt: skip
        return guard.view(agent).check_call(facts) is None

    bot = {"support-bot"}, {"tenant": "acme"}
    assert decide(*bot, "db", "query", {"tenant": "acme", "sql": "select 1"})
    assert not decide(*bot, "db", "query", {"tenant": "other", "sql": "select 1"})
    assert not decide(*bot, "db", "query", {"sql": "select 1"})
    assert decide({"ops"}, {}, "db", "delete_user", {"id": 1}, "prod", monday_noon)
    assert not decide({"ops"}, {}, "db", "delete_user", {"id": 1}, "prod", saturday)
    assert not decide({"ops"}, {}, "db", "delete_user", {"id": 1}, "prod", evening)
    assert decide({"ops"}, {}, "db", "delete_user", {"id": 1}, "staging", evening)
    assert decide({"agents"}, {}, "billing", "refund", {"amount": 100})
    assert not decide({"agents"}, {}, "billing", "refund", {"amount": 100.5})
    assert decide({"agents", "finance"}, {}, "billing", "refund", {"amount": 5000})
    assert not decide({"agents"}, {}, "billing", "refund", {})


async def denied(call: Any) -> str:
    """The message of a call refused by the policy (-32007); fails if it was not refused so."""
    with pytest.raises(MCPError) as caught:
        await call
    assert caught.value.error.code == POLICY_DENIED
    return caught.value.error.message
