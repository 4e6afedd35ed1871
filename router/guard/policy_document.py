"""The policy document: its schema (pydantic), and the parser that refuses a bad one naming the
field and the fix. What the document means is compiled in `policy.py`; what an agent may see
under it is decided in `views.py`. Namespaces, overrides, capabilities and budgets are sections
of this one document, so they share its loader, its sources and its validation."""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from router.catalog.capabilities import CapabilitySpec, ProviderSpec, valid_name
from router.catalog.index import ListKind
from router.catalog.namespaces import NAME_PATTERN, NamespaceSpec
from router.catalog.overrides import Override
from router.errors import ConfigError
from router.guard.budgets import BUDGET_NAME, BudgetSpec

Kind = Literal["tools", "prompts", "resources"]
KIND_OF_LIST: dict[ListKind, Kind] = {
    "tools": "tools",
    "prompts": "prompts",
    "resources": "resources",
    "resourceTemplates": "resources",
}

# -- the document -------------------------------------------------------------------------------


class Selector(BaseModel):
    """What a rule covers: whole servers, or items by glob over exposed names/URIs."""

    model_config = ConfigDict(extra="forbid")

    servers: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)
    resources: list[str] = Field(default_factory=list)
    when: str | None = None  # a CEL condition on the call (guard/conditions.py): tools only

    @model_validator(mode="after")
    def _conditions_cover_tools(self) -> Selector:
        if self.when is not None:
            if not self.when.strip():
                raise ValueError("`when` is empty; write a CEL expression or leave `when` out")
            if self.prompts or self.resources:
                raise ValueError(
                    "a rule with `when` applies to tool calls only; move `prompts`/`resources` "
                    "to a rule without `when`"
                )
        return self


def _one_or_many(value: Any) -> Any:
    """`allow`/`deny` take one rule (an object) or several (a list of objects)."""
    return [value] if isinstance(value, dict) else value


ToolsMode = Literal["all", "search", "auto"]


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow: list[Selector] = Field(default_factory=list)
    deny: list[Selector] = Field(default_factory=list)

    # How `tools/list` is served (docs/tool-search.md): the agent's own entry wins over its
    # groups' (in name order), which win over `everyone`'s; unset falls back to the setting.
    tools_mode: ToolsMode | None = None
    pinned: list[str] = Field(default_factory=list, description="Globs of tools kept listed in search mode.")

    @field_validator("allow", "deny", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        return _one_or_many(value)


class GroupRules(Rules):
    members: list[str] = Field(default_factory=list)


class AgentRules(Rules):
    groups: list[str] = Field(default_factory=list)


class RegoSpec(BaseModel):
    """An external decision on every tool call, in Rego (guard/rego.py)."""

    model_config = ConfigDict(extra="forbid")

    module: str = Field(min_length=1)  # a .rego file's path, or the module's source
    query: str = Field(default="data.toolmesh.allow", pattern=r"^data(\.[A-Za-z_][A-Za-z0-9_]*)+$")
    # A deadline on the decision as the call sees it (a worker process's round trip included).
    budget_ms: float = Field(default=100.0, gt=0, le=1000)


class PolicyDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    default: Literal["allow", "deny"] = "deny"
    everyone: Rules = Field(default_factory=Rules)
    groups: dict[str, GroupRules] = Field(default_factory=dict)
    agents: dict[str, AgentRules] = Field(default_factory=dict)
    overrides: list[Override] = Field(default_factory=list)
    namespaces: dict[str, NamespaceSpec] = Field(default_factory=dict)
    capabilities: dict[str, CapabilitySpec] = Field(default_factory=dict)
    rego: RegoSpec | None = None
    budgets: dict[str, BudgetSpec] = Field(default_factory=dict)  # guard/budgets.py

    @model_validator(mode="after")
    def _known_groups(self) -> PolicyDocument:
        for name, budget in self.budgets.items():
            if not re.match(BUDGET_NAME, name):
                raise ValueError(
                    f"budgets.{name!r} is not a usable name: it names the budget in errors and metrics; "
                    "use letters, digits, '_', '-' (at most 64, starting with a letter or digit)"
                )
            if budget.group is not None and budget.group not in self.groups:
                raise ValueError(
                    f"budgets.{name}.group names unknown group {budget.group!r}{_close(budget.group, self.groups)}"
                )
        for name in self.capabilities:
            if not valid_name(name):
                raise ValueError(
                    f"capabilities.{name!r} is not a valid tool name: use 1-128 letters, digits, '_', '-', '.', '/'"
                )
        for name in self.namespaces:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(
                    f"namespaces.{name!r} is not a usable name: it is a path segment of /mcp/{{name}}; "
                    "use letters, digits, '_', '.', '-' (at most 64, starting with a letter or digit)"
                )
        for agent, rules in self.agents.items():
            for group in rules.groups:
                if group not in self.groups:
                    raise ValueError(
                        f"agents.{agent}.groups names unknown group {group!r}{_close(group, self.groups)}"
                    )
        return self


def _close(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return (
        f"; did you mean {close[0]!r}?"
        if close
        else f"; define it under `groups` (known: {', '.join(choices) or 'none'})"
    )


def parse_policy(data: bytes, source: str) -> PolicyDocument:
    """Parse and validate, or raise ConfigError naming the exact field and the fix."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"policy {source}", f"not valid JSON: {exc}", "fix the JSON syntax") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"policy {source}", "must be a JSON object", 'e.g. {"default": "deny", "groups": {}}'
        )
    try:
        return PolicyDocument.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _where(first["loc"], raw)
        fix = "see docs/security.md for the policy format"
        if first["type"] == "extra_forbidden":
            options = _fields_at(first["loc"][:-1])
            close = difflib.get_close_matches(str(first["loc"][-1]), options, n=1)
            fix = f"did you mean {close[0]!r}?" if close else f"known fields here: {', '.join(options)}"
        raise ConfigError(f"policy {source}, field '{where}'", first["msg"], fix) from None


def _where(location: tuple[int | str, ...], raw: Any) -> str:
    """A field's place as the document's author wrote it: `groups.ops.allow.1.when`, or
    `groups.ops.allow.when` where `allow` is one rule (an object, not a list)."""
    out, node = "", raw
    for part in location:
        if isinstance(part, int) and isinstance(node, dict):  # one rule, read as a list of one
            continue
        out += f".{part}" if out else str(part)
        node = _child(node, part)
    return out or "document"


def _child(node: Any, part: int | str) -> Any:
    if isinstance(node, dict):
        return node.get(str(part))
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _fields_at(location: tuple[int | str, ...]) -> list[str]:
    """The fields the model at `location` in the document accepts."""
    model: type[BaseModel]
    if not location:
        model = PolicyDocument
    elif location[-1] in ("allow", "deny") or (len(location) > 1 and location[-2] in ("allow", "deny")):
        model = Selector
    elif location[0] == "overrides":
        model = Override
    elif location[0] == "budgets":
        model = BudgetSpec
    elif location[0] == "namespaces":
        model = NamespaceSpec
    elif location[0] == "capabilities":
        model = ProviderSpec if "providers" in location else CapabilitySpec
    elif location[0] == "groups":
        model = GroupRules
    elif location[0] == "agents":
        model = AgentRules
    else:
        model = Rules
    return list(model.model_fields)
