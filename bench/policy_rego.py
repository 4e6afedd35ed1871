"""The cost a policy's Rego decision adds to one `tools/call`: the view's call check with and
without `rego` under the same name rules (the rest of the call path is unchanged).

Three Rego cases: the three rules of docs/security.md (they read `input.time`, so every call is
evaluated: no cache), the same module without the clock rule with a different argument on every
call (cacheable, but every input new: evaluated), and that module with one repeated input (cached).
Each on the caller's thread (`View.check_call`) and as the router makes it, in a worker process
under the budget (`View.check_call_within_budget` with `RegoWorkers` running, on uvloop).

    .venv/bin/python bench/policy_rego.py [--calls 5000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import anyio

from router.guard.agent import Agent
from router.guard.conditions import CallFacts
from router.guard.guard import Guard
from router.guard.rego import RegoWorkers
from router.guard.views import View

NAMES = {
    "default": "deny",
    "groups": {"support-bot": {"allow": [{"servers": ["crm"]}, {"tools": ["db__query"]}]}},
}


def _docs_module() -> str:
    text = (Path(__file__).parent.parent / "docs" / "security.md").read_text()
    start = text.index("```rego", text.index("**A Rego decision")) + len("```rego")
    return text[start : text.index("```", start)]


def _facts(agent: Agent, calls: int, vary: bool) -> list[CallFacts]:
    def facts(i: int) -> CallFacts:
        arguments = {"tenant": "acme", "sql": f"select {i if vary else 1}"}
        return CallFacts("bot", agent.groups, agent.claims, "db", "query", "db__query", {}, arguments,
                         "", "modern", "mcp")  # fmt: skip

    return [facts(i) for i in range(calls)]


def _stats(samples: list[int]) -> tuple[float, float]:
    samples.sort()
    return statistics.median(samples) / 1e6, samples[int(len(samples) * 0.99)] / 1e6


AGENT = Agent("bot", frozenset({"support-bot"}), "jwt", {"tenant": "acme"})


def _view(policy: dict[str, Any], workers: RegoWorkers | None = None) -> View:
    guard = Guard(rego_workers=workers)
    guard.install(json.dumps(policy).encode(), "bench")
    return guard.view(AGENT)


def _p50(policy: dict[str, Any], calls: int, vary: bool) -> tuple[float, float]:
    view = _view(policy)
    prepared = _facts(AGENT, calls, vary)
    assert view.check_call(prepared[0]) is None
    samples = []
    for one in prepared:
        start = time.perf_counter_ns()
        view.check_call(one)
        samples.append(time.perf_counter_ns() - start)
    return _stats(samples)


async def _p50_workers(policy: dict[str, Any], calls: int, vary: bool) -> tuple[float, float]:
    async with RegoWorkers() as workers:
        view = _view(policy, workers)
        prepared = _facts(AGENT, calls, vary)
        for _ in range(120):  # the workers start (each its own interpreter: ~1 s of CPU)
            if await view.check_call_within_budget(prepared[0]) is None:
                break
            await anyio.sleep(0.5)
        await anyio.sleep(2)
        samples = []
        for one in prepared:
            start = time.perf_counter_ns()
            await view.check_call_within_budget(one)
            samples.append(time.perf_counter_ns() - start)
        return _stats(samples)


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
    for label, policy, vary in cases[1:]:
        p50, p99 = anyio.run(_p50_workers, policy, calls, vary, backend_options={"use_uvloop": True})
        print(f"{label}, worker process: p50 {p50:.4f} ms (+{p50 - base:.4f}), p99 {p99:.4f} ms")


if __name__ == "__main__":
    main()
