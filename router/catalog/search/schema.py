"""What a tool's input schema says about it: its parameters' names and descriptions.

The word ranker indexes them as light fields (`Weights.param_name`, `param_description`). Schemas
come from backends as they are: zod unions and pydantic models put parameters inside ``anyOf``,
``oneOf`` and ``allOf`` variants and behind local ``$ref``s, and a schema may refer to itself, so
the walk is bounded in depth and in the references and variants it follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["schema_params"]


def schema_params(schema: Any) -> list[tuple[str, str]]:
    """(parameter name, description + enum and const values) pairs of a JSON schema, three levels
    deep, through the variants of ``anyOf``/``oneOf``/``allOf`` and local ``$ref``s (the shapes
    zod unions and pydantic models take); a pair met twice counts once."""
    root = schema if isinstance(schema, Mapping) else {}
    out: dict[tuple[str, str], None] = {}
    _walk_params(schema, root, 0, out)
    return list(out)


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """``node``, or what its local ``$ref`` (``#/$defs/Name``) points to."""
    ref = node["$ref"]
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return node
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part) if isinstance(target, Mapping) else None
    return target if isinstance(target, Mapping) else node


_VARIANTS = ("anyOf", "oneOf", "allOf")
_MAX_HOPS = 8


def _walk_params(
    schema: Any, root: Mapping[str, Any], depth: int, out: dict[tuple[str, str], None], hops: int = 0
) -> None:
    # depth: nested properties; hops: references and variants followed, which a recursive schema
    # (A is oneOf B, B is allOf A) would follow forever
    if not isinstance(schema, Mapping) or depth > 2 or hops > _MAX_HOPS:
        return
    if "$ref" in schema:
        schema = _resolve(schema, root)
        hops += 1
    for key in _VARIANTS:
        if key in schema:
            variants = schema[key]
            if isinstance(variants, list):
                for variant in variants[:20]:
                    _walk_params(variant, root, depth, out, hops + 1)
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        return
    for name in sorted(props):
        sub = props[name]
        if not isinstance(sub, Mapping):
            out.setdefault((str(name), ""), None)
            continue
        if "$ref" in sub:
            sub = _resolve(sub, root)
        d = sub.get("description")
        desc = d if isinstance(d, str) else ""
        enum = sub.get("enum")
        if isinstance(enum, list):
            desc += " " + " ".join(str(v) for v in enum[:20])
        const = sub.get("const")
        if isinstance(const, str):
            desc += " " + const
        out.setdefault((str(name), desc), None)
        if depth < 2:
            _walk_params(sub, root, depth + 1, out, hops)
            items = sub.get("items")
            if isinstance(items, Mapping):
                _walk_params(items, root, depth + 1, out, hops)
