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
from router.guard.policy_document import parse_policy
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


NAMESPACE_KEYS = [
    "title", "instructions", "servers", "tools", "prompts", "resources", "agents", "groups", "tools_mode",
]  # fmt: skip
good_names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,10}\Z")
names = (
    good_names | st.sampled_from(["", "bad name", "../x", "\u00e9", "desk/sub", "-x"]) | st.text(max_size=12)
)
globs = st.lists(
    st.sampled_from(["*", "alpha*", "[", "[!a]", "**", "a?", "\\", "(", "*__x", "[]]"]) | st.text(max_size=8),
    max_size=4,
)
well_formed = st.fixed_dictionaries(
    {},
    optional={
        "servers": globs,
        "tools": globs,
        "prompts": globs,
        "resources": globs,
        "agents": st.lists(st.sampled_from(["helper", "someone"]) | st.text(max_size=6), max_size=3),
        "groups": st.lists(st.sampled_from(["support", "ops"]) | st.text(max_size=6), max_size=3),
        "tools_mode": st.sampled_from(["search", "all", "auto"]),
        "title": st.text(max_size=10),
        "instructions": st.text(max_size=20),
    },
)
namespace_specs = st.integers(0, 5).flatmap(
    lambda i: well_formed if i < 3 else well_formed.map(lambda d: {**d, "x": 1}) if i < 4 else
    _entries(NAMESPACE_KEYS) if i < 5 else values
)  # fmt: skip
declared = st.dictionaries(good_names, namespace_specs, max_size=3)
# Mostly well-named namespaces (so documents get past the names to what they declare).
any_namespaces = st.integers(0, 5).flatmap(
    lambda i: declared if i < 4 else st.dictionaries(names, namespace_specs, max_size=3) if i < 5 else values
)
namespace_documents = st.fixed_dictionaries(
    {"namespaces": any_namespaces}, optional={"default": st.sampled_from(["allow", "deny"])}
)


@FUZZ
@given(namespace_documents, st.data(), st.sampled_from(["alpha", "beta", ""]), st.text(max_size=12))
def test_any_namespace_document_is_refused_clearly_or_answers_every_question(
    document: Any, data: st.DataObject, server: str, item: str
) -> None:
    """A policy's `namespaces` (catalog/namespaces.py): refused with a ConfigError naming the
    document, or installed; then any agent entering any name gets a view or None (unknown), and
    the view answers what it holds without raising (globs that are not valid patterns included)."""
    from router.guard.agent import Agent
    from router.guard.guard import Guard

    guard = Guard()
    try:
        guard.install(_raw(document, b""), "policy.json")
    except ConfigError as exc:
        assert "policy.json" in str(exc)
        return
    known = sorted(guard.policy.namespaces) if guard.policy is not None else []
    entered = data.draw(st.sampled_from(known) | names if known else names)
    for agent in (Agent("someone", frozenset()), Agent("helper", frozenset({"support", "ops"}))):
        view = guard.namespace_view(agent, entered)
        if view is None:
            continue
        for kind in ("tools", "prompts", "resources"):
            assert isinstance(view.allows(kind, server, item), bool)  # type: ignore[arg-type]
