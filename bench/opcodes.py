"""Python bytecode instructions the router executes per `tools/call`: a figure load cannot move.

    python bench/opcodes.py [--calls N] [--era legacy|modern] [--top K] [--save FILE] [--without usage,limits]
    python bench/opcodes.py --compare BEFORE.tsv AFTER.tsv [--top K]

CPU seconds per call (bench/cpu_cost.py) are what a hot-path change is judged by, but on a
shared 2-core machine they swing by tens of percent with whatever else runs. The number of
bytecode instructions the interpreter executes for one call does not: it is the same on a
quiet machine and a busy one, so it shows a change of a few percent that timing cannot, and it
says where (per function). It is a proxy: work done in C (the event loop, orjson, httptools,
the kernel) is not counted, and instructions differ in cost. Use it to find and size Python
work on the request path; judge the result with cpu_cost.py on a quiet machine.

The router runs as in cpu_cost.py (the fast backend, one router over it) but under
`traced_router.py`, which counts instructions per code object between two signals. The client
here sends `--calls` sequential calls (after a warm-up) on one session of `--era`.
With --save the per-function table is written as TSV (instructions, frames, function) for a
later --compare of two runs, e.g. before and after a change (or two trees, each run with
PYTHONPATH set to its own). --without switches parts of the router off (bench/variants.py):
`--without usage` against no option is what usage metering costs a call.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import variants
from harness import BENCH_DIR, HOST, PROTOCOL_VERSION, Processes
from run import (
    RESULTS_DIR,
    open_target,
    spawn_router,
    start_backend,
    wait_backends,
    wait_router,
    write_catalog,
)

MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "toolmesh-bench", "version": "1"},
}


class KeptAlive:
    """One legacy session (or none, for 2026-07-28 calls) on one kept-alive connection, as wrk
    sends them in cpu_cost.py: connection set-up is not part of a call's cost."""

    def __init__(self, port: int, session_id: str, era: str) -> None:
        self.connection = http.client.HTTPConnection(HOST, port, timeout=30)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if era == "modern":
            self.headers["MCP-Protocol-Version"] = "2026-07-28"
        else:
            self.headers |= {"MCP-Protocol-Version": PROTOCOL_VERSION, "Mcp-Session-Id": session_id}
        self.era = era

    def call(self, tool: str, request_id: int) -> None:
        params: dict[str, object] = {"name": tool, "arguments": {"text": "hello"}}
        headers = self.headers
        if self.era == "modern":
            params["_meta"] = MODERN_META
            headers = {**headers, "Mcp-Method": "tools/call", "Mcp-Name": tool}
        message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
        self.connection.request("POST", "/mcp", orjson.dumps(message), headers)
        response = self.connection.getresponse()
        raw = response.read()
        if response.status != 200 or b"hello" not in raw:
            raise SystemExit(f"tools/call failed: HTTP {response.status} {raw[:200]!r}")


def measure(calls: int, era: str, without: str = "") -> tuple[list[tuple[int, int, str]], int]:
    table = RESULTS_DIR / "opcodes.tsv"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    table.unlink(missing_ok=True)
    with Processes(RESULTS_DIR / "logs", BENCH_DIR.parent) as procs:
        backend = start_backend(procs, "fast", 1)
        wait_backends([backend])
        catalog = write_catalog("opcodes", {"fast": backend})
        os.environ["TOOLMESH_TRACE_TABLE"] = str(table)
        os.environ[variants.ENV] = without
        command = [sys.executable, str(BENCH_DIR / "traced_router.py")]
        options = argparse.Namespace(router_command=command)
        router, port = spawn_router(procs, options, catalog, "opcodes")  # type: ignore[arg-type]
        wait_router(router, port)
        target = open_target("router", port, "fast")
        client = KeptAlive(port, target.session_id, era)
        for n in range(50):  # warm-up: first-call paths and caches filled
            client.call(target.tool, n)
        os.kill(router.pid, signal.SIGUSR1)
        time.sleep(0.3)
        for n in range(calls):
            client.call(target.tool, 1000 + n)
        os.kill(router.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 10
        while not table.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    return read_table(table), calls


def read_table(path: Path) -> list[tuple[int, int, str]]:
    rows = []
    for line in path.read_text().splitlines():
        count, frames, where = line.split("\t")
        rows.append((int(count), int(frames), where))
    return rows


def by_function(rows: list[tuple[int, int, str]], calls: int) -> dict[str, float]:
    """Instructions per call by `file:function` (files shortened to their path in the project)."""
    totals: dict[str, float] = {}
    for count, _, where in rows:
        path, name, _line = where.rsplit(":", 2)
        for marker in ("/router/", "/site-packages/", "/lib/python3"):
            if marker in path:
                path = path.split(marker, 1)[1]
                break
        key = f"{path}:{name}"
        totals[key] = totals.get(key, 0.0) + count / calls
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--era", choices=("legacy", "modern"), default="legacy")
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    parser.add_argument("--save", type=Path, help="write the per-call table here (TSV)")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--without", default="", help=f"parts switched off: {', '.join(variants.PARTS)}")
    args = parser.parse_args()
    try:
        variants.parts(args.without)
    except ValueError as exc:
        parser.error(str(exc))
    if args.compare:
        before, after = (Counter(read_saved(p)) for p in args.compare)
        print(f"instructions per call: {sum(before.values()):.0f} -> {sum(after.values()):.0f}")
        deltas = sorted(((after[k] - before[k], k) for k in before.keys() | after.keys()), reverse=True)
        for delta, name in deltas[: args.top] + deltas[-args.top :]:
            if abs(delta) >= 1:
                print(f"{delta:+8.0f}  {before[name]:7.0f} {after[name]:7.0f}  {name}")
        return
    rows, calls = measure(args.calls, args.era, args.without)
    totals = by_function(rows, calls)
    frames = sum(f for _, f, _ in rows) / calls
    without = f" without {args.without}" if args.without else ""
    print(
        f"{args.era} tools/call{without}: {sum(totals.values()):.0f} instructions, {frames:.0f} frames per call"
    )
    ranked = sorted(totals.items(), key=lambda item: -item[1])
    for name, count in ranked[: args.top]:
        print(f"{count:8.0f}  {name}")
    if args.save:
        args.save.write_text("".join(f"{count:.2f}\t{name}\n" for name, count in ranked))


def read_saved(path: Path) -> dict[str, float]:
    saved = {}
    for line in path.read_text().splitlines():
        count, name = line.split("\t")
        saved[name] = float(count)
    return saved


if __name__ == "__main__":
    main()
