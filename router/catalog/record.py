"""The service record: how to reach one backend instance.

This is the single model that every catalog source produces and the registrar writes; the
router reads nothing else. A *server* is a logical name (its tools are exposed under it); an
*instance* is one reachable copy of it. The static file gives one instance per server; a registry
may hold several.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from router.catalog.policy import LimitRule, ServerPolicy

SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Transport = Literal["http", "stdio"]
UpstreamProtocol = Literal["auto", "legacy", "2026-07-28"]


class BackendRecord(BaseModel):
    """One backend instance; hashable and frozen so catalog diffs are set operations."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    server: str = Field(description="Logical server name; the namespace of its tools.")
    instance_id: str = Field(description="Unique within the server; the static file uses the server name.")
    transport: Transport
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    command: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    timeout: float | None = Field(None, description="Seconds per request; the router default if unset.")
    protocol: UpstreamProtocol | None = None
    tags: tuple[str, ...] = ()
    policy: ServerPolicy = Field(default=ServerPolicy())

    @property
    def key(self) -> tuple[str, str]:
        return (self.server, self.instance_id)

    def describe(self) -> str:
        """Where the instance lives, without secrets (headers and env are left out)."""
        if self.transport == "http":
            return f"{self.url}"
        return " ".join([self.command or "", *self.args]).strip()


class Catalog(BaseModel):
    """A whole snapshot of what exists: server name -> its instances."""

    model_config = ConfigDict(frozen=True)

    servers: dict[str, tuple[BackendRecord, ...]] = Field(default_factory=dict)
    limits: tuple[LimitRule, ...] = ()

    def records(self) -> set[BackendRecord]:
        return {record for instances in self.servers.values() for record in instances}
