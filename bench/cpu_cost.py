"""CPU time the router spends per `tools/call`: a figure noise moves far less than latency.

    python bench/cpu_cost.py [--duration S] [--connections N] [--profile OUT.pstats] [--pid-file F]
                             [--identity] [--policy none|allow|budget] [--without usage,limits]

Latency on a shared 2-core machine swings with whatever else runs; CPU seconds consumed by the
router process per request do not (much). This starts the fast backend and a router over it,
drives `tools/call` with wrk through the router for a while, and divides the router's CPU time
(user + system, from /proc, reported apart) by the number of calls. Run it before and after a
hot-path change, interleaved, several times: on a busy machine one run says little. With
--profile the router runs under cProfile and the stats are written on exit; --pid-file writes
the router's pid so that py-spy or perf can attach to it while wrk runs. --identity turns on the
backend identity token (`"identity": true` in the backend's entry: a JWT signed per request).
--policy allow runs the router under a policy that allows everything; --policy budget under the
same policy plus a budget every call is checked against (a call budget per agent per day, far
from spent): the difference between the two is what a budget costs a call. --without usage (or
usage,limits) runs the router with usage metering (and the output-limit measurement) switched off
(bench/variants.py): interleaved with runs without the option, what metering costs a call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import variants
from harness import BENCH_DIR, Processes, run_wrk, wait_until
from run import (
    RESULTS_DIR,
    call_env,
    default_router_command,
    open_target,
    spawn_router,
    start_backend,
    wait_backends,
    wait_router,
    write_catalog,
)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of `pid` so far (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def router_command(args: argparse.Namespace) -> list[str]:
    """How the router is started, with the environment it inherits (policy, parts switched off)."""
    variants.parts(args.without)  # ValueError naming an unknown part
    if args.policy != "none":
        policy: dict[str, object] = {"default": "allow"}
        if args.policy == "budget":
            policy["budgets"] = {"bench": {"agent": "*", "period": "day", "calls": 10**12}}
        path = RESULTS_DIR / "cpu-policy.json"
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(policy))
        os.environ["TOOLMESH_POLICY_FILE"] = str(path)  # the router inherits it
    if args.profile:
        return [sys.executable, "-m", "cProfile", "-o", str(args.profile.resolve()), "-m", "router"]
    if args.without:
        os.environ[variants.ENV] = args.without  # the router inherits it
        return [sys.executable, str(BENCH_DIR / "variants.py")]
    return default_router_command()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="run the router under cProfile, stats to this file")
    parser.add_argument(
        "--pid-file", type=Path, help="write the router's pid here (to attach py-spy or perf)"
    )
    parser.add_argument("--identity", action="store_true", help="the backend's entry has `identity`")
    parser.add_argument("--policy", choices=["none", "allow", "budget"], default="none")
    parser.add_argument("--without", default="", help=f"parts switched off: {', '.join(variants.PARTS)}")
    args = parser.parse_args()
    if args.without and args.profile:
        parser.error("--profile runs the router as it is; leave out --without")
    try:
        command = router_command(args)
    except ValueError as exc:
        parser.error(str(exc))
    options = argparse.Namespace(router_command=command)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with Processes(RESULTS_DIR / "logs", BENCH_DIR.parent) as procs:
        backend = start_backend(procs, "fast", 1)
        wait_backends([backend])
        catalog = write_catalog("cpu", {"fast": backend})
        if args.identity:
            entries = json.loads(catalog.read_text())
            entries["mcpServers"]["fast"]["identity"] = True
            catalog.write_text(json.dumps(entries))
        router, port = spawn_router(procs, options, catalog, "cpu")  # type: ignore[arg-type]
        wait_router(router, port)
        if args.pid_file:
            args.pid_file.write_text(str(router.pid))
        target = open_target("router", port, "fast")
        run_wrk("call.lua", port, connections=args.connections, duration_s=2, env=call_env(target), cpu=None)
        user_before, system_before = cpu_times(router.pid)
        run = run_wrk(
            "call.lua",
            port,
            connections=args.connections,
            duration_s=args.duration,
            env=call_env(target),
            cpu=None,
        )
        user_after, system_after = cpu_times(router.pid)
        user, system = user_after - user_before, system_after - system_before
        calls = run["requests"] if "requests" in run else run["rps"] * args.duration
        without = f" without {args.without}" if args.without else ""
        print(
            f"router CPU per tools/call{without}: {(user + system) / calls * 1e6:.0f} us "
            f"(user {user / calls * 1e6:.0f}, system {system / calls * 1e6:.0f}; {calls:.0f} calls, "
            f"{run['rps']:.0f} req/s, p50 {run['p50_ms']:.3f} ms)"
        )
        if args.profile:
            router.popen.send_signal(2)
            wait_until(lambda: router.returncode is not None, 10, "router exit")


if __name__ == "__main__":
    main()
