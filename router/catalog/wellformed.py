"""A backend's list items made safe to relay: each checked against MCP's shape once, when listed.

A client validates the lists it receives: the official SDKs parse `tools/list` into typed
models, and one tool whose `annotations` is a string makes the whole list fail there, so one
careless backend would cost every agent every tool. The router is the place to stop that, once
per listing rather than at each of the places that read a definition: an item that lacks what a
reader cannot go without (a tool's `name`, a resource's `uri` and `name`) is left out; an
optional field of the wrong type is dropped and the rest of the item kept, as a lenient reader
would. Each repair is logged with the server and the item, and the number of items repaired or
left out is kept with the server's definitions (`toolmesh_definition_repairs`, the console and
`toolmesh status`), so an operator sees that a backend needs its author's attention.

The check is on what would break a typed reader (types, and the few values the spec enumerates
or bounds: a priority from 0 to 1, an audience of user and assistant), not on meaning: a tool's
schema that refers to itself is valid JSON Schema and passes; tool search bounds its own walk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

log = logging.getLogger("toolmesh.catalog")

Check = Callable[[Any], bool]


class Checked(NamedTuple):
    """One list's items as a typed client can read them, and how many needed the router's hand."""

    items: tuple[dict[str, Any], ...]
    repaired: int  # items repaired (fields dropped, a schema supplied) or left out


def _string(value: Any) -> bool:
    return isinstance(value, str)


def _boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _share(value: Any) -> bool:
    """A priority: a number from 0 to 1."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


def _one_of(*allowed: str) -> Check:
    return lambda value: value in allowed


def _object(value: Any) -> bool:
    return isinstance(value, dict)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _roles(value: Any) -> bool:
    return isinstance(value, list) and all(item in ("user", "assistant") for item in value)


# fields every kind may carry (the required ones are checked by `wellformed` itself)
_COMMON: dict[str, Check] = {"title": _string, "description": _string, "_meta": _object}
_TOOL_HINTS: dict[str, Check] = {
    "title": _string,
    "readOnlyHint": _boolean,
    "destructiveHint": _boolean,
    "idempotentHint": _boolean,
    "openWorldHint": _boolean,
}
_CONTENT_HINTS: dict[str, Check] = {"audience": _roles, "priority": _share, "lastModified": _string}
_ICON: dict[str, Check] = {
    "src": _string,
    "mimeType": _string,
    "sizes": _strings,
    "theme": _one_of("light", "dark"),
}
_ARGUMENT: dict[str, Check] = {
    "name": _string,
    "description": _string,
    "title": _string,
    "required": _boolean,
}


class _Repairs:
    """What was dropped from one item, for one log line."""

    def __init__(self) -> None:
        self.dropped: list[str] = []

    def fields(self, item: dict[str, Any], checks: dict[str, Check], path: str = "") -> dict[str, Any]:
        """`item` without the fields `checks` knows and rejects (unknown fields pass: the spec
        lets items carry more than it names)."""
        bad = [key for key, check in checks.items() if key in item and not check(item[key])]
        if not bad:
            return item
        self.dropped.extend(path + key for key in bad)
        return {key: value for key, value in item.items() if key not in bad}

    def drop(self, item: dict[str, Any], key: str) -> dict[str, Any]:
        """`item` without its field `key`, noted as dropped."""
        self.dropped.append(key)
        return {k: v for k, v in item.items() if k != key}

    def nested(self, item: dict[str, Any], key: str, checks: dict[str, Check]) -> dict[str, Any]:
        """`item` with its object field `key` repaired by `checks` (dropped if not an object)."""
        if key not in item:
            return item
        value = item[key]
        if not isinstance(value, dict):
            return self.drop(item, key)
        repaired = self.fields(value, checks, key + ".")
        return item if repaired is value else {**item, key: repaired}

    def entries(self, item: dict[str, Any], key: str, checks: dict[str, Check], needs: str) -> dict[str, Any]:
        """`item` with its list field `key` kept to the entries that are objects with a string
        `needs`, each repaired by `checks` (the field is dropped if not a list)."""
        if key not in item:
            return item
        value = item[key]
        if not isinstance(value, list):
            return self.drop(item, key)
        kept = [
            self.fields(entry, checks, f"{key}[{n}].")
            for n, entry in enumerate(value)
            if isinstance(entry, dict) and isinstance(entry.get(needs), str)
        ]
        if len(kept) < len(value):
            self.dropped.append(f"{len(value) - len(kept)} of {key}")
        return item if kept == value else {**item, key: kept}


def _schema(repairs: _Repairs, tool: dict[str, Any], key: str, required: bool) -> dict[str, Any]:
    """A tool's input or output schema as a typed reader needs it: an object whose `properties`
    (if any) is an object and `required` (if any) a list of strings. A missing or unusable
    input schema reads as "no arguments described", which is what `{"type": "object"}` says."""
    schema = tool.get(key)
    if schema is None and not required:
        return tool
    if not isinstance(schema, dict):
        if not required:
            return repairs.drop(tool, key)
        repairs.dropped.append(key)
        return {**tool, key: {"type": "object"}}
    repaired = repairs.fields(schema, {"properties": _object, "required": _strings}, key + ".")
    return tool if repaired is schema else {**tool, key: repaired}


def _tool(repairs: _Repairs, tool: dict[str, Any]) -> dict[str, Any]:
    tool = repairs.fields(tool, _COMMON)
    tool = repairs.nested(tool, "annotations", _TOOL_HINTS)
    tool = repairs.nested(tool, "execution", {"taskSupport": _one_of("forbidden", "optional", "required")})
    tool = _schema(repairs, tool, "inputSchema", required=True)
    tool = _schema(repairs, tool, "outputSchema", required=False)
    return repairs.entries(tool, "icons", _ICON, "src")


def _prompt(repairs: _Repairs, prompt: dict[str, Any]) -> dict[str, Any]:
    prompt = repairs.fields(prompt, _COMMON)
    prompt = repairs.entries(prompt, "arguments", _ARGUMENT, "name")
    return repairs.entries(prompt, "icons", _ICON, "src")


def _resource(repairs: _Repairs, resource: dict[str, Any]) -> dict[str, Any]:
    resource = repairs.fields(resource, {**_COMMON, "mimeType": _string, "size": _integer})
    resource = repairs.nested(resource, "annotations", _CONTENT_HINTS)
    return repairs.entries(resource, "icons", _ICON, "src")


# list kind -> (the string fields an item cannot go without, its repair)
_KINDS: dict[str, tuple[tuple[str, ...], Callable[[_Repairs, dict[str, Any]], dict[str, Any]]]] = {
    "tools": (("name",), _tool),
    "prompts": (("name",), _prompt),
    "resources": (("uri", "name"), _resource),
    "resourceTemplates": (("uriTemplate", "name"), _resource),
}


def wellformed(server: str, kind: str, items: Iterable[Any]) -> Checked:
    """The items of one of `server`'s lists (`kind` is its result key: tools, prompts,
    resources, resourceTemplates) that a typed client can read, repaired where a field can go."""
    needed, repair = _KINDS[kind]
    kept: list[dict[str, Any]] = []
    repaired = 0
    for n, item in enumerate(items):
        missing = [
            f for f in needed if not isinstance(item, dict) or not isinstance(item.get(f), str) or not item[f]
        ]
        if missing:
            log.warning(
                "backend list item left out: it has no string %s",
                " or ".join(missing),
                extra={"server": server, "list": kind, "position": n},
            )
            repaired += 1
            continue
        key = item[needed[0]]
        repairs = _Repairs()
        fixed = repair(repairs, item)
        if repairs.dropped:
            repaired += 1
            log.warning(
                "backend list item repaired: fields of the wrong type dropped",
                extra={"server": server, "list": kind, "item": key[:200], "dropped": repairs.dropped[:20]},
            )
        kept.append(fixed)
    return Checked(tuple(kept), repaired)
