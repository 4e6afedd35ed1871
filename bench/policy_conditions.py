"""The cost policy conditions add to one `tools/call`: `View.check_call` (activation built, the
rules covering the tool evaluated) under a policy of 20 CEL rules, one of which covers the tool
called, measured in process (the rest of the call path is unchanged by conditions). With
`--every-rule` all 20 cover it and are false but the last (20 expressions evaluated per call: the
worst case, not the usual one).

    .venv/bin/python bench/policy_conditions.py [--calls 5000] [--every-rule]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from router.guard.agent import Agent
from router.guard.conditions import CallFacts
from router.guard.guard import Guard


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--every-rule", action="store_true")
    options = parser.parse_args()
    calls = options.calls
    allow = [
        {
            "tools": ["db__query" if options.every_rule else f"db__tool{i}"],
            "when": f"arguments.tenant == agent.claims.tenant && {i} < 0",
        }
        for i in range(19)
    ]
    allow.append({"tools": ["db__query"], "when": "arguments.tenant == agent.claims.tenant"})
    policy = {"default": "deny", "groups": {"support": {"allow": allow}}}
    guard = Guard()
    guard.install(json.dumps(policy).encode(), "bench")
    agent = Agent("bot", frozenset({"support"}), "jwt", {"tenant": "acme"})
    view = guard.view(agent)
    facts = CallFacts(
        "bot",
        agent.groups,
        agent.claims,
        "db",
        "query",
        "db__query",
        {},
        {"tenant": "acme", "sql": "select 1"},
        "",
        "modern",
        "mcp",
    )
    assert view.check_call(facts) is None
    samples = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        view.check_call(facts)
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    print(
        f"check_call under 20 CEL rules{' (all evaluated)' if options.every_rule else ''}: p50 {statistics.median(samples) / 1e6:.4f} ms, "
        f"p99 {samples[int(len(samples) * 0.99)] / 1e6:.4f} ms ({calls} calls)"
    )


if __name__ == "__main__":
    main()
