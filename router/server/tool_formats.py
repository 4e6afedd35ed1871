"""The agent's tools in the shapes other tool-calling APIs take: OpenAI `tools`, Anthropic tool
definitions (and MCP's own, unchanged).

**Names.** OpenAI and Anthropic both take tool names matching `^[a-zA-Z0-9_-]{1,64}$`; MCP names
may be longer and hold other characters (`.`, `/`, spaces...). A name that is already valid is
kept as it is. Any other is cleaned (every other character becomes `_`), cut to leave room, and
always given the first 8 hex digits of the SHA-256 of the MCP name (`weather_get_f3a01c9e`), so
two names that clean alike still differ. Should a digest-suffixed name equal a real tool's name
(or another's), it takes 16 digits instead. `FormatNames` is computed from every tool of the
index, not from one agent's view, so a name never depends on who asks; it is rebuilt only when
the index changes. `POST /v1/tools/{name}/call` takes either name: the MCP name is looked up
first (one dictionary lookup, as before), a format name only when that fails.

**Schemas.** Both APIs want an object schema at the top and refuse `oneOf`/`anyOf`/`allOf`/
`enum`/`not` there; OpenAI also refuses an object schema without `properties`. So the
`inputSchema` is passed on as it is, except: `type` is set to `object`; `properties` is added
(empty) when absent; a top-level `oneOf`/`anyOf`/`allOf`/`not`/`enum` is dropped (the server
still validates the arguments it receives, and a refusal comes back as a 400) and the
description says so; `$schema` is dropped. Nested schemas are not touched. `outputSchema`,
`title` and `annotations` have no place in either format and are left out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any, Literal

Format = Literal["mcp", "openai", "anthropic"]
FORMATS: tuple[Format, ...] = ("mcp", "openai", "anthropic")

VALID_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
MAX_NAME = 64
_INVALID = re.compile(r"[^a-zA-Z0-9_-]")
DROPPED_AT_TOP = ("oneOf", "anyOf", "allOf", "not", "enum")
ADAPTED_NOTE = "(The arguments have further constraints the server checks: {}.)"


def _suffixed(name: str, digits: int) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest()[:digits]
    cleaned = _INVALID.sub("_", name)[: MAX_NAME - digits - 1] or "tool"
    return f"{cleaned}_{digest}"


class FormatNames:
    """MCP tool name <-> a name OpenAI and Anthropic accept, for one index's tools."""

    def __init__(self, mcp_names: Iterable[str]) -> None:
        names = sorted(set(mcp_names))
        valid = {name for name in names if VALID_NAME.fullmatch(name)}
        self.outward: dict[str, str] = {name: name for name in valid}
        taken = set(valid)
        for name in names:
            if name in valid:
                continue
            candidate = _suffixed(name, 8)
            if candidate in taken:
                candidate = _suffixed(name, 16)
            taken.add(candidate)
            self.outward[name] = candidate
        self.inward: dict[str, str] = {out: name for name, out in self.outward.items() if out != name}

    def format_name(self, mcp_name: str) -> str:
        """A tool's name in both formats; a name outside the index (the search meta-tools) is
        kept when valid, as an index name is, so that it can be called by it."""
        known = self.outward.get(mcp_name)
        if known is not None:
            return known
        return mcp_name if VALID_NAME.fullmatch(mcp_name) else _suffixed(mcp_name, 8)

    def mcp_name(self, format_name: str) -> str | None:
        """The MCP name a format name stands for (None when it is not a changed name)."""
        return self.inward.get(format_name)


def adapted_schema(schema: Any) -> tuple[dict[str, Any], list[str]]:
    """An input schema both APIs take, and the top-level keywords that had to go."""
    adapted = dict(schema) if isinstance(schema, dict) else {}
    dropped = [key for key in DROPPED_AT_TOP if key in adapted]
    for key in (*dropped, "$schema"):
        adapted.pop(key, None)
    adapted["type"] = "object"
    if not isinstance(adapted.get("properties"), dict):
        adapted["properties"] = {}
    return adapted, dropped


def _description(tool: dict[str, Any], dropped: list[str]) -> str:
    description = str(tool.get("description") or tool.get("title") or "")
    if dropped:
        note = ADAPTED_NOTE.format(", ".join(dropped))
        description = f"{description} {note}" if description else note
    return description


def formatted(tools: list[dict[str, Any]], fmt: Format, names: FormatNames) -> list[dict[str, Any]]:
    """The MCP tool definitions `tools` in format `fmt`."""
    if fmt == "mcp":
        return tools
    out: list[dict[str, Any]] = []
    for tool in tools:
        schema, dropped = adapted_schema(tool.get("inputSchema"))
        name = names.format_name(tool["name"])
        description = _description(tool, dropped)
        if fmt == "openai":
            function = {"name": name, "description": description, "parameters": schema}
            out.append({"type": "function", "function": function})
        else:
            out.append({"name": name, "description": description, "input_schema": schema})
    return out
