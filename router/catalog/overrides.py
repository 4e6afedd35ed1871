"""Tool overrides: what the router changes about a tool as it shows it and forwards calls to it.

An override (an entry of the policy document's `overrides`) matches tools by a glob over their
exposed names, for everyone or for the listed groups, everywhere or only in the listed
namespaces, and may:

- `enabled: false` hide the tool (like a deny rule);
- `name` expose it under another name (the old one is then unknown), `title`, `description`;
- `annotations` merge into the tool's annotations (e.g. `{"readOnlyHint": true}`);
- `hidden` fix arguments: `{"repo": "acme/web"}` removes `repo` from the exposed `inputSchema`,
  injects it on every call, and refuses a call that sends it;
- `defaults` fill arguments the client left out (shown as the property's `default`, and no
  longer required).

The backend always sees its own tool name and the arguments as completed here. Several
overrides may match one tool: they merge in document order, later fields winning (`annotations`,
`hidden` and `defaults` merge key by key). This module is pure: the model, the merge, and the two
transformations (a definition, a call's arguments); `guard/views.py` decides which overrides
apply to whom.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router.errors import INVALID_PARAMS, RPCError

TOOL_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,128}$")


class Override(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: str = Field(min_length=1, description="Glob over exposed tool names.")
    groups: list[str] = Field(default_factory=list, description="Empty: everyone.")
    namespaces: list[str] = Field(default_factory=list, description="Empty: everywhere (and /mcp).")
    description: str | None = None
    enabled: bool | None = None
    name: str | None = None
    title: str | None = None
    annotations: dict[str, Any] | None = None
    hidden: dict[str, Any] | None = None
    defaults: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _does_something(self) -> Override:
        changes = (self.description, self.enabled, self.name, self.title, self.annotations,
                   self.hidden, self.defaults)  # fmt: skip
        if all(change is None for change in changes):
            raise ValueError(
                "an override needs at least one of `enabled`, `name`, `title`, `description`, "
                "`annotations`, `hidden`, `defaults`"
            )
        if self.name is not None and not TOOL_NAME.match(self.name):
            raise ValueError(
                f"`name` {self.name!r} is not a valid tool name: use 1-128 letters, digits, '_', '-', '.', '/'"
            )
        both = set(self.hidden or ()) & set(self.defaults or ())
        if both:
            raise ValueError(
                f"{', '.join(sorted(both))} cannot be both `hidden` and in `defaults`: a hidden "
                "argument is always the fixed value"
            )
        return self


@dataclass(frozen=True, slots=True)
class Applied:
    """The overrides that apply to one tool for one view, merged."""

    name: str | None = None
    title: str | None = None
    description: str | None = None
    annotations: dict[str, Any] = field(default_factory=dict)
    hidden: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def merge(cls, overrides: list[Override]) -> Applied | None:
        """Merge in order (later wins); None when nothing but `enabled` is set."""
        name = title = description = None
        annotations: dict[str, Any] = {}
        hidden: dict[str, Any] = {}
        defaults: dict[str, Any] = {}
        for o in overrides:
            name = o.name if o.name is not None else name
            title = o.title if o.title is not None else title
            description = o.description if o.description is not None else description
            annotations.update(o.annotations or {})
            hidden.update(o.hidden or {})
            defaults.update(o.defaults or {})
        for key in hidden:
            defaults.pop(key, None)
        applied = cls(name, title, description, annotations, hidden, defaults)
        return None if applied == cls() else applied

    @property
    def changes_arguments(self) -> bool:
        return bool(self.hidden or self.defaults)

    def present(self, tool: dict[str, Any]) -> dict[str, Any]:
        """The tool's definition as the agent sees it."""
        shown = dict(tool)
        if self.name is not None:
            shown["name"] = self.name
        if self.title is not None:
            shown["title"] = self.title
        if self.description is not None:
            shown["description"] = self.description
        if self.annotations:
            # definitions are well-formed (router/catalog/wellformed.py): annotations an object
            shown["annotations"] = {**tool.get("annotations", {}), **self.annotations}
        if self.changes_arguments:
            shown["inputSchema"] = self._schema(tool["inputSchema"])
        return shown

    def _schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        properties = dict(schema.get("properties", {}))
        for key in self.hidden:
            properties.pop(key, None)
        for key, value in self.defaults.items():
            if isinstance(properties.get(key), dict):
                properties[key] = {**properties[key], "default": value}
        out = {**schema, "properties": properties}
        if "required" in schema:
            out["required"] = [
                r for r in schema["required"] if r not in self.hidden and r not in self.defaults
            ]
        return out

    def arguments(self, exposed: str, arguments: Any) -> dict[str, Any]:
        """The arguments the backend gets: defaults filled, hidden ones fixed. A client that sends
        a hidden argument is refused (it cannot see it, so sending it is a mistake to surface)."""
        given: dict[str, Any] = arguments if isinstance(arguments, dict) else {}
        sent = sorted(key for key in self.hidden if key in given)
        if sent:
            raise RPCError(
                INVALID_PARAMS,
                f"tool {exposed!r}: argument {', '.join(repr(k) for k in sent)} is fixed by the "
                "router and may not be sent; call it without",
                {"name": exposed, "fixed": sent},
            )
        return {**self.defaults, **given, **self.hidden}
