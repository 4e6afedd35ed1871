"""Who a request speaks for, once authenticated: an `Agent`, or an `AuthError` saying why not.

A module of its own so that `identity.py` (API keys, the `Authenticator`) and `tokens.py` (JWT)
both build on it without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

AuthFailure = Literal["missing", "invalid_key", "revoked_key", "invalid_token", "expired", "unknown_kid"]


@dataclass(frozen=True, slots=True)
class Agent:
    """An authenticated caller (or the anonymous one). `groups` drive policy."""

    id: str
    groups: frozenset[str] = frozenset()
    method: Literal["anonymous", "api_key", "jwt"] = "anonymous"
    # A verified JWT's claims, for policy conditions (guard/conditions.py); not part of equality.
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def anonymous(self) -> bool:
        return self.method == "anonymous"


ANONYMOUS = Agent("anonymous")


class AuthError(Exception):
    """Authentication failed; `reason` is a closed set (it becomes a metric label)."""

    def __init__(self, reason: AuthFailure, description: str) -> None:
        self.reason, self.description = reason, description
        super().__init__(description)
