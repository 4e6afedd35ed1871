"""Conditions on policy rules: a rule's `when`, a CEL expression evaluated per call.

A rule in `allow` or `deny` may carry `"when": "<CEL>"`; it then applies to a `tools/call` only
when the expression is true for that call. The expression sees:

- `agent`: `{"id", "groups", "claims"}` (claims: the verified JWT's, `{}` for API keys);
- `tool`: `{"server", "name", "annotations"}` (the backend's own name and annotations);
- `arguments`: the call's arguments as the client sent them (a map);
- `namespace`: the namespace the call came through (`/mcp/{name}`), `""` at `/mcp` and `/v1/tools`;
- `time`: the router's clock as a CEL timestamp (`time.getHours("Europe/Berlin")`);
- `request`: `{"era", "endpoint"}` (endpoint `mcp` or `http`).

Expressions are compiled once per policy version (when the document is installed: a syntax
error refuses the document, naming the rule and the position) and evaluated per call. An
expression that cannot be evaluated (a missing argument, a type error) or does not give a bool
counts as a denial, whose reason goes in the audit record. `celpy` (the `cel` extra) is imported
only when a policy has a `when`.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from router.errors import ConfigError


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What a condition may read about one call (built only when some rule has a `when`)."""

    agent_id: str
    groups: frozenset[str]
    claims: Mapping[str, Any]
    server: str
    tool: str  # the backend's name (`tool.name`)
    exposed: str  # the catalog's name, which the rules' `tools` globs match
    annotations: Mapping[str, Any]
    arguments: Any
    namespace: str
    era: str
    endpoint: str
    now: datetime | None = None  # the router's clock when None


class Condition:
    """One compiled `when`: `rule` names where it stands in the document (for errors and audit)."""

    def __init__(self, rule: str, expression: str, program: Any) -> None:
        self.rule, self.expression, self._program = rule, expression, program
        # cel-python's compiled runner turns the expression into Python code that reads each
        # variable as `activation.<name>`; its own evaluate first copies its activation and loads
        # every variable into it (most of a call's cost). Run that code on the call's `Variables`
        # instead, which convert only what the expression reads, once per call for all rules.
        transpiler = getattr(program, "tp", None)
        self._code = getattr(transpiler, "executable_code", None)
        self._base = getattr(transpiler, "base_activation", None)

    def holds(self, variables: Variables) -> bool | str:
        """True or False, or the reason it could not be evaluated (a string: the call is denied)."""
        celpy = _celpy()
        try:
            if self._code is not None and self._base is not None:
                scope = _scope()
                scope["base_activation"] = _run_on(variables, self._base)
                exec(self._code, scope)
                value = scope["CEL"]
            else:  # another cel-python: its own way, with every variable converted
                value = self._program.evaluate(_every(variables))
        except celpy.CELEvalError as exc:
            return f"{self.rule}.when could not be evaluated: {_short(exc)}"
        except Exception as exc:
            return f"{self.rule}.when could not be evaluated: {type(exc).__name__}: {_short(exc)}"
        if isinstance(value, celpy.CELEvalError):
            return f"{self.rule}.when could not be evaluated: {_short(value)}"
        if isinstance(value, (celpy.celtypes.BoolType, bool)):
            return bool(value)
        return f"{self.rule}.when gave {type(value).__name__}, not a bool"


def _short(exc: BaseException) -> str:
    args: Any = exc.args
    # The compiled runner wraps the cause: ("evaluation error", CELEvalError, (cause, ...)).
    while len(args) >= 3 and args[0] == "evaluation error" and isinstance(args[2], tuple) and args[2]:
        args = args[2]
    text = str(args[0]) if args else str(exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__


@functools.cache
def _scope() -> dict[str, Any]:
    """The globals the compiled runner runs its code in (its evaluation module's, as its own
    evaluate does: the code reads `celpy`, `CELEvalError`... there and leaves `CEL` there)."""
    return _celpy().evaluation.result.__globals__  # type: ignore[no-any-return]


@functools.cache  # an ImportError is not cached: installing the extra later works
def _celpy() -> Any:
    try:
        return importlib.import_module("celpy")
    except ImportError:
        raise ConfigError(
            "policy", "a rule has a `when` condition, but CEL support is not installed",
            "install the `cel` extra: pip install 'toolmesh[cel]'",
        ) from None  # fmt: skip


class Compiler:
    """Compiles the `when` expressions of one policy document (one CEL environment for all)."""

    def __init__(self, source: str) -> None:
        self.source = source
        celpy = _celpy()
        self._celpy = celpy
        # Expressions become Python code once (the tree-walking runner took ~8x longer per call);
        # an expression that fails is a denial with its reason, not an error log line.
        self._env = celpy.Environment(runner_class=celpy.CompiledRunner)
        logging.getLogger("celpy").setLevel(logging.CRITICAL)

    def compile(self, rule: str, expression: str) -> Condition:
        try:
            tree = self._env.compile(expression)
            program = self._env.program(tree)
        except self._celpy.CELParseError as exc:
            line, column = getattr(exc, "line", None), getattr(exc, "column", None)
            where = f" at line {line}, column {column}" if line is not None else ""
            raise ConfigError(
                f"policy {self.source}, field '{rule}.when'",
                f"not a valid CEL expression{where}: {_short(exc)}",
                "fix the expression (docs/security.md shows examples)",
            ) from None
        return Condition(rule, expression, program)


class Variables:
    """The CEL variables of one call, as compiled expressions read them (`activation.<name>`):
    each is converted to a CEL value on its first read and kept for the call's other rules, so a
    rule that reads only `arguments.tenant` and `agent.claims` never converts the clock. The
    agent's, the tool's and the request's values are kept between calls too (they repeat). A name
    that is no variable (a type such as `int`, or a name the policy got wrong) is looked up in the
    environment's own activation, as cel-python does. What the object keeps for itself has
    private (mangled) names, so an expression cannot read it as a variable."""

    def __init__(self, facts: CallFacts) -> None:
        self.__facts = facts
        self.__base: Any = None  # the running expression's own activation (`_run_on`)

    def __getattr__(self, name: str) -> Any:
        make = _VARIABLES.get(name)
        if make is None:
            return getattr(self.__base, name)
        value = make(self.__facts)
        setattr(self, name, value)  # the next read of it is a plain attribute
        return value

    def resolve_variable(self, name: str) -> Any:
        """`.name` in an expression: the root scope's variable."""
        return getattr(self, name) if name in _VARIABLES else self.__base.resolve_variable(name)

    def nested_activation(self, annotations: Any = None, vars: Mapping[str, Any] | None = None) -> _Bound:
        return _Bound(self, vars or {})


def _run_on(variables: Variables, base: Any) -> Variables:
    variables._Variables__base = base  # type: ignore[attr-defined]
    return variables


def _every(variables: Variables) -> dict[str, Any]:
    return {name: getattr(variables, name) for name in _VARIABLES}


class _Bound:
    """A macro's variable (`arguments.items.exists(x, x > 1)`: `x`) over the variables around it."""

    def __init__(self, outer: Variables | _Bound, bound: Mapping[str, Any]) -> None:
        self.__outer = outer
        self.__dict__.update(bound)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__outer, name)

    def resolve_variable(self, name: str) -> Any:
        return self.__outer.resolve_variable(name)

    def nested_activation(self, annotations: Any = None, vars: Mapping[str, Any] | None = None) -> _Bound:
        return _Bound(self, vars or {})


def activation(facts: CallFacts) -> Variables:
    """The CEL variables for one call (converted as the expressions read them)."""
    return Variables(facts)


def _arguments(facts: CallFacts) -> Any:
    return _celpy().json_to_cel(facts.arguments if isinstance(facts.arguments, dict) else {})


def _cel_agent(facts: CallFacts) -> Any:
    claims = orjson.dumps(facts.claims, option=orjson.OPT_SORT_KEYS) if facts.claims else b""
    return _kept(("agent", facts.agent_id, facts.groups, claims), lambda: _agent(facts))


def _cel_tool(facts: CallFacts) -> Any:
    annotations = orjson.dumps(facts.annotations, option=orjson.OPT_SORT_KEYS) if facts.annotations else b""
    return _kept(("tool", facts.server, facts.tool, annotations), lambda: _tool(facts))


def _cel_request(facts: CallFacts) -> Any:
    return _kept(("request", facts.era, facts.endpoint), lambda: _request(facts))


_VARIABLES: dict[str, Callable[[CallFacts], Any]] = {
    "agent": _cel_agent,
    "tool": _cel_tool,
    "arguments": _arguments,
    "namespace": lambda facts: _celpy().celtypes.StringType(facts.namespace),
    "time": lambda facts: _celpy().celtypes.TimestampType(facts.now or datetime.now(UTC)),
    "request": _cel_request,
}


def input_document(facts: CallFacts, with_time: bool = True) -> dict[str, Any]:
    """The same variables as plain JSON (the Rego decision's `input`, guard/rego.py); `time` is
    an RFC 3339 string (`time.parse_rfc3339_ns(input.time)`), left out when `with_time` is false."""
    document = {
        "agent": _agent(facts),
        "tool": _tool(facts),
        "arguments": facts.arguments if isinstance(facts.arguments, dict) else {},
        "namespace": facts.namespace,
        "request": _request(facts),
    }
    if with_time:
        document["time"] = (facts.now or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    return document


def _agent(facts: CallFacts) -> dict[str, Any]:
    return {"id": facts.agent_id, "groups": sorted(facts.groups), "claims": dict(facts.claims)}


def _tool(facts: CallFacts) -> dict[str, Any]:
    return {"server": facts.server, "name": facts.tool, "annotations": dict(facts.annotations)}


def _request(facts: CallFacts) -> dict[str, Any]:
    return {"era": facts.era, "endpoint": facts.endpoint}


_KEPT: dict[tuple[Any, ...], Any] = {}
MAX_KEPT = 4096


def _kept(key: tuple[Any, ...], value: Callable[[], dict[str, Any]]) -> Any:
    """A CEL value made once per distinct key (bounded: cleared when full)."""
    cel = _KEPT.get(key)
    if cel is None:
        if len(_KEPT) >= MAX_KEPT:
            _KEPT.clear()
        cel = _KEPT[key] = _celpy().json_to_cel(value())
    return cel
