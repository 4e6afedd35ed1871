"""The one record model and its registry layout: what the registrar writes the router reads back."""

from __future__ import annotations

import re

import pytest

from router.catalog.record import (
    META_LIMIT,
    BackendRecord,
    Catalog,
    RecordError,
    canonical_definitions,
    definitions_hash,
    from_consul,
    from_json,
    to_consul_meta,
    to_json,
)

CONSUL_META_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def record(**fields: object) -> BackendRecord:
    base: dict[str, object] = {
        "server": "notes", "instance_id": "host-1", "transport": "http", "url": "http://10.0.0.5:3000/mcp",
        "eras": ("2025-11-25", "2026-07-28"), "capabilities": ("prompts", "tools"),
        "server_info": (("name", "notes-server"), ("version", "1.2.0")), "definitions_hash": "ab" * 32,
        "tags": ("toolmesh", "blue"),
    }  # fmt: skip
    return BackendRecord.model_validate({**base, **fields})


def test_consul_meta_round_trip_within_consul_limits() -> None:
    original = record()
    meta = to_consul_meta(original)
    assert len(meta) <= 64 and all(CONSUL_META_KEY.match(k) and not k.startswith("consul-") for k in meta)
    service = {
        "ID": "mcp-notes-host-1",
        "Address": "10.0.0.5",
        "Port": 3000,
        "Meta": meta,
        "Tags": ["toolmesh", "blue"],
    }
    assert from_consul(service, "192.0.2.1") == original


def test_consul_meta_values_are_cut_to_512_characters() -> None:
    meta = to_consul_meta(record(server_info=(("name", "n" * 2000),)))
    assert all(len(value) <= META_LIMIT for value in meta.values())


def test_consul_entry_without_address_uses_the_node_address() -> None:
    meta = to_consul_meta(record())
    parsed = from_consul({"ID": "x", "Address": "", "Port": 3000, "Meta": meta}, "192.0.2.1")
    assert parsed.url == "http://192.0.2.1:3000/mcp"


def test_foreign_consul_entries_are_refused_with_the_reason() -> None:
    with pytest.raises(RecordError, match="Consul service 'web'"):
        from_consul({"ID": "web", "Port": 80, "Meta": {}}, "192.0.2.1")


def test_json_round_trip_and_damaged_json() -> None:
    original = record(definitions_state="quarantined", pending_hash="cd" * 32)
    assert from_json(to_json(original), "k") == original
    with pytest.raises(RecordError, match="not JSON"):
        from_json(b"{", "k")
    with pytest.raises(RecordError, match="field transport"):
        from_json(b'{"server": "a", "instance_id": "b", "transport": "carrier-pigeon"}', "k")


def test_catalog_leaves_quarantined_instances_out_and_groups_by_server() -> None:
    ok, other = record(), record(instance_id="host-2")
    held = record(instance_id="host-3", definitions_state="quarantined", pending_hash="cd" * 32)
    catalog = Catalog.of([held, other, ok])
    assert catalog.servers == {"notes": (ok, other)}


def test_definitions_hash_ignores_listing_order_and_key_order() -> None:
    one = {
        "tools": [{"name": "b", "description": "B"}, {"name": "a", "inputSchema": {"type": "object", "x": 1}}]
    }
    two = {
        "tools": [{"inputSchema": {"x": 1, "type": "object"}, "name": "a"}, {"description": "B", "name": "b"}]
    }
    assert definitions_hash(canonical_definitions(one)) == definitions_hash(canonical_definitions(two))
    changed = {
        "tools": [{"name": "a", "inputSchema": {"type": "object", "x": 2}}, {"name": "b", "description": "B"}]
    }
    assert definitions_hash(canonical_definitions(changed)) != definitions_hash(canonical_definitions(one))


def test_instructions_count_among_the_definitions_only_when_a_server_has_them() -> None:
    tools = {"tools": [{"name": "a", "description": "A"}]}
    plain = canonical_definitions(tools)
    assert canonical_definitions(tools, None) == plain == canonical_definitions(tools, "")
    told = canonical_definitions(tools, "Call a before anything else.")
    assert definitions_hash(told) != definitions_hash(plain)
    assert definitions_hash(canonical_definitions(tools, "Never call a.")) != definitions_hash(told)
