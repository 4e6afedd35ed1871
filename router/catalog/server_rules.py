"""What the operator says about how a server may be called: timeouts, retries, limits.

Kept apart from the service record's "how to reach it" so catalog sources that know nothing of
policy (a registry) simply leave the defaults. Every model is frozen and hashable: records are
compared as values when the catalog is diffed.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

RetryMode = Literal["never", "safe"]
OverLimit = Literal["truncate", "refuse"]


class Cost(BaseModel):
    """What a call costs in the operator's own units, for usage metering (router/observe/usage.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_call: float = Field(default=0.0, ge=0, description="Units per call that returned a result.")
    per_kb: float = Field(default=0.0, ge=0, description="Units per 1,024 bytes of result.")

    def of(self, response_bytes: int) -> float:
        return self.per_call + self.per_kb * response_bytes / 1024


class ToolPolicy(BaseModel):
    """Per-tool overrides of the server's policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout: float | None = Field(default=None, gt=0, description="Seconds this tool has to answer.")
    retry: RetryMode | None = Field(
        default=None,
        description="`safe`: may be sent again to another instance after a failure that reached it.",
    )
    max_result_bytes: int | None = Field(
        default=None, ge=0, description="Largest result (JSON bytes) this tool may return; 0: no limit."
    )
    max_result_tokens: int | None = Field(
        default=None, ge=0, description="Largest result in estimated tokens (4 bytes each); 0: no limit."
    )
    over_limit: OverLimit | None = Field(
        default=None, description="A result over the limit: `truncate` (cut, with a marker) or `refuse`."
    )
    cost: Cost | None = Field(default=None, description="What a call costs, for usage metering.")


class BackendIdentity(BaseModel):
    """Send this backend a JWT the router signs saying who each call is for (guard/backend_tokens.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    audience: str | None = Field(default=None, description="The token's `aud`; the server's name if unset.")
    header: str = Field(
        default="Authorization", description="Header carrying it (`Bearer <jwt>` in Authorization)."
    )


def split_key(url: str) -> tuple[str, str, str]:
    """`consul://host:port/path` or `etcd://host:port/key` -> (kind, store address, key)."""
    parts = urlsplit(url)
    if parts.scheme not in ("consul", "etcd") or not parts.netloc or len(parts.path) < 2:
        raise ValueError(f"{url!r} is not consul://host:port/key or etcd://host:port/key")
    return parts.scheme, f"http://{parts.netloc}", parts.path[1:]


class Credential(BaseModel):
    """Headers (the backend's credentials) used instead of the entry's own for calls made for
    these agents or agents in these groups (the first matching rule wins)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agents: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = Field(default=(), repr=False)
    # A bearer token kept in Consul or etcd: consul://host:port/path or etcd://host:port/key.
    key: str | None = None

    def applies(self, agent: str, groups: frozenset[str]) -> bool:
        return agent in self.agents or not groups.isdisjoint(self.groups)


class ServerPolicy(BaseModel):
    """Per-server call policy; the defaults mean "as the router's settings say"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trusted: bool = Field(
        default=False, description="Believe the server's readOnlyHint/idempotentHint annotations for retries."
    )
    tools: tuple[tuple[str, ToolPolicy], ...] = ()
    identity: BackendIdentity | None = None
    credentials: tuple[Credential, ...] = Field(default=(), repr=False)

    def credential_for(self, agent: str, groups: frozenset[str]) -> Credential | None:
        for credential in self.credentials:
            if credential.applies(agent, groups):
                return credential
        return None

    max_concurrency: int | None = Field(default=None, ge=1, description="Calls in flight per instance.")
    max_queue: int | None = Field(default=None, ge=0, description="Calls waiting for a slot per instance.")
    max_result_bytes: int | None = Field(
        default=None, ge=0, description="Largest tool result (JSON bytes) of this server; 0: no limit."
    )
    max_result_tokens: int | None = Field(
        default=None, ge=0, description="Largest tool result in estimated tokens (4 bytes each); 0: no limit."
    )
    over_limit: OverLimit | None = Field(
        default=None, description="A result over the limit: `truncate` (cut, with a marker) or `refuse`."
    )
    cost: Cost | None = Field(default=None, description="What a call costs, for usage metering.")

    def tool(self, name: str) -> ToolPolicy | None:
        for tool, policy in self.tools:
            if tool == name:
                return policy
        return None


class LimitRule(BaseModel):
    """One rate limit: `rate` calls per `period` seconds with bursts of `burst`, per scope.

    `server` and `tool` narrow what the rule counts (None: every server / tool); `per` lists the
    dimensions that get a bucket each (`agent`, `server`, `tool`). A rule with `per: []` is one
    global bucket for everything it matches.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: float = Field(gt=0)
    period: float = Field(1.0, gt=0)
    burst: int | None = Field(
        default=None, ge=1, description="Calls admitted at once; default: `rate`, at least 1."
    )
    server: str | None = None
    tool: str | None = None
    per: tuple[Literal["agent", "server", "tool"], ...] = ()

    @property
    def capacity(self) -> int:
        return self.burst if self.burst is not None else max(1, int(self.rate))

    @property
    def interval(self) -> float:
        """Seconds between two admitted calls at the steady rate (GCRA's emission interval)."""
        return self.period / self.rate

    def describe(self) -> str:
        scope = "/".join(part for part in (self.server, self.tool) if part) or "all"
        per = f" per {'+'.join(self.per)}" if self.per else ""
        return f"{self.rate:g}/{self.period:g}s on {scope}{per}"
