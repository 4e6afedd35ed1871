"""How long `toolmesh audit verify` takes over a chained audit file of N records.

    python -m bench.audit_verify --records 1000000 [--file PATH]

Writes N realistic records (about 450 bytes each, the router's own record shape) through the
file sink's chain, then times `python -m router audit verify FILE` as a separate process (what
an auditor runs: start-up included). The target is 1,000,000 records in under 10 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from router.observe.audit_chain import Chain


def write(path: Path, count: int) -> None:
    chain = Chain()
    base = {
        "time": "2026-12-02T08:00:00.000Z", "request_id": "", "agent": "agent-7",
        "session": "3f2a9c0d1e4b5a68", "era": "legacy", "via": "mcp", "method": "tools/call",
        "target": "search__fetch_page", "server": "search", "instance": "search#2",
        "arguments_bytes": 73, "arguments_sha256": "ab" * 32, "result_bytes": 2048,
        "result_sha256": "cd" * 32, "outcome": "ok", "error_code": None, "latency_ms": 12.345,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
    }  # fmt: skip
    with path.open("wb") as file:
        batch = []
        for n in range(count):
            base["request_id"] = f"{n:016x}"
            batch.append(chain.link(orjson.dumps(base)) + b"\n")
            if len(batch) == 10_000:
                file.writelines(batch)
                batch.clear()
        file.writelines(batch)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--file", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file or Path(tmp) / "audit.jsonl"
        started = time.perf_counter()
        write(path, args.records)
        wrote = time.perf_counter() - started
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "router", "audit", "verify", str(path)], check=False)
        took = time.perf_counter() - started
    size = path.stat().st_size if args.file else None
    print(
        f"wrote {args.records} records in {wrote:.2f} s; verify exit {done.returncode} in {took:.2f} s",
        end="",
    )
    print(f" ({size / 1e6:.0f} MB)" if size else "")


if __name__ == "__main__":
    main()
