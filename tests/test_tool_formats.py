"""`/v1/tools?format=openai|anthropic` and `/v1/openapi.json`: the agent's tools in the shapes
other tool-calling APIs take, called back through the router under those names, against a real
sample server (tool names made invalid for OpenAI by the `.` separator)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from openapi_spec_validator import validate
from referencing import Registry, Resource

from router.server.openapi import ERRORS
from router.server.tool_formats import FormatNames, adapted_schema
from tests.conftest import run_router
from tests.support.procs import sample_server_http

pytestmark = pytest.mark.anyio

VALID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
LONG = "s" * 60  # the router shortens "<60 s>.echo" itself, and its name still holds a "."


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def test_openai_and_anthropic_lists_have_valid_names_that_calls_map_back(tmp_path: Path) -> None:
    with sample_server_http("svc", log_dir=tmp_path) as (url, _):
        servers = {"svc": {"url": url}, LONG: {"url": url}}
        with run_router(tmp_path, servers, "--separator", ".") as router:
            tools = f"{router.base_url}/v1/tools"
            async with aiohttp.ClientSession() as http:
                status, mcp = await get(http, tools)
                assert status == 200
                mcp_names = {tool["name"] for tool in mcp["tools"]}
                assert {"svc.add", "svc.echo"} <= mcp_names

                status, openai = await get(http, f"{tools}?format=openai")
                assert status == 200
                functions = {entry["function"]["name"]: entry["function"] for entry in openai["tools"]}
                assert all(entry["type"] == "function" for entry in openai["tools"])
                assert len(functions) == len(mcp_names), "one name per tool, no collisions"
                assert all(VALID.match(name) for name in functions), sorted(functions)
                add_name = next(name for name in functions if name.startswith("svc_add_"))
                assert re.fullmatch(r"svc_add_[0-9a-f]{8}", add_name)
                long_echo = next(
                    name
                    for name, function in functions.items()
                    if name.startswith(LONG[:20]) and function["description"].startswith("Echo")
                )
                add = functions[add_name]
                assert add["parameters"]["type"] == "object"
                assert set(add["parameters"]["required"]) == {"a", "b"}
                assert add["description"].startswith("Add two numbers")

                status, anthropic = await get(http, f"{tools}?format=anthropic")
                assert status == 200
                by_name = {tool["name"]: tool for tool in anthropic["tools"]}
                assert set(by_name) == set(functions), "the same names in both formats"
                assert by_name[add_name]["input_schema"] == add["parameters"]

                # A call by the OpenAI name reaches svc's `add` with the arguments passed on.
                async with http.post(f"{tools}/{add_name}/call", json={"a": 2, "b": 3}) as response:
                    assert response.status == 200
                    assert (await response.json())["structuredContent"] == {"sum": 5}
                async with http.post(f"{tools}/{long_echo}/call", json={"text": "hi"}) as response:
                    assert response.status == 200
                    assert (await response.json())["content"][0]["text"] == "svc:hi"
                # The MCP name still works; a name that is neither is a 404.
                async with http.post(f"{tools}/svc.echo/call", json={"text": "x"}) as response:
                    assert (await response.json())["content"][0]["text"] == "svc:x"
                async with http.post(f"{tools}/svc_add_00000000/call", json={}) as response:
                    assert response.status == 404

                status, body = await get(http, f"{tools}?format=gemini")
                assert status == 400 and "openai" in body["error"]["message"]


class DocumentClient:
    """A generic OpenAPI client: it knows only the document. Each operation becomes a method by
    its operationId; arguments are checked against the request body's schema before sending."""

    def __init__(self, http: aiohttp.ClientSession, document: dict[str, Any]) -> None:
        self.http = http
        self.document = document
        self.base = document["servers"][0]["url"]
        self.operations = {
            op["operationId"]: (path, method, op)
            for path, item in document["paths"].items()
            for method, op in item.items()
        }
        registry: Registry[Any] = Registry().with_resource("urn:doc", Resource.opaque(document))
        self.registry = registry

    async def call(self, operation_id: str, **arguments: Any) -> tuple[int, Any]:
        path, method, op = self.operations[operation_id]
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        ref = {"$ref": "urn:doc" + schema["$ref"], "$schema": "https://json-schema.org/draft/2020-12/schema"}
        jsonschema.Draft202012Validator(ref, registry=self.registry).validate(arguments)
        async with self.http.request(method, self.base + path, json=arguments) as response:
            return response.status, await response.json()


async def test_the_openapi_document_validates_and_a_client_reading_only_it_calls_a_tool(
    tmp_path: Path,
) -> None:
    with (
        sample_server_http("svc", log_dir=tmp_path) as (url, _),
        run_router(tmp_path, {"svc": {"url": url}}, "--separator", ".") as router,
    ):
        async with aiohttp.ClientSession() as http:
            status, document = await get(http, f"{router.base_url}/v1/openapi.json")
            assert status == 200
            validate(document)  # against the OpenAPI 3.1 schema
            assert document["openapi"].startswith("3.1")
            client = DocumentClient(http, document)
            by_summary = {op["summary"]: op_id for op_id, (_, _, op) in client.operations.items()}
            add = by_summary["svc.add"]
            assert set(client.operations[add][2]["responses"]) == {"200", *ERRORS}
            status, result = await client.call(add, a=20, b=22)
            assert status == 200 and result["structuredContent"] == {"sum": 42}
            with pytest.raises(jsonschema.ValidationError):
                await client.call(add, a="twenty")  # the document's schema catches it first


def test_names_that_clean_alike_stay_apart_and_a_taken_digest_name_gets_a_longer_one() -> None:
    plain = FormatNames(["a.b", "a/b", "ok_name"])
    assert plain.format_name("ok_name") == "ok_name"
    first, second = plain.format_name("a.b"), plain.format_name("a/b")
    assert first != second and first.startswith("a_b_") and second.startswith("a_b_")
    assert plain.mcp_name(first) == "a.b" and plain.mcp_name(second) == "a/b"
    assert plain.mcp_name("ok_name") is None, "an unchanged name is looked up as itself"
    clash = FormatNames(["a.b", first])  # a real tool happens to have a.b's digest name
    assert clash.format_name(first) == first
    assert len(clash.format_name("a.b")) == len("a_b_") + 16
    assert clash.mcp_name(clash.format_name("a.b")) == "a.b"
    long = FormatNames(["x" * 100])
    assert len(long.format_name("x" * 100)) == 64


def test_a_valid_name_outside_the_index_is_kept_as_a_name_of_the_index_would_be() -> None:
    """The search meta-tools are listed in search mode but are not in the index: a valid name is
    kept (`POST /v1/tools/call_tool/call` calls it); it used to get a digest that nothing answered."""
    names = FormatNames(["a.b", "ok_name"])
    assert names.format_name("call_tool") == "call_tool"
    assert names.format_name("not/in.index").startswith("not_in_index_")


def test_schemas_are_adapted_to_an_object_with_properties_and_no_top_level_combinators() -> None:
    schema, dropped = adapted_schema({"$schema": "x", "anyOf": [{"required": ["a"]}], "type": "object"})
    assert schema == {"type": "object", "properties": {}}
    assert dropped == ["anyOf"]
    nested = {"type": "object", "properties": {"v": {"oneOf": [{"type": "string"}, {"type": "number"}]}}}
    assert adapted_schema(nested) == (nested, [])
    json.dumps(adapted_schema(None)[0])
