"""`GET /v1/openapi.json`: an OpenAPI 3.1 document of the tools an agent may see.

One operation per tool, on that tool's own path of `POST /v1/tools/{name}/call` (the name is
the OpenAI/Anthropic-safe one of `tool_formats.FormatNames`, which is also the `operationId`,
so generated clients get usable method names and tool servers such as Open WebUI's get valid
function names). The request body is the tool's `inputSchema`; it is placed under
`components/schemas/<operationId>_arguments` and its local references (`#/$defs/...`,
`#/definitions/...`, `#`) are rewritten to point there, since in the document a `#` means the
document's own root. The responses are the ones `tools_http.py` documents: 200 with the MCP
`CallToolResult`, and the error statuses with `{"error": {...}}`.
"""

from __future__ import annotations

from typing import Any

from router import __version__
from router.server.tool_formats import FormatNames

ERRORS = {
    "400": "The body is not a JSON object, or the server rejected the arguments",
    "401": "No or bad credentials",
    "403": "The request came from a foreign Origin",
    "404": "No such tool for this agent",
    "413": "The body is too large",
    "415": "The body is not application/json",
    "429": "A rate limit refused the call (see Retry-After)",
    "502": "The server answered with an error of its own",
    "503": "No instance can take the call (down, busy or circuit open)",
    "504": "The server did not answer in time",
}

CALL_RESULT: dict[str, Any] = {
    "type": "object",
    "description": "The MCP CallToolResult. isError true: the tool ran and reported a failure.",
    "properties": {
        "content": {"type": "array", "items": {"type": "object"}},
        "structuredContent": {"type": "object"},
        "isError": {"type": "boolean"},
    },
    "required": ["content"],
}

ERROR: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "code": {"type": "integer", "description": "the JSON-RPC code an MCP client would get"},
                "data": {},
            },
            "required": ["message"],
        }
    },
    "required": ["error"],
}


def _rebased(node: Any, base: str) -> Any:
    """`node` with every local `$ref` ("#...") made relative to the schema at `base`."""
    if isinstance(node, dict):
        out = {key: _rebased(value, base) for key, value in node.items()}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            out["$ref"] = base + ref[1:]
        return out
    if isinstance(node, list):
        return [_rebased(item, base) for item in node]
    return node


def _arguments_schema(tool: dict[str, Any], key: str) -> dict[str, Any]:
    schema = tool.get("inputSchema")
    schema = dict(schema) if isinstance(schema, dict) else {"type": "object"}
    schema.pop("$schema", None)  # the document's dialect (JSON Schema 2020-12) applies
    schema.pop("$id", None)
    return dict(_rebased(schema, f"#/components/schemas/{key}"))


def openapi_document(tools: list[dict[str, Any]], names: FormatNames, server_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the MCP tool definitions `tools`."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"CallToolResult": CALL_RESULT, "Error": ERROR}
    error_ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for tool in tools:
        name = names.format_name(tool["name"])
        key = f"{name}_arguments"
        schemas[key] = _arguments_schema(tool, key)
        responses: dict[str, Any] = {
            "200": {
                "description": "The tool's result",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CallToolResult"}}},
            }
        }
        responses.update({status: {"description": text, **error_ref} for status, text in ERRORS.items()})
        operation: dict[str, Any] = {
            "operationId": name,
            "summary": str(tool.get("title") or tool["name"]),
            "description": str(tool.get("description") or ""),
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{key}"}}},
            },
            "responses": responses,
        }
        paths[f"/v1/tools/{name}/call"] = {"post": operation}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "toolmesh tools",
            "version": __version__,
            "description": "The MCP tools this agent may call, as plain HTTP operations.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }
