"""Naming rules: collisions are errors, long and foreign names are shortened deterministically."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from mcp import Client

from router.catalog.index import Definitions, Index, Target
from router.catalog.naming import NamingPolicy
from tests.conftest import run_router
from tests.support.procs import sample_server_stdio_entry

pytestmark = pytest.mark.anyio


async def test_prefix_never_withholds_names_two_servers_share_and_reports_them(tmp_path: Path) -> None:
    servers = {"alpha": sample_server_stdio_entry("alpha"), "beta": sample_server_stdio_entry("beta")}
    with run_router(tmp_path, servers, "--prefix", "never") as router:
        async with aiohttp.ClientSession() as http, http.get(f"{router.base_url}/readyz") as response:
            ready = await response.json()
        conflicts = {(c["kind"], c["name"]) for c in ready["conflicts"]}
        assert ("tools", "echo") in conflicts and ("prompts", "greet") in conflicts
        async with Client(router.mcp_url, mode="legacy") as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert "echo" not in names, "a shared name must not be silently shadowed"
            uris = {str(r.uri) for r in (await client.list_resources()).resources}
            assert {"mem://alpha/hello", "mem://beta/hello"} <= uris  # distinct URIs stay as they are
            read = await client.read_resource("mem://beta/hello")
            assert read.contents[0].text == "hello from beta"  # type: ignore[union-attr]
        assert "withheld" in router.process.log_text()


def test_long_and_foreign_names_are_shortened_stably_and_never_collide() -> None:
    naming = NamingPolicy("always", "__", 64)
    long_a = "x" * 70 + "_a"
    long_b = "x" * 70 + "_b"
    tools = tuple({"name": n} for n in (long_a, long_b, "has space", "has_space", "ok"))
    index = Index(naming, {"server": Definitions(tools=tools, capabilities={"tools": {}})})
    exposed = [item["name"] for item in index.items("tools")]
    assert len(exposed) == len(set(exposed)) == 5
    assert all(
        len(name) <= 64 and name.replace("_", "").replace("-", "").replace(".", "").isalnum()
        for name in exposed
    )
    assert {index.tools[name].name for name in exposed} == {long_a, long_b, "has space", "has_space", "ok"}
    again = Index(naming, {"server": Definitions(tools=tools, capabilities={"tools": {}})})
    assert [item["name"] for item in again.items("tools")] == exposed


def test_prefixed_names_that_meet_across_servers_are_told_apart_not_withheld() -> None:
    """Names may contain the separator: server `a` with tool `b__c` and server `a__b` with tool
    `c` would both be `a__b__c`. Each gets a digest of its own (server, name), in any order."""
    naming = NamingPolicy("always", "__", 64)

    def tool_index(servers: dict[str, tuple[str, ...]]) -> Index:
        defs = {
            name: Definitions(tools=tuple({"name": t} for t in tools), capabilities={"tools": {}})
            for name, tools in servers.items()
        }
        return Index(naming, defs)

    index = tool_index({"a": ("b__c", "solo"), "a__b": ("c",)})
    assert index.conflicts == []
    names = {item["name"] for item in index.items("tools")}
    assert "a__b__c" not in names and "a__solo" in names and len(names) == 3
    targets = {(index.tools[name].server, index.tools[name].name) for name in names}
    assert targets == {("a", "b__c"), ("a", "solo"), ("a__b", "c")}
    assert all(name.startswith("a__b__c_") for name in names if name != "a__solo")
    reordered = tool_index({"a__b": ("c",), "a": ("solo", "b__c")})
    assert {item["name"] for item in reordered.items("tools")} == names


def test_prefix_never_withholds_a_resource_template_two_servers_share() -> None:
    """Without prefixes a template is the backend's own: one two servers offer would route every
    read to whichever came first, so it is reported and withheld like a shared tool name."""
    shared = {"uriTemplate": "same://item/{id}", "name": "item"}

    def defs(*templates: dict[str, str]) -> Definitions:
        return Definitions(resource_templates=templates, capabilities={"resources": {}})

    own = {"uriTemplate": "s2://note/{id}", "name": "note"}
    index = Index(NamingPolicy("never"), {"s1": defs(shared), "s2": defs(shared, own)})
    assert [(c.kind, c.name, c.servers) for c in index.conflicts] == [
        ("resourceTemplates", "same://item/{id}", ("s1", "s2"))
    ]
    assert [item["uriTemplate"] for item in index.items("resourceTemplates")] == ["s2://note/{id}"]
    assert index.resolve_uri("same://item/5") is None
    assert index.resolve_uri("s2://note/7") == Target("s2", "s2://note/7")
    prefixed = Index(NamingPolicy("always"), {"s1": defs(shared), "s2": defs(shared)})
    assert prefixed.conflicts == [] and len(prefixed.items("resourceTemplates")) == 2
