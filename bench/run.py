"""Benchmark: a fast MCP backend called directly and through the toolmesh router, in one run.

    python bench/run.py [--quick] [--duration S] [--repeats N] [--direct-only]
                        [--output docs/benchmarks.md] [--json bench/results/latest.json]

Everything listens on 127.0.0.1 (free ports) and is started here and stopped by PID at the end.
Pinning (with taskset): the router on CPU 1; the backends and wrk on CPU 0. Load comes from wrk
(bench/wrk/*.lua); the Python client in harness.py only sets up sessions and checks answers.
See docs/benchmarks.md for the method.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from harness import (
    BENCH_DIR,
    HOST,
    PROTOCOL_VERSION,
    BenchError,
    McpClient,
    Processes,
    get_status,
    run_wrk,
    wait_until,
    wrk_version,
)
from report import checks_as_json, render, write_section

from router.up.processes import ManagedProcess, ProcessError, free_port

ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
ROUTER_CPU = 1
LOAD_CPU = 0  # the backends and wrk
LIST_BACKENDS = 20
LIST_TOOLS_EACH = 20


@dataclass
class Options:
    duration_s: int
    warmup_s: int
    repeats: int
    cold_starts: int
    churn_workers: int
    direct_only: bool
    router_command: list[str]
    output: Path
    json_path: Path
    only: frozenset[str] = frozenset()  # scenario keys; empty: all (and the docs are written)

    def wants(self, key: str) -> bool:
        return not self.only or key in self.only


@dataclass
class Target:
    """One side of a pair: where to send load, which tool to call, which session to use."""

    side: str  # "direct" or "router"
    port: int
    tool: str
    session_id: str = ""


@dataclass(frozen=True)
class Scenario:
    key: str
    script: str
    connections: int
    env: Callable[[Target], dict[str, str]]
    threads: int = 1
    # Where the router runs during this scenario (moved with `taskset -p` between scenarios).
    router_cpu: int = 1


def call_env(target: Target) -> dict[str, str]:
    params = {"name": target.tool, "arguments": {"text": "hello"}}
    return {
        "MCP_METHOD": "tools/call",
        "MCP_PARAMS": orjson.dumps(params).decode(),
        "MCP_SESSION_ID": target.session_id,
        "MCP_PROTOCOL_VERSION": PROTOCOL_VERSION,
    }


def list_env(target: Target) -> dict[str, str]:
    return {**call_env(target), "MCP_METHOD": "tools/list", "MCP_PARAMS": "{}"}


def churn_env(target: Target) -> dict[str, str]:
    return {"MCP_TOOL": target.tool, "MCP_PROTOCOL_VERSION": PROTOCOL_VERSION}


# --- processes -----------------------------------------------------------------------------


def start_backend(procs: Processes, name: str, tools: int) -> int:
    port = free_port()
    command = [sys.executable, str(BENCH_DIR / "fast_backend.py"), "--port", str(port)]
    procs.spawn([*command, "--tools", str(tools), "--name", name], f"backend-{name}", LOAD_CPU)
    return port


def backend_up(port: int) -> Callable[[], bool]:
    return lambda: bool(McpClient(port).discover())


def wait_backends(ports: list[int]) -> None:
    for port in ports:
        wait_until(backend_up(port), 20, f"backend on port {port}")


def default_router_command() -> list[str]:
    """``python -m router`` with this interpreter: the ``toolmesh`` console script's entry point."""
    return [sys.executable, "-m", "router"]


def write_catalog(name: str, servers: dict[str, int]) -> Path:
    catalog = {"mcpServers": {key: {"url": f"http://{HOST}:{port}/mcp"} for key, port in servers.items()}}
    path = RESULTS_DIR / f"catalog-{name}.json"
    path.write_bytes(orjson.dumps(catalog, option=orjson.OPT_INDENT_2))
    return path


def spawn_router(procs: Processes, options: Options, catalog: Path, name: str) -> tuple[ManagedProcess, int]:
    port = free_port()
    arguments = ["router", "--config", str(catalog), "--host", HOST, "--port", str(port)]
    return procs.spawn([*options.router_command, *arguments], f"router-{name}", ROUTER_CPU), port


def wait_router(child: ManagedProcess, port: int, timeout_s: float = 30) -> None:
    wait_until(lambda: get_status(port, "/readyz") == 200, timeout_s, "router /readyz", 0.002, child)


# --- measuring -----------------------------------------------------------------------------


def measure(scenario: Scenario, targets: list[Target], options: Options) -> dict[str, Any]:
    """Warm-up per side, then ``repeats`` interleaved runs; per-side medians of every metric."""

    def once(target: Target, duration_s: int) -> dict[str, Any]:
        return run_wrk(
            scenario.script,
            target.port,
            connections=scenario.connections,
            duration_s=duration_s,
            env=scenario.env(target),
            cpu=LOAD_CPU,
            threads=scenario.threads,
        )

    for target in targets:
        once(target, options.warmup_s)
    runs: dict[str, list[dict[str, Any]]] = {target.side: [] for target in targets}
    for _ in range(options.repeats):
        for target in targets:
            run = once(target, options.duration_s)
            runs[target.side].append(run)
            log(f"  {scenario.key:10} {target.side:6} {brief(run)}")
    medians = {side: median_runs(side_runs) for side, side_runs in runs.items()}
    return {"connections": scenario.connections, "runs": runs, "median": medians}


def pin(pid: int, cpu: int) -> None:
    """Move a running process (all its threads) to `cpu`, where taskset is installed."""
    if shutil.which("taskset") is not None:
        done = subprocess.run(["taskset", "-apc", str(cpu), str(pid)], capture_output=True, check=False)
        if done.returncode != 0:  # the results would say the router ran where it did not
            raise BenchError(f"taskset could not pin pid {pid} to CPU {cpu}: {done.stderr.decode().strip()}")


def median_runs(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {key: round(statistics.median(run[key] for run in runs), 4) for key in runs[0]}


def brief(run: dict[str, Any]) -> str:
    text = f"{run['rps']:>9,.0f} req/s  p50 {run['p50_ms']:.3f} ms  p99 {run['p99_ms']:.3f} ms"
    if "cycles_per_s" in run:
        text += f"  {run['cycles_per_s']:,.0f} sessions/s  failures {run['failures']}"
    return text + f"  errors {run['errors']}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def tool_named(names: list[str], server: str, tool: str) -> str:
    """The router's name for ``tool`` of ``server`` (``server__tool`` by default)."""
    preferred = [f"{server}__{tool}", tool]
    found = [name for name in preferred if name in names] or [n for n in names if n.endswith(tool)]
    if not found:
        raise BenchError(f"no tool named like {tool!r} in {names[:5]}...")
    return found[0]


def open_target(side: str, port: int, server: str, expected_tools: int | None = None) -> Target:
    """Opens a session, finds the tool and checks the tool count and that one call echoes."""
    client = McpClient(port)
    session_id = client.open()
    names = client.list_tools()
    if expected_tools is not None and len(set(names)) != expected_tools:
        raise BenchError(f"{side}: tools/list returned {len(set(names))} tools, not {expected_tools}")
    tool = tool_named(names, server, "tool_0")
    if client.call_tool(tool, "hello") != "hello":
        raise BenchError(f"{side}: tools/call {tool} did not echo its text")
    return Target(side, port, tool, session_id)


CALL_SCENARIOS = (
    # Latency at c=1 with the router on the core the direct side uses: both sides then pay the
    # same (same-core) wake-ups and only the router's own work differs. The same run with the
    # router alone on the other core follows, for comparison (see docs/benchmarks.md).
    Scenario("call_c1", "call.lua", 1, call_env, router_cpu=LOAD_CPU),
    Scenario("call_c1_own_core", "call.lua", 1, call_env, router_cpu=ROUTER_CPU),
    Scenario("call_c32", "call.lua", 32, call_env),
    Scenario("call_c128", "call.lua", 128, call_env),
)


def call_phase(procs: Processes, options: Options, results: dict[str, Any]) -> None:
    """Scenarios (1), (2) and (4): one fast backend, directly and through a router over it."""
    backend = start_backend(procs, "fast", 1)
    wait_backends([backend])
    targets = [open_target("direct", backend, "fast")]
    router: ManagedProcess | None = None
    if not options.direct_only:
        router, port = spawn_router(procs, options, write_catalog("fast", {"fast": backend}), "fast")
        wait_router(router, port)
        targets.append(open_target("router", port, "fast"))
    log(f"call phase: {', '.join(f'{t.side} :{t.port} {t.tool}' for t in targets)}")
    churn = Scenario("churn", "churn.lua", options.churn_workers, churn_env, options.churn_workers)
    for scenario in (*CALL_SCENARIOS, churn):
        if options.wants(scenario.key):
            if router is not None:
                pin(router.pid, scenario.router_cpu)
            results["scenarios"][scenario.key] = measure(scenario, targets, options)
    if router is not None:
        procs.stop(router)


def cold_start(
    procs: Processes, options: Options, catalog: Path, expected: int
) -> tuple[dict[str, float], ManagedProcess, int]:
    """Spawns a router; seconds to /readyz 200 and to the first tools/list with every tool."""
    started = time.perf_counter()
    child, port = spawn_router(procs, options, catalog, "list")
    wait_router(child, port)
    ready_s = time.perf_counter() - started
    client = McpClient(port)

    def complete() -> bool:
        try:
            if client.session_id is None:
                client.open()
            return len(set(client.list_tools())) >= expected
        except BenchError:
            client.session_id = None
            raise

    wait_until(complete, 30, f"a tools/list with {expected} tools", 0.002, child)
    full_s = time.perf_counter() - started
    log(f"  cold start: /readyz after {ready_s:.3f} s, all {expected} tools after {full_s:.3f} s")
    return {"ready_s": round(ready_s, 4), "full_list_s": round(full_s, 4)}, child, port


def list_phase(procs: Processes, options: Options, results: dict[str, Any]) -> None:
    """Scenario (3): tools/list of 400 tools; direct is one backend with all 400."""
    expected = LIST_BACKENDS * LIST_TOOLS_EACH
    wide = start_backend(procs, "wide", expected)
    wait_backends([wide])
    targets = [open_target("direct", wide, "wide", expected)]
    if not options.direct_only:
        port = start_list_router(procs, options, results, expected)
        targets.append(open_target("router", port, "s00", expected))
    log(f"list phase: {', '.join(f'{t.side} :{t.port}' for t in targets)}")
    list_scenario = Scenario("list_c1", "call.lua", 1, list_env)
    results["scenarios"]["list_c1"] = measure(list_scenario, targets, options)


def start_list_router(procs: Processes, options: Options, results: dict[str, Any], expected: int) -> int:
    """Starts the 20 backends, then a router over them ``cold_starts`` times; keeps the last one."""
    names = [f"s{i:02d}" for i in range(LIST_BACKENDS)]
    ports = {name: start_backend(procs, name, LIST_TOOLS_EACH) for name in names}
    wait_backends(list(ports.values()))
    catalog = write_catalog("list", ports)
    timings: list[dict[str, float]] = []
    router: ManagedProcess | None = None
    port = 0
    for _ in range(options.cold_starts):
        if router is not None:
            procs.stop(router)
        timing, router, port = cold_start(procs, options, catalog, expected)
        timings.append(timing)
    results["cold_start"] = {"runs": timings, "median": median_runs(timings)}
    return port


# --- the run -------------------------------------------------------------------------------


def command_output(command: list[str]) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    except OSError:
        return ""
    return completed.stdout.strip()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(wrk: str) -> dict[str, Any]:
    commit = command_output(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    if command_output(["git", "status", "--porcelain", "--", "router"]):
        commit += " + uncommitted changes in router/"
    now = datetime.datetime.now(datetime.UTC)
    return {
        "date": now.strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": command_output(["nproc"]) or "unknown",
        "cpu_model": cpu_model(),
        "platform": f"{platform.system()} {platform.release()}",
        "load_average": " ".join(f"{load:.2f}" for load in os.getloadavg()),
        "python": platform.python_version(),
        "wrk": wrk,
        "commit": commit,
    }


def new_results(options: Options, wrk: str) -> dict[str, Any]:
    pinning = None
    if shutil.which("taskset"):
        pinning = (
            f"router on CPU {ROUTER_CPU}, except for tools/call c=1 (CPU {LOAD_CPU}, as the direct "
            f"side; 'own core' repeats it on CPU {ROUTER_CPU}); backends and wrk on CPU {LOAD_CPU}"
        )
    config = {
        "duration_s": options.duration_s,
        "warmup_s": options.warmup_s,
        "repeats": options.repeats,
        "cold_starts": options.cold_starts,
        "churn_workers": options.churn_workers,
        "direct_only": options.direct_only,
        "pinning": pinning,
    }
    return {"machine": machine_info(wrk), "config": config, "scenarios": {}, "cold_start": {}}


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 s warm-up")
    parser.add_argument("--duration", type=int, help="seconds per measured run (default 10; quick 3)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per pair (default 3)")
    parser.add_argument("--cold-starts", type=int, default=3, help="router cold starts to time (default 3)")
    parser.add_argument(
        "--churn-workers", type=int, default=16, help="concurrent churn sessions (default 16)"
    )
    parser.add_argument("--direct-only", action="store_true", help="measure the direct half only")
    parser.add_argument(
        "--router-command",
        help="command that starts the router, before 'router --config ...' "
        "(default: this Python with -m router; e.g. '.venv/bin/toolmesh')",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated scenarios to run (call_c1, call_c32, call_c128, churn, list); "
        "results are printed, docs/benchmarks.md is left alone",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "latest.json")
    args = parser.parse_args(argv)
    duration = args.duration or (3 if args.quick else 10)
    return Options(
        duration_s=duration,
        warmup_s=1 if args.quick else 2,
        repeats=max(1, args.repeats),
        cold_starts=max(1, args.cold_starts),
        churn_workers=max(1, args.churn_workers),
        direct_only=args.direct_only,
        router_command=shlex.split(args.router_command) if args.router_command else default_router_command(),
        output=args.output,
        json_path=args.json,
        only=frozenset(key for key in args.only.split(",") if key),
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the children get stopped
    results = new_results(options, wrk_version())
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with Processes(RESULTS_DIR / "logs", ROOT) as procs:
        try:
            call_phase(procs, options, results)
            if options.wants("list"):
                list_phase(procs, options, results)
        except (BenchError, ProcessError) as error:
            log(f"benchmark failed: {error} (logs in {RESULTS_DIR / 'logs'})")
            return 1
    if options.only:
        for key, scenario in results["scenarios"].items():
            print(key, orjson.dumps(scenario["median"]).decode())
        return 0
    results["targets"] = checks_as_json(results)
    section = render(results)
    write_section(options.output, section)
    options.json_path.parent.mkdir(parents=True, exist_ok=True)
    options.json_path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(section, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
