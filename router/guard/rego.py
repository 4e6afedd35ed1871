"""A Rego decision on every tool call: the policy's `rego` names a module and a query.

`{"rego": {"module": "<file path or inline source>", "query": "data.toolmesh.allow",
"budget_ms": 5}}`. After the name-based rules (and any `when`) allow a `tools/call`, the query is
evaluated with `input` = the same fields the CEL conditions see (guard/conditions.py,
`input_document`), by regorus, Microsoft's Rego engine, embedded through the `opa-eval` wheel
(the `rego` extra, imported only when a policy has `rego`). The call is allowed only when the
query gives `true`; false, undefined, anything else, an evaluation error or an evaluation over its
budget deny it, with the reason in the audit record (fail closed).

The module is compiled once per policy version: a syntax error refuses the document naming
`rego.module` and the engine's message, and the last valid policy stays. Decisions are cached per
(policy version, input) when the module cannot see the clock (no `input.time`, no `time.now_ns`,
no `input` read as a whole): bounded, cleared when full.

Evaluation runs on the caller's thread: a decision under the documented rules adds 0.013-0.022 ms
to a call (bench/policy_rego.py), a hop to a worker thread alone costs ~0.09 ms (anyio
`to_thread.run_sync`, same machine), so a thread would cost more than it could bound. The budget is checked
after the engine returns: a decision that took longer is discarded and the call denied (with
`toolmesh_policy_decision_failures{reason="timeout"}`); the engine itself cannot be interrupted.
"""

from __future__ import annotations

import importlib
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from router.errors import ConfigError
from router.guard.conditions import CallFacts, input_document

MAX_CACHED = 4096
# What makes a decision depend on more than its input (the clock, randomness, the network).
_UNCACHEABLE = re.compile(
    r"input\s*\.\s*time\b|input\s*\[|\binput\b(?!\s*\.)|time\.now_ns|rand\.|uuid\.|http\.send|opa\.runtime"
)


def _opa_eval() -> Any:
    try:
        return importlib.import_module("opa_eval")
    except ImportError:
        raise ConfigError(
            "policy", "the policy has a `rego` decision, but Rego support is not installed",
            "install the `rego` extra: pip install 'toolmesh[rego]'",
        ) from None  # fmt: skip


def _message(exc: BaseException, path: str) -> str:
    """The engine's message, with the temporary file's path replaced by the field."""
    text = str(exc).replace(path, "rego.module").strip()
    return re.sub(r"\s*\n\s*", " ", text)[:400]


class RegoDecision:
    """One compiled module and query; `decide` gives None (allowed) or why the call is refused."""

    def __init__(
        self,
        source: str,
        module: str,
        query: str,
        budget_ms: float,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        opa_eval = _opa_eval()
        text = _module_text(source, module)
        self.query, self.budget = query, budget_ms / 1000
        self._on_failure = on_failure
        self.cacheable = _UNCACHEABLE.search(re.sub(r"#.*", "", text)) is None
        self._cache: dict[bytes, str | None] = {}
        with tempfile.TemporaryDirectory(prefix="toolmesh-rego-") as tmp:
            path = self._path = str(Path(tmp) / "policy.rego")  # the engine's messages name it
            Path(path).write_text(text, encoding="utf-8")
            try:
                self._engine = opa_eval.OpaEval(path, query=query)
            except Exception as exc:
                raise ConfigError(
                    f"policy {source}, field 'rego.module'", f"not a valid Rego module: {_message(exc, path)}",
                    "fix the module (docs/security.md shows examples)",
                ) from None  # fmt: skip
            try:
                self._engine.evaluate_parsed("{}")
            except Exception as exc:
                if "rule path" in str(exc):
                    raise ConfigError(
                        f"policy {source}, field 'rego.query'", f"{query!r} names no rule of the module",
                        "name a rule the module defines, e.g. data.toolmesh.allow",
                    ) from None  # fmt: skip

    def decide(self, facts: CallFacts) -> str | None:
        document = orjson.dumps(
            input_document(facts, with_time=not self.cacheable), option=orjson.OPT_SORT_KEYS
        )
        if self.cacheable:
            cached = self._cache.get(document, False)
            if cached is not False:
                return cached  # type: ignore[return-value]
        started = time.perf_counter()
        try:
            result = self._engine.evaluate_parsed(document.decode())
        except Exception as exc:
            return self._failed(
                "error", f"rego decision {self.query} could not be evaluated: {_message(exc, self._path)}"
            )
        took = time.perf_counter() - started
        if took > self.budget:
            return self._failed(
                "timeout",
                f"rego decision {self.query} took {took * 1000:.1f} ms, over its budget of {self.budget * 1000:g} ms",
            )
        if result is True:
            reason = None
        elif result is False:
            reason = f"denied by rego decision {self.query} (false)"
        elif result == "<undefined>":
            reason = f"denied by rego decision {self.query} (undefined)"
        else:
            reason = f"denied by rego decision {self.query} (gave {type(result).__name__}, not true)"
        if self.cacheable:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[document] = reason
        return reason

    def _failed(self, kind: str, reason: str) -> str:
        if self._on_failure is not None:
            self._on_failure(kind)
        return reason


def _module_text(source: str, module: str) -> str:
    """Inline source (it has a line break or begins with `package`) or a file's path."""
    if "\n" in module or module.lstrip().startswith("package"):
        return module
    try:
        return Path(module).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"policy {source}, field 'rego.module'", f"cannot read {module!r}: {exc.strerror}",
            "give the path of a .rego file or the module's source",
        ) from None  # fmt: skip
