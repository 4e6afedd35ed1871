"""Property-based: the catalog and policy parsers answer any document with a result or a
ConfigError naming what to fix, never another exception (a traceback for the operator).

Bounded (derandomized, a few hundred examples in all); `bench/fuzz.py` runs longer campaigns."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from router.catalog.config_file import parse_catalog
from router.errors import ConfigError
from router.guard.policy import parse_policy
from tests.support.fuzzing import fuzz_settings

FUZZ = fuzz_settings(150)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
# Field names the parsers know, so documents get past the first check often enough to matter.
CATALOG_KEYS = [
    "command", "args", "url", "env", "cwd", "headers", "timeout", "retry", "trusted", "tools",
    "prefix", "limits", "instances", "era", "transport", "auth", "max_concurrency", "rate",
]  # fmt: skip
POLICY_KEYS = [
    "default",
    "groups",
    "agents",
    "allow",
    "deny",
    "servers",
    "tools",
    "resources",
    "prompts",
    "when",
]


def _entries(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), values, max_size=6)


catalogs = st.one_of(
    values,
    st.fixed_dictionaries(
        {"mcpServers": st.dictionaries(st.text(max_size=10), _entries(CATALOG_KEYS) | values, max_size=3)},
        optional={"toolmesh": values | _entries(["limits", "namespaces", "prefix"])},
    ),
)
policies = st.one_of(
    values, _entries(POLICY_KEYS), st.fixed_dictionaries({"groups": values, "default": values})
)


def _raw(document: Any, garble: bytes) -> bytes:
    return json.dumps(document).encode() + garble


@FUZZ
@given(catalogs, st.sampled_from([b"", b"", b"", b"}", b"\x00", b"\xff"]))
def test_any_catalog_is_parsed_or_refused_with_a_config_error(document: Any, garble: bytes) -> None:
    try:
        parse_catalog(_raw(document, garble), "catalog.json")
    except ConfigError as exc:
        assert str(exc).startswith("catalog.json")


@FUZZ
@given(policies, st.sampled_from([b"", b"", b"", b"]", b"\xfe"]))
def test_any_policy_is_parsed_or_refused_with_a_config_error(document: Any, garble: bytes) -> None:
    try:
        parse_policy(_raw(document, garble), "policy.json")
    except ConfigError as exc:
        assert "policy.json" in str(exc)
