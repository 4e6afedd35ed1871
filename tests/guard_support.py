"""Helpers for the guard tests: keys, policies, and SDK clients that carry a bearer token."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

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
