"""Namespaces: named cuts of the catalog, each served as a virtual MCP server at `/mcp/{name}`.

A namespace is declared in the `namespaces` section of the policy document (one document, one
loader, one validation standard: `guard/policy_document.py`, `guard/policy_sources.py`):

    "namespaces": {
      "support": {"title": "Support desk", "instructions": "Look up orders before refunding.",
                  "servers": ["tickets", "orders"], "tools": ["*__search", "orders__get"],
                  "groups": ["support"]}}

An item (tool, prompt, resource or resource template, under its exposed name or URI) is in the
namespace when its server matches `servers` (empty: every server) and, for its kind, the globs
of `tools`, `prompts` or `resources` match it (an empty list takes every item of that kind on the
selected servers; `[]` cannot exclude a kind, `["-"]` matches nothing). A namespace is a filter
laid over the agent's View: it never shows what the policy hides. `agents`/`groups`, when given,
limit who may use the namespace at all; anyone else gets the 404 an unknown namespace gets.

This module is pure: the declaration (pydantic) and its compiled matcher; the guard wraps it
around a View (`guard/views.py` `NamespaceView`).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ToolsMode = Literal["all", "search", "auto"]


class NamespaceSpec(BaseModel):
    """One namespace as the policy document declares it."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, description="serverInfo.name clients see; default: the key.")
    instructions: str | None = Field(default=None, description="The `instructions` of initialize.")
    servers: list[str] = Field(default_factory=list, description="Globs over server names; empty: all.")
    tools: list[str] = Field(default_factory=list, description="Globs over exposed tool names.")
    prompts: list[str] = Field(default_factory=list, description="Globs over exposed prompt names.")
    resources: list[str] = Field(default_factory=list, description="Globs over exposed URIs and templates.")
    agents: list[str] = Field(default_factory=list, description="Only these agents (with `groups`).")
    groups: list[str] = Field(default_factory=list, description="Only members of these groups.")
    tools_mode: ToolsMode | None = Field(default=None, description="Discovery mode inside it.")
    pinned: list[str] = Field(
        default_factory=list,
        description="Globs of tools kept listed in search mode inside it (with the agent's).",
    )


def _globs(patterns: list[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in patterns))


@dataclass(frozen=True, slots=True)
class Namespace:
    """A compiled namespace: who may enter it and which items it holds."""

    name: str
    spec: NamespaceSpec
    servers: re.Pattern[str] | None
    items: dict[str, re.Pattern[str] | None]

    @classmethod
    def of(cls, name: str, spec: NamespaceSpec) -> Namespace:
        items = {"tools": _globs(spec.tools), "prompts": _globs(spec.prompts),
                 "resources": _globs(spec.resources)}  # fmt: skip
        return cls(name, spec, _globs(spec.servers), items)

    @property
    def title(self) -> str:
        return self.spec.title or self.name

    def admits(self, agent: str, groups: frozenset[str]) -> bool:
        """May this agent use the namespace at all?"""
        spec = self.spec
        if not spec.agents and not spec.groups:
            return True
        return agent in spec.agents or not groups.isdisjoint(spec.groups)

    def holds(self, kind: str, server: str, name: str) -> bool:
        """Is the item (`kind` one of tools, prompts, resources) in this namespace?"""
        if self.servers is not None and self.servers.match(server) is None:
            return False
        pattern = self.items[kind]
        return pattern is None or pattern.match(name) is not None
