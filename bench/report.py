"""Turns bench/run.py's results into a Markdown section and checks them against the targets."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

START_MARKER = "<!-- results:start -->"
END_MARKER = "<!-- results:end -->"
NOT_RUN = "not run"


@dataclass
class Check:
    """One target from the issue, with the measured value and the verdict (None: not measured)."""

    target: str
    limit: str
    measured: str
    passed: bool | None


def median_of(results: dict[str, Any], scenario: str, side: str, key: str) -> float | None:
    value = results["scenarios"].get(scenario, {}).get("median", {}).get(side, {}).get(key)
    return None if value is None else float(value)


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} ms"


def rate(value: float | None, unit: str) -> str:
    return "—" if value is None else f"{value:,.0f} {unit}"


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s"


def added(direct: float | None, router: float | None) -> float | None:
    return None if direct is None or router is None else router - direct


def ratio(direct: float | None, router: float | None) -> float | None:
    return None if not direct or router is None else router / direct


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"


def signed_ms(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f} ms"


def check_max(target: str, limit: float, value: float | None, shown: str) -> Check:
    return Check(
        target, f"<= {limit:g}", shown if value is not None else NOT_RUN, _verdict(value, limit, True)
    )


def check_min(target: str, limit: float, value: float | None, shown: str) -> Check:
    return Check(
        target, f">= {limit:g}", shown if value is not None else NOT_RUN, _verdict(value, limit, False)
    )


def _verdict(value: float | None, limit: float, at_most: bool) -> bool | None:
    if value is None:
        return None
    return value <= limit if at_most else value >= limit


def evaluate(results: dict[str, Any]) -> list[Check]:
    """The issue's targets (1)-(4) against the medians."""

    def get(scenario: str, side: str, key: str) -> float | None:
        return median_of(results, scenario, side, key)

    p50 = added(get("call_c1", "direct", "p50_ms"), get("call_c1", "router", "p50_ms"))
    p99 = added(get("call_c1", "direct", "p99_ms"), get("call_c1", "router", "p99_ms"))
    c32 = ratio(get("call_c32", "direct", "rps"), get("call_c32", "router", "rps"))
    list_p50 = get("list_c1", "router", "p50_ms")
    first_list = results.get("cold_start", {}).get("median", {}).get("full_list_s")
    churn = ratio(get("churn", "direct", "cycles_per_s"), get("churn", "router", "cycles_per_s"))
    return [
        check_max("(1) tools/call c=1: added p50 (ms)", 0.5, p50, signed_ms(p50)),
        check_max("(1) tools/call c=1: added p99 (ms)", 1.5, p99, signed_ms(p99)),
        check_min("(2) tools/call c=32: throughput, router/direct (%)", 25, _pct(c32), percent(c32)),
        check_max("(3) tools/list, 400 tools: router p50 (ms)", 3, list_p50, ms(list_p50)),
        check_max("(3) router start to first complete list (s)", 1, first_list, seconds(first_list)),
        check_min("(4) session churn: router/direct (%)", 40, _pct(churn), percent(churn)),
    ]


def _pct(value: float | None) -> float | None:
    return None if value is None else 100 * value


def latency_rows(results: dict[str, Any], scenario: str, title: str) -> list[list[str]]:
    rows = []
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
        direct = median_of(results, scenario, "direct", key)
        router = median_of(results, scenario, "router", key)
        rows.append([title, label, ms(direct), ms(router), signed_ms(added(direct, router))])
    return rows


def throughput_rows(results: dict[str, Any], scenario: str, title: str) -> list[list[str]]:
    direct = median_of(results, scenario, "direct", "rps")
    router = median_of(results, scenario, "router", "rps")
    row = [title, "throughput", rate(direct, "req/s"), rate(router, "req/s"), percent(ratio(direct, router))]
    return [row, *latency_rows(results, scenario, title)[:1]]


def churn_rows(results: dict[str, Any]) -> list[list[str]]:
    direct = median_of(results, "churn", "direct", "cycles_per_s")
    router = median_of(results, "churn", "router", "cycles_per_s")
    workers = results["config"]["churn_workers"]
    title = f"session churn, {workers} workers"
    return [[title, "sessions/s", rate(direct, "/s"), rate(router, "/s"), percent(ratio(direct, router))]]


def cold_start_rows(results: dict[str, Any]) -> list[list[str]]:
    median = results.get("cold_start", {}).get("median", {})
    title = "router start, 20 backends"
    return [
        [title, "to /readyz 200", "—", seconds(median.get("ready_s")), ""],
        [title, "to first list of all 400 tools", "—", seconds(median.get("full_list_s")), ""],
    ]


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def results_table(results: dict[str, Any]) -> list[str]:
    rows = [
        *latency_rows(results, "call_c1", "tools/call, c=1"),
        *latency_rows(results, "call_c1_own_core", "tools/call, c=1, router on its own core"),
        *throughput_rows(results, "call_c32", "tools/call, c=32"),
        *throughput_rows(results, "call_c128", "tools/call, c=128"),
        *latency_rows(results, "list_c1", "tools/list (400 tools), c=1"),
        *cold_start_rows(results),
        *churn_rows(results),
    ]
    return table(["Scenario", "Metric", "Direct", "Router", "Router vs direct"], rows)


def checks_table(checks: list[Check]) -> list[str]:
    verdicts = {True: "pass", False: "**FAIL**", None: NOT_RUN}
    rows = [[c.target, c.limit, c.measured, verdicts[c.passed]] for c in checks]
    return table(["Target", "Limit", "Measured", "Result"], rows)


def error_notes(results: dict[str, Any]) -> list[str]:
    notes = []
    for key, scenario in results["scenarios"].items():
        for side, runs in scenario["runs"].items():
            errors = sum(run["errors"] + run.get("failures", 0) for run in runs)
            if errors:
                notes.append(f"- {key} / {side}: {errors} failed requests or cycles over {len(runs)} runs")
    return notes or ["- none: every measured request got a 2xx answer"]


def header_lines(results: dict[str, Any]) -> list[str]:
    machine, config = results["machine"], results["config"]
    pinning = config["pinning"] or "none (taskset not found)"
    lines = [
        f"### Run of {machine['date']}",
        "",
        f"- Machine: {machine['nproc']} CPUs (`nproc`), {machine['cpu_model']}, {machine['platform']}; "
        f"load average at start {machine['load_average']}",
        f"- Python {machine['python']}, {machine['wrk']}, router commit {machine['commit']}",
        f"- Pinning: {pinning}",
        f"- Each run: {config['warmup_s']} s warm-up per side, then {config['duration_s']} s measured; "
        f"runs per pair: {config['repeats']}, interleaved (direct, router, direct, ...); medians shown",
    ]
    if config["direct_only"]:
        lines.append("- **Direct half only** (`--direct-only`): the router was not started")
    return lines


def render(results: dict[str, Any]) -> str:
    lines = [
        *header_lines(results),
        "",
        *results_table(results),
        "",
        "Targets (issue):",
        "",
        *checks_table(evaluate(results)),
        "",
        "Errors:",
        "",
        *error_notes(results),
    ]
    return "\n".join(lines) + "\n"


def checks_as_json(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [asdict(check) for check in evaluate(results)]


def write_section(path: Path, section: str) -> None:
    """Replaces the text between the results markers of ``path`` (appending them if absent)."""
    block = f"{START_MARKER}\n{section}{END_MARKER}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(START_MARKER) + ".*?" + re.escape(END_MARKER), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n## Results\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
