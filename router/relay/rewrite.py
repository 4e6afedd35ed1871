"""Rewrite what backends return so every name and URI in it is one the router can route back.

Only needed when URIs are namespaced (prefix "always"): resource links and embedded resources in
tool results and prompt messages, and `contents[].uri` of reads. Results without such items are
returned untouched (no copy).
"""

from __future__ import annotations

from typing import Any

from router.catalog.naming import NamingPolicy


def rewrite_content(naming: NamingPolicy, server: str, content: Any) -> Any:
    """A content list with resource URIs namespaced; the same list if none needed it."""
    if naming.prefix != "always" or not isinstance(content, list):
        return content
    out: list[Any] | None = None
    for position, block in enumerate(content):
        new = _rewrite_block(naming, server, block)
        if new is not block:
            if out is None:
                out = list(content)
            out[position] = new
    return content if out is None else out


def _rewrite_block(naming: NamingPolicy, server: str, block: Any) -> Any:
    if not isinstance(block, dict):
        return block
    kind = block.get("type")
    if kind == "resource_link" and isinstance(block.get("uri"), str):
        return {**block, "uri": naming.expose_uri(server, block["uri"])}
    if kind == "resource" and isinstance(block.get("resource"), dict):
        resource = block["resource"]
        if isinstance(resource.get("uri"), str):
            return {**block, "resource": {**resource, "uri": naming.expose_uri(server, resource["uri"])}}
    return block


def rewrite_tool_result(naming: NamingPolicy, server: str, result: dict[str, Any]) -> dict[str, Any]:
    content = result.get("content")
    new = rewrite_content(naming, server, content)
    return result if new is content else {**result, "content": new}


def rewrite_prompt_result(naming: NamingPolicy, server: str, result: dict[str, Any]) -> dict[str, Any]:
    messages = result.get("messages")
    if naming.prefix != "always" or not isinstance(messages, list):
        return result
    new_messages = [
        {**m, "content": _rewrite_block(naming, server, m.get("content"))} if isinstance(m, dict) else m
        for m in messages
    ]
    return {**result, "messages": new_messages}


def rewrite_read_result(naming: NamingPolicy, server: str, result: dict[str, Any]) -> dict[str, Any]:
    contents = result.get("contents")
    if naming.prefix != "always" or not isinstance(contents, list):
        return result
    new_contents = [
        {**c, "uri": naming.expose_uri(server, c["uri"])} if isinstance(c, dict) and "uri" in c else c
        for c in contents
    ]
    return {**result, "contents": new_contents}
