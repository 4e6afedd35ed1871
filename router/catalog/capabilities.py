"""Capabilities: one exposed tool backed by tools of several servers that do the same job.

Declared in the `capabilities` section of the policy document (the one loader and validation
standard of `guard/policy_document.py`):

    "capabilities": {
      "web_search": {
        "description": "Search the web.", "strategy": "fastest",
        "providers": [
          {"tool": "brave__search", "rename": {"query": "q"}, "constants": {"count": 5}},
          {"tool": "exa__search", "drop": ["safe"], "cost": 2.0}]}}

The exposed tool's `inputSchema` is the capability's own `inputSchema` or, without one, the first
provider's. A call goes to one provider at a time, in the strategy's order (`relay/capabilities.py`
has the order and the failover rules); each provider's arguments are the client's, with `rename`
(exposed name -> provider's name), `constants` (set on every call) and `drop` (removed) applied.

`suggest` is the pure half of `toolmesh capabilities suggest`: tools on different servers whose
names and descriptions look alike, offered to an operator, never applied.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router.catalog.overrides import TOOL_NAME

Strategy = Literal["priority", "fastest", "cheapest", "healthiest"]


class ProviderSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: str = Field(min_length=1, description="The provider tool's exposed catalog name.")
    rename: dict[str, str] = Field(default_factory=dict, description="Exposed argument -> provider's.")
    constants: dict[str, Any] = Field(default_factory=dict, description="Arguments set on every call.")
    drop: list[str] = Field(default_factory=list, description="Arguments removed before the call.")
    cost: float = Field(default=1.0, ge=0, description="Weight for the `cheapest` strategy.")

    def arguments(self, given: Any) -> dict[str, Any]:
        """The client's arguments as this provider takes them."""
        arguments: dict[str, Any] = given if isinstance(given, dict) else {}
        if not (self.rename or self.constants or self.drop):
            return arguments
        dropped = set(self.drop)
        mapped = {self.rename.get(key, key): value for key, value in arguments.items() if key not in dropped}
        return {**mapped, **self.constants}


class CapabilitySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    title: str | None = None
    description: str | None = None
    strategy: Strategy = "priority"
    input_schema: dict[str, Any] | None = Field(default=None, alias="inputSchema")
    providers: list[ProviderSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> CapabilitySpec:
        tools = [p.tool for p in self.providers]
        if len(set(tools)) != len(tools):
            raise ValueError("a provider tool is listed twice in `providers`; list each once")
        return self


def valid_name(name: str) -> bool:
    return TOOL_NAME.match(name) is not None


# -- suggestions --------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "for",
        "and",
        "or",
        "in",
        "on",
        "by",
        "with",
        "from",
        "is",
        "are",
        "this",
        "that",
        "it",
        "as",
        "be",
    ]
)


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def suggest(
    tools: list[dict[str, Any]], separator: str = "__", threshold: float = 0.5
) -> list[dict[str, Any]]:
    """Groups of tools on different servers that look alike: the same tool name after the server
    prefix, or names and descriptions sharing at least `threshold` of their words (Jaccard)."""
    entries = []
    for tool in tools:
        name = str(tool.get("name", ""))
        server, _, bare = name.partition(separator) if separator in name else ("", "", name)
        words = _words(bare.replace("_", " ")) | _words(str(tool.get("description") or ""))
        entries.append((name, server, bare, words))
    groups: list[dict[str, Any]] = []
    used: set[str] = set()
    for i, (name, server, bare, words) in enumerate(entries):
        if name in used:
            continue
        alike = [name]
        for other, other_server, other_bare, other_words in entries[i + 1 :]:
            if other in used or other_server == server:
                continue
            union = words | other_words
            score = len(words & other_words) / len(union) if union else 0.0
            if bare == other_bare or score >= threshold:
                alike.append(other)
        if len(alike) > 1:
            used.update(alike)
            groups.append({"capability": bare, "providers": alike})
    return groups
