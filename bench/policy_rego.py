"""The cost a policy's Rego decision adds to one `tools/call`: `View.check_call` with and without
`rego` under the same name rules, measured in process (the rest of the call path is unchanged).

Three Rego cases: the three rules of docs/security.md (they read `input.time`, so every call is
evaluated: no cache), the same module without the clock rule with a different argument on every
call (cacheable, but every input new: evaluated), and that module with one repeated input (cached).

    .venv/bin/python bench/policy_rego.py [--calls 5000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from router.guard.agent import Agent
from router.guard.conditions import CallFacts
from router.guard.policy import Guard

NAMES = {
    "default": "deny",
    "groups": {"support-bot": {"allow": [{"servers": ["crm"]}, {"tools": ["db__query"]}]}},
}


def _docs_module() -> str:
    text = (Path(__file__).parent.parent / "docs" / "security.md").read_text()
    start = text.index("```rego", text.index("**A Rego decision")) + len("```rego")
    return text[start : text.index("```", start)]


def _p50(policy: dict[str, Any], calls: int, vary: bool) -> tuple[float, float]:
    guard = Guard()
    guard.install(json.dumps(policy).encode(), "bench")
    agent = Agent("bot", frozenset({"support-bot"}), "jwt", {"tenant": "acme"})
    view = guard.view(agent)

    def facts(i: int) -> CallFacts:
        arguments = {"tenant": "acme", "sql": f"select {i if vary else 1}"}
        return CallFacts("bot", agent.groups, agent.claims, "db", "query", "db__query", {}, arguments,
                         "", "modern", "mcp")  # fmt: skip

    prepared = [facts(i) for i in range(calls)]
    assert view.check_call(prepared[0]) is None
    samples = []
    for one in prepared:
        start = time.perf_counter_ns()
        view.check_call(one)
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    return statistics.median(samples) / 1e6, samples[int(len(samples) * 0.99)] / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    calls = parser.parse_args().calls
    module = _docs_module()
    no_clock = module[: module.index("# No delete_*")] + module[module.index("# A refund over 100") :]
    cases = [
        ("name rules only (baseline)", NAMES, False),
        (
            "rego: the three docs rules (reads the clock: never cached)",
            {**NAMES, "rego": {"module": module}},
            False,
        ),
        (
            "rego: two rules, a new input every call (cache miss)",
            {**NAMES, "rego": {"module": no_clock}},
            True,
        ),
        ("rego: two rules, a repeated input (cache hit)", {**NAMES, "rego": {"module": no_clock}}, False),
    ]
    base = 0.0
    for label, policy, vary in cases:
        p50, p99 = _p50(policy, calls, vary)
        base = base or p50
        print(f"{label}: p50 {p50:.4f} ms (+{p50 - base:.4f}), p99 {p99:.4f} ms ({calls} calls)")


if __name__ == "__main__":
    main()
