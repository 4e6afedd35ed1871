"""A backend's list items reach clients in a shape a typed client reads (router/catalog/wellformed.py).

The official SDK's models are the reader: whatever JSON a backend lists, what the router keeps
validates as the SDK's `Tool`, `Prompt`, `Resource` and `ResourceTemplate`, and an item that
was already valid passes unchanged.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.types import Prompt, Resource, ResourceTemplate, Tool
from pydantic import BaseModel

from router.catalog.wellformed import wellformed
from router.errors import BackendUnavailable
from router.observe.status import render
from router.upstream.base import Channel, error_of
from router.upstream.listing import Listing
from router.upstream.session import UpstreamSession

READERS: dict[str, type[BaseModel]] = {
    "tools": Tool,
    "prompts": Prompt,
    "resources": Resource,
    "resourceTemplates": ResourceTemplate,
}

VALID: dict[str, dict[str, Any]] = {
    "tools": {
        "name": "search",
        "title": "Search",
        "description": "Search the docs",
        "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        "outputSchema": {"type": "object", "properties": {"hits": {"type": "array"}}},
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
        "icons": [{"src": "https://example.com/i.png", "mimeType": "image/png", "sizes": ["48x48"]}],
        "_meta": {"anthropic/alwaysLoad": True},
        "x-vendor": {"kept": "unknown fields pass"},
    },
    "prompts": {
        "name": "review",
        "description": "Review a change",
        "arguments": [{"name": "diff", "required": True, "description": "the change"}],
    },
    "resources": {
        "uri": "file:///a.txt",
        "name": "a.txt",
        "mimeType": "text/plain",
        "size": 12,
        "annotations": {"audience": ["user"], "priority": 0.5},
    },
    "resourceTemplates": {"uriTemplate": "file:///{path}", "name": "files", "mimeType": "text/plain"},
}


@pytest.mark.parametrize("kind", list(VALID))
def test_a_valid_item_passes_unchanged(kind: str) -> None:
    (kept,), repaired = wellformed("s", kind, [VALID[kind]])
    assert kept == VALID[kind] and repaired == 0
    READERS[kind].model_validate(kept)


def test_a_tool_keeps_what_is_readable_and_loses_only_the_fields_of_the_wrong_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    odd = {
        "name": "odd",
        "description": ["not", "a", "string"],
        "annotations": {"readOnlyHint": "yes", "destructiveHint": False},
        "inputSchema": {"type": "object", "properties": ["mode"], "required": "mode"},
        "outputSchema": "an object, later",
        "icons": [{"src": "ok.png"}, {"no": "src"}, "icon.png"],
        "_meta": 3,
    }
    with caplog.at_level(logging.WARNING, logger="toolmesh.catalog"):
        (kept,), repaired = wellformed("junk", "tools", [odd])
    assert repaired == 1
    assert kept == {
        "name": "odd",
        "annotations": {"destructiveHint": False},
        "inputSchema": {"type": "object"},
        "icons": [{"src": "ok.png"}],
    }
    Tool.model_validate(kept)
    (record,) = caplog.records
    assert record.__dict__["server"] == "junk" and record.__dict__["item"] == "odd"
    assert set(record.__dict__["dropped"]) == {
        "description", "_meta", "annotations.readOnlyHint", "inputSchema.properties",
        "inputSchema.required", "outputSchema", "2 of icons",
    }  # fmt: skip


def test_a_tool_without_a_usable_schema_reads_as_taking_no_described_arguments() -> None:
    tools, repaired = wellformed("s", "tools", [{"name": "a"}, {"name": "b", "inputSchema": "none"}])
    assert [tool["inputSchema"] for tool in tools] == [{"type": "object"}, {"type": "object"}]
    assert repaired == 2


def test_items_without_what_identifies_them_are_left_out_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="toolmesh.catalog"):
        tools = wellformed(
            "s", "tools", [{"description": "nameless"}, {"name": ""}, {"name": 7}, "t", None, VALID["tools"]]
        )
        resources = wellformed(
            "s", "resources", [{"uri": "file:///x"}, {"name": "no uri"}, VALID["resources"]]
        )
    assert tools == ((VALID["tools"],), 5) and resources == ((VALID["resources"],), 2)
    assert len(caplog.records) == 7
    assert "no string uri" in caplog.records[-1].getMessage()


def test_the_original_item_is_not_changed() -> None:
    odd = {"name": "t", "annotations": {"readOnlyHint": "x"}, "inputSchema": {"properties": 1}}
    copy = {"name": "t", "annotations": {"readOnlyHint": "x"}, "inputSchema": {"properties": 1}}
    wellformed("s", "tools", [odd])
    assert odd == copy


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    [
        "name", "uri", "uriTemplate", "title", "description", "inputSchema", "outputSchema", "annotations",
        "icons", "_meta", "arguments", "mimeType", "size", "execution",
    ]
)  # fmt: skip
ITEMS = JSON | st.dictionaries(FIELDS, JSON, max_size=8)
# a field's value: often of the right shape with wrong insides, so the nested repairs are reached
SHAPED = st.fixed_dictionaries(
    {
        "name": st.text(min_size=1, max_size=4),
        "uri": st.just("file:///x"),
        "uriTemplate": st.just("f:///{x}"),
    },
    optional={
        "annotations": st.dictionaries(
            st.sampled_from(["readOnlyHint", "title", "audience", "priority"]), JSON
        ),
        "inputSchema": st.dictionaries(st.sampled_from(["type", "properties", "required"]), JSON),
        "outputSchema": JSON,
        "icons": st.lists(st.dictionaries(st.sampled_from(["src", "sizes", "theme"]), JSON), max_size=3),
        "arguments": st.lists(
            st.dictionaries(st.sampled_from(["name", "required", "title"]), JSON), max_size=3
        ),
        "execution": JSON,
        "size": JSON,
        "mimeType": JSON,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(list(READERS)), items=st.lists(ITEMS | SHAPED, max_size=4))
def test_whatever_a_backend_lists_what_is_kept_is_readable(kind: str, items: list[Any]) -> None:
    for item in wellformed("s", kind, items).items:
        READERS[kind].model_validate(item)


class _Refusing:
    """A channel whose backend answers every request with an `error` that is no object."""

    on_unsolicited = None

    async def request(self, message: dict[str, Any], headers: Any, on_message: Any = None) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": message["id"], "error": "boom"}


@pytest.mark.anyio
async def test_a_reply_whose_error_is_no_object_is_a_backend_error_not_a_crash() -> None:
    session = UpstreamSession("odd", cast(Channel, _Refusing()), protocol="legacy")
    with pytest.raises(BackendUnavailable, match="initialize failed: no result"):
        await session.connect()
    assert error_of({"error": "boom"}) == {} and error_of({"error": {"code": 1}}) == {"code": 1}


def test_an_operator_reads_which_servers_lists_needed_repair() -> None:
    shown = render({"catalog": {"repairs": {"junk": {"tools": 3, "prompts": 1}}}})
    assert "repaired:  junk: 3 tools, 1 prompts" in shown
    assert "repaired" not in render({"catalog": {"repairs": {}}})
    instance = {"server": "cms", "instance": "cms", "state": "ready", "address": "stdio: node cms.js"}
    assert "(lists refused: resources/list)" in render(
        {"instances": [{**instance, "refused": ["resources/list"]}]}
    )
    assert "refused" not in render({"instances": [{**instance, "refused": []}]})


class _Lister:
    """A channel whose backend offers tools and resources, and answers the lists named in
    `refusing` with an error (a service behind them is down)."""

    on_unsolicited = None

    def __init__(self, refusing: set[str]) -> None:
        self.refusing = refusing

    async def notify(self, message: dict[str, Any], headers: Any) -> None:
        return None

    async def request(self, message: dict[str, Any], headers: Any, on_message: Any = None) -> dict[str, Any]:
        method, reply = message["method"], {"jsonrpc": "2.0", "id": message["id"]}
        if method == "initialize":
            capabilities = {"tools": {}, "resources": {}}
            return {**reply, "result": {"protocolVersion": "2025-11-25", "capabilities": capabilities}}
        if method in self.refusing:
            return {**reply, "error": {"code": -32603, "message": "cannot reach the service"}}
        key = {
            "tools/list": "tools",
            "resources/list": "resources",
            "resources/templates/list": "resourceTemplates",
        }
        items = {"tools": [VALID["tools"]], "resources": [VALID["resources"]]}.get(key[method], [])
        return {**reply, "result": {key[method]: items}}


@pytest.mark.anyio
async def test_a_refused_list_is_left_out_and_a_backend_refusing_every_list_is_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = UpstreamSession("cms", cast(Channel, _Lister({"resources/list"})), protocol="legacy")
    await session.connect()
    listing = Listing("cms", 5.0, lambda: None)
    with caplog.at_level(logging.WARNING, logger="toolmesh.upstream"):
        definitions = await listing.fetch_all(session)
    assert [tool["name"] for tool in definitions.tools] == ["search"] and definitions.resources == ()
    assert "a list the backend refused is left out" in caplog.text
    everything = {"tools/list", "resources/list", "resources/templates/list"}
    session = UpstreamSession("cms", cast(Channel, _Lister(everything)), protocol="legacy")
    await session.connect()
    with pytest.raises(BackendUnavailable, match="failed"):
        await Listing("cms", 5.0, lambda: None).fetch_all(session)
