"""What a capability adds to a call: p50 of `tools/call` of a capability vs. of its provider's tool.

    python bench/capability_overhead.py [--calls N] [--rounds R]

One fast backend (`fast_backend.py`) and one router whose policy declares the capability
`echo_any` with one provider, `fast__tool_0` (argument `words` renamed to `text`). One legacy
session calls both, alternating call by call (so machine noise hits both alike), sequentially
(c=1); the p50 of each and their difference are printed per round, and the median difference
over rounds. Both calls go through the same policy view, so the difference is the capability's
own work: provider order, argument mapping, statistics, `_meta`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import orjson
from harness import HOST, McpClient, Processes, get_status, wait_until
from run import start_backend, wait_backends

from router.catalog.capabilities import CapabilitySpec
from router.catalog.index import Target
from router.relay.capabilities import Capabilities
from router.up.processes import free_port

POLICY = {
    "default": "allow",
    "capabilities": {
        "echo_any": {"providers": [{"tool": "fast__tool_0", "rename": {"words": "text"}}]},
    },
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls of each kind per round")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="toolmesh-capability-bench-"))
    with Processes(directory) as procs:
        backend = start_backend(procs, "fast", 4)
        wait_backends([backend])
        catalog = directory / "catalog.json"
        catalog.write_bytes(orjson.dumps({"mcpServers": {"fast": {"url": f"http://{HOST}:{backend}/mcp"}}}))
        policy = directory / "policy.json"
        policy.write_bytes(orjson.dumps(POLICY))
        port = free_port()
        command = [sys.executable, "-m", "router", "router", "--config", str(catalog), "--host", HOST,
                   "--port", str(port), "--log-level", "warning"]  # fmt: skip
        router = procs.start(command, "router", env={"TOOLMESH_POLICY_FILE": str(policy)})
        wait_until(lambda: get_status(port, "/readyz") == 200, 30, "router /readyz", 0.01, router)
        client = McpClient(port)
        client.open()
        direct = {"name": "fast__tool_0", "arguments": {"text": "x"}}
        capability = {"name": "echo_any", "arguments": {"words": "x"}}
        for _ in range(200):  # warm-up
            client.request("tools/call", direct)
            client.request("tools/call", capability)
        differences = []
        for round_number in range(options.rounds):
            times: dict[str, list[float]] = {"direct": [], "capability": []}
            for _ in range(options.calls):
                for kind, params in (("direct", direct), ("capability", capability)):
                    started = time.perf_counter()
                    client.request("tools/call", params)
                    times[kind].append(time.perf_counter() - started)
            p50 = {kind: statistics.median(samples) * 1000 for kind, samples in times.items()}
            differences.append(p50["capability"] - p50["direct"])
            print(f"round {round_number + 1}: direct p50 {p50['direct']:.3f} ms, capability p50 "
                  f"{p50['capability']:.3f} ms, added {differences[-1]:+.3f} ms")  # fmt: skip
        client.close()
    print(f"added p50 (median of {options.rounds} rounds, c=1, {options.calls} calls each): "
          f"{statistics.median(differences):+.3f} ms")  # fmt: skip
    print(f"in-process cost of the capability's own work per call: {in_process_us():.2f} us")
    return 0


def in_process_us(calls: int = 100_000) -> float:
    """The capability's own work (order, mapping, statistics, `_meta`) around a provider call
    that returns at once: what the router adds on its CPU, free of network noise."""
    spec = CapabilitySpec.model_validate(POLICY["capabilities"]["echo_any"])  # type: ignore[index]
    capabilities = Capabilities(lambda server: False, lambda server, tool: False)
    usable = [(spec.providers[0], Target("fast", "tool_0"))]
    params = {"name": "echo_any", "arguments": {"words": "x"}}
    reply = {"content": [{"type": "text", "text": "x"}]}

    async def invoke(target: Target, call: dict[str, Any], provider: str) -> dict[str, Any]:
        return reply

    async def per_call() -> tuple[float, float]:
        started = time.perf_counter()
        for _ in range(calls):
            await invoke(usable[0][1], params, "fast__tool_0")
        bare = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(calls):
            await capabilities.call("echo_any", spec, usable, params, invoke)
        return bare, time.perf_counter() - started

    bare, wrapped = anyio.run(per_call)
    return (wrapped - bare) / calls * 1e6


if __name__ == "__main__":
    sys.exit(main())
