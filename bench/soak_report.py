"""The soak's figures and verdict from its raw record (`bench/soak.py` writes both).

    .venv/bin/python bench/soak_report.py bench/results/soak.json   # re-evaluate a stored run

Targets (issue 21):
1. no call fails that was not in flight at a fault: a failure counts against the target unless
   the call was running while a process was being killed (started before it was reaped, ended
   after the signal) or overlapped a hang window (SIGSTOP to SIGCONT); the flooder's refusals are expected and kept apart;
2. p99 back to baseline within 5 s of each recovery: the p99 of the calls started 5 to 15 s after
   the part was back is at most 1.5 x the baseline p99 (the second half of the time before the first fault; plus
   2 ms, since one slow call on a shared machine is a p99 of a few hundred calls);
3. RSS growth < 5 % over the last 20 minutes (the last two thirds of a shorter run), per process,
   from two minutes after its last restart when that falls inside the window (and only if four
   minutes are left after that: a process that just started grows while it warms up). The growth
   judged is that of a least-squares line through every sample of the window, not the last
   samples against the first: a garbage-collected heap (NATS's, etcd's) rises and falls by more
   than 5 % within minutes (NATS 74 -> 83 -> 72 -> 78 MiB in one window), so two snapshots of 15 s
   measure where the sawtooth stood, while a leak shows as a slope. Both figures are reported.
"""

from __future__ import annotations

import itertools
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

P99_FACTOR = 1.5
P99_SLACK_MS = 2.0
RSS_GROWTH = 0.05
WARM_UP = 120.0  # a restarted process is judged from this long after its start, over at least twice it
KILLS = {"backend", "replica", "nats", "registrar"}


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def caught_by(call: dict[str, Any], faults: list[dict[str, Any]]) -> str | None:
    """The fault the call was in flight at, if any, named with its time (the same part is
    struck several times, and each fault's row counts only its own)."""
    for fault in faults:
        if (
            fault["kind"] in (*KILLS, "hang")
            and call["started"] <= fault["until"]
            and call["ended"] >= fault["at"]
        ):
            return _fault_name(fault)
    return None


def _fault_name(fault: dict[str, Any]) -> str:
    return f"{fault['kind']} {fault['target']} at {fault['at']:.1f} s"


def _latencies(calls: list[dict[str, Any]], start: float, end: float) -> list[float]:
    return [c["ended"] - c["started"] for c in calls if c["cause"] is None and start <= c["started"] < end]


def _bridged(call: dict[str, Any]) -> bool:
    """A call to the stdio server its registrar runs and bridges (`units`)."""
    return str(call["tool"]).startswith("units__")


def _rss_growth(samples: list[dict[str, Any]], window_start: float, end: float) -> dict[str, Any]:
    roles = sorted({role for s in samples for role in s["usage"]})
    found: dict[str, Any] = {}
    for role in roles:
        last = [s for s in samples if role in s["usage"]]
        if not last:
            continue
        pid = last[-1]["usage"][role]["pid"]
        mine = [s for s in last if s["usage"][role]["pid"] == pid]
        born = mine[0]["t"]
        restarted = born > samples[0]["t"] + 1.0
        start = max(window_start, born + WARM_UP) if restarted else window_start
        judged = [s for s in mine if s["t"] >= start]
        if len(judged) < 6 or judged[-1]["t"] - judged[0]["t"] < (2 * WARM_UP if restarted else 60.0):
            found[role] = {"judged": False, "why": f"restarted at {born:.0f} s: too little time left"}
            continue
        first = statistics.median(s["usage"][role]["rss_mib"] for s in judged[:3])
        final = statistics.median(s["usage"][role]["rss_mib"] for s in judged[-3:])
        growth = _trend_growth([s["t"] for s in judged], [s["usage"][role]["rss_mib"] for s in judged])
        found[role] = {
            "judged": True,
            "from_s": round(judged[0]["t"]),
            "to_s": round(judged[-1]["t"]),
            "rss_first_mib": round(first, 1),
            "rss_last_mib": round(final, 1),
            "growth_endpoints": round(final / first - 1 if first else 0.0, 4),
            "growth": round(growth, 4),
            "ok": growth < RSS_GROWTH,
        }
    return found


def _trend_growth(times: list[float], values: list[float]) -> float:
    """Growth over the window of the least-squares line through (times, values), as a fraction
    of the line's value at the window's start."""
    slope, intercept = statistics.linear_regression(times, values)
    start = intercept + slope * times[0]
    return slope * (times[-1] - times[0]) / start if start else 0.0


def _cpu(samples: list[dict[str, Any]], calls: int) -> dict[str, Any]:
    """CPU seconds each process used over the run (deltas between samples of one PID, so a
    restart loses at most one sampling interval), per call and in cores."""
    found: dict[str, Any] = {}
    span = samples[-1]["t"] - samples[0]["t"] if len(samples) > 1 else 0.0
    for role in sorted({role for s in samples for role in s["usage"]}):
        used = 0.0
        for before, after in itertools.pairwise(samples):
            a, b = before["usage"].get(role), after["usage"].get(role)
            if a and b and a["pid"] == b["pid"] and "cpu_s" in a:
                used += max(0.0, b["cpu_s"] - a["cpu_s"])
        found[role] = {
            "cpu_s": round(used, 1),
            "ms_per_call": round(used * 1000 / calls, 3) if calls else None,
            "cores": round(used / span, 3) if span else None,
        }
    return found


def evaluate(raw: dict[str, Any]) -> dict[str, Any]:
    t0 = raw["t0"]
    calls = [{**c, "started": c["started"] - t0, "ended": c["ended"] - t0} for c in raw["calls"]]
    faults = [
        {**f, "at": f["at"] - t0, "until": f["until"] - t0, "recovered": f["recovered"] - t0}
        for f in raw["faults"]
    ]
    samples = raw["samples"]
    steady = [c for c in calls if not c["flood"]]
    flood = [c for c in calls if c["flood"]]
    duration = raw["settings"]["minutes"] * 60
    first_fault = min((f["at"] for f in faults), default=duration)
    base = _latencies(steady, first_fault / 2, first_fault)  # after the warm-up, before any fault
    base_p99 = quantile(base, 0.99)
    threshold = None if base_p99 is None else base_p99 * P99_FACTOR + P99_SLACK_MS / 1000

    failures = []
    for call in steady:
        if call["cause"] is not None:
            failures.append({**call, "fault": caught_by(call, faults)})
    not_in_flight = [f for f in failures if f["fault"] is None]

    fault_rows = []
    for fault in faults:
        after = _latencies(steady, fault["recovered"] + 5, fault["recovered"] + 15)
        p99_after = quantile(after, 0.99)
        http_only = [c for c in steady if not _bridged(c)]
        p99_http = quantile(_latencies(http_only, fault["recovered"] + 5, fault["recovered"] + 15), 0.99)
        back_in = None
        if threshold is not None:
            for offset in range(0, 31):
                recent = _latencies(steady, fault["recovered"] + offset, fault["recovered"] + offset + 5)
                got = quantile(recent, 0.99)
                if got is not None and got <= threshold:
                    back_in = offset
                    break
        fault_rows.append(
            {
                "kind": fault["kind"],
                "target": fault["target"],
                "at_s": round(fault["at"], 1),
                "back_after_s": round(fault["recovered"] - fault["at"], 1),
                "failed_in_flight": sum(1 for f in failures if f["fault"] == _fault_name(fault)),
                "p99_5_to_15s_ms": ms(p99_after),
                "p99_5_to_15s_http_backends_ms": ms(p99_http),
                "p99_ok": p99_after is not None and threshold is not None and p99_after <= threshold,
                "p99_back_within_s": back_in,
            }
        )

    minutes = []
    for m in range(int(-(-duration // 60))):
        window = [c for c in steady if m * 60 <= c["started"] < (m + 1) * 60]
        ok = [c["ended"] - c["started"] for c in window if c["cause"] is None]
        failed = [f for f in failures if m * 60 <= f["started"] < (m + 1) * 60]
        in_minute = [s for s in samples if m * 60 <= s["t"] < (m + 1) * 60]
        last = in_minute[-1] if in_minute else None
        minutes.append(
            {
                "minute": m + 1,
                "calls": len(window),
                "failed": len(failed),
                "failed_not_in_flight": sum(1 for f in failed if f["fault"] is None),
                "causes": dict(Counter(f["cause"] for f in failed)),
                "p50_ms": ms(quantile(ok, 0.5)),
                "p99_ms": ms(quantile(ok, 0.99)),
                "p99_http_backends_ms": ms(
                    quantile(
                        [c["ended"] - c["started"] for c in window if c["cause"] is None and not _bridged(c)],
                        0.99,
                    )
                ),
                "p99_bridged_stdio_ms": ms(
                    quantile(
                        [c["ended"] - c["started"] for c in window if c["cause"] is None and _bridged(c)],
                        0.99,
                    )
                ),
                "flood_calls": sum(1 for c in flood if m * 60 <= c["started"] < (m + 1) * 60),
                "flood_refused": sum(
                    1
                    for c in flood
                    if m * 60 <= c["started"] < (m + 1) * 60 and c["cause"] == "jsonrpc -32004"
                ),
                "sessions": None if last is None else last["sessions"],
                "usage": None if last is None else last["usage"],
            }
        )

    window_start = duration - 20 * 60 if duration >= 30 * 60 else duration / 3
    rss = _rss_growth(samples, window_start, duration)
    flood_refused = sum(1 for c in flood if c["cause"] == "jsonrpc -32004")
    steady_limited = sum(1 for c in steady if c["cause"] == "jsonrpc -32004")
    verdict = {
        "no_failure_outside_faults": not not_in_flight,
        "p99_back_within_5s": all(row["p99_ok"] for row in fault_rows),
        "rss_growth_under_5pct": all(r["ok"] for r in rss.values() if r["judged"]),
        "flood_refused_and_contained": (flood_refused > 0 or not flood) and steady_limited == 0,
    }
    verdict["passed"] = all(verdict.values())
    return {
        "settings": raw["settings"],
        "machine": raw.get("machine", {}),
        "totals": {
            "calls": len(steady),
            "ok": sum(1 for c in steady if c["cause"] is None),
            "failed": len(failures),
            "failed_in_flight": len(failures) - len(not_in_flight),
            "failed_not_in_flight": len(not_in_flight),
            "causes": dict(Counter(f["cause"] for f in failures)),
            "by_era": {
                era: {
                    "calls": sum(1 for c in steady if c["era"] == era),
                    "failed": sum(1 for f in failures if f["era"] == era),
                }
                for era in sorted({c["era"] for c in steady})
            },
            "flood_calls": len(flood),
            "flood_refused": flood_refused,
            "skipped_by_client_bound": raw.get("skipped", 0),
            "legacy_reinitialized": raw.get("reinitialized", 0),
            "baseline_p50_ms": ms(quantile(base, 0.5)),
            "baseline_p99_ms": ms(base_p99),
            "p99_threshold_ms": ms(threshold),
        },
        "not_in_flight": [
            {k: (round(v, 3) if isinstance(v, float) else v) for k, v in f.items()}
            for f in not_in_flight[:50]
        ],
        "faults": fault_rows,
        "minutes": minutes,
        "rss_growth": rss,
        "cpu": _cpu(samples, len(calls)),
        "verdict": verdict,
    }


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def markdown(report: dict[str, Any]) -> str:
    s, t = report["settings"], report["totals"]
    lines = [
        f"Soak: {s['minutes']:g} min, {s['rate']:g} calls/s, {s['sessions']} clients (half 2025-era sessions, "
        f"half 2026-07-28 stateless), per-agent limit {s['limit']}/s; machine: {report['machine']}",
        "",
        f"Calls {t['calls']}: ok {t['ok']}, failed {t['failed']} ({t['failed_in_flight']} in flight at a fault, "
        f"{t['failed_not_in_flight']} not); causes {t['causes']}; by era {t['by_era']}. Flood: {t['flood_calls']} "
        f"calls, {t['flood_refused']} refused -32004. Baseline p50 {t['baseline_p50_ms']} ms, p99 "
        f"{t['baseline_p99_ms']} ms (threshold {t['p99_threshold_ms']} ms).",
        "",
        "| min | calls | failed | not in flight | causes | p50 ms | p99 ms | p99 HTTP backends | p99 bridged stdio "
        "| flood (refused) | sessions r1/r2/r3 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report["minutes"]:
        sessions = row["sessions"] or {}
        per = "/".join(_cell(sessions.get(f"router-{n}")) for n in (1, 2, 3))
        causes = ", ".join(f"{k} x{v}" for k, v in row["causes"].items()) or "-"
        lines.append(
            f"| {row['minute']} | {row['calls']} | {row['failed']} | {row['failed_not_in_flight']} | {causes} | "
            f"{_cell(row['p50_ms'])} | {_cell(row['p99_ms'])} | {_cell(row['p99_http_backends_ms'])} | "
            f"{_cell(row['p99_bridged_stdio_ms'])} | {row['flood_calls']} ({row['flood_refused']}) | {per} |"
        )
    roles = sorted({role for row in report["minutes"] for role in (row["usage"] or {})})
    lines += ["", "RSS MiB / open fds per process (with its descendants), last sample of each minute:", ""]
    lines.append("| min | " + " | ".join(roles) + " |")
    lines.append("| --- |" + " --- |" * len(roles))
    for row in report["minutes"]:
        usage = row["usage"] or {}
        cells = [f"{usage[r]['rss_mib']:.0f} / {usage[r]['fds']}" if r in usage else "-" for r in roles]
        lines.append(f"| {row['minute']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| at s | fault | target | back after s | failed in flight | p99 5-15 s after ms | ok | p99 back within s "
        "| same, HTTP backends only ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in report["faults"]:
        lines.append(
            f"| {f['at_s']} | {f['kind']} | {f['target']} | {f['back_after_s']} | {f['failed_in_flight']} | "
            f"{_cell(f['p99_5_to_15s_ms'])} | {'yes' if f['p99_ok'] else 'NO'} | {_cell(f['p99_back_within_s'])} | "
            f"{_cell(f['p99_5_to_15s_http_backends_ms'])} |"
        )
    lines += [
        "",
        "| process | judged from-to s | RSS first -> last MiB | last vs first | growth (trend, judged) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for role, r in report["rss_growth"].items():
        if r["judged"]:
            endpoints = r.get("growth_endpoints")
            lines.append(
                f"| {role} | {r['from_s']}-{r['to_s']} | {r['rss_first_mib']} -> {r['rss_last_mib']} | "
                f"{'-' if endpoints is None else f'{endpoints * 100:+.1f} %'} | "
                f"{r['growth'] * 100:+.1f} %{'' if r['ok'] else ' (over 5 %)'} |"
            )
        else:
            lines.append(f"| {role} | - | - | - | not judged: {r['why']} |")
    lines += [
        "",
        "CPU per process over the run (every call counted, the flood's too):",
        "",
        "| process | CPU s | ms per call | cores |",
        "| --- | --- | --- | --- |",
    ]
    for role, c in report.get("cpu", {}).items():
        lines.append(f"| {role} | {c['cpu_s']} | {_cell(c['ms_per_call'])} | {_cell(c['cores'])} |")
    v = report["verdict"]
    lines += ["", "Verdict: " + ("PASSED" if v["passed"] else "FAILED") + " " + str(v)]
    if report["not_in_flight"]:
        lines += ["", "Failures not in flight at a fault (first ones):"]
        lines += [
            f"- {f['started']:.2f}-{f['ended']:.2f} s {f['era']} {f['tool']}: {f['cause']} {f.get('detail', '')!r}"
            for f in report["not_in_flight"][:20]
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    stored = orjson.loads(Path(sys.argv[1]).read_bytes())
    print(markdown(evaluate(stored["raw"])))


if __name__ == "__main__":
    main()
