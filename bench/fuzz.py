"""The fuzz campaign: the suite's property-based tests (tests/test_fuzz_*.py), many more examples
and a fresh seed, against a real router process, the sample server and the misbehaving backend.

    .venv/bin/python bench/fuzz.py                      # 1000 examples per property, random seed
    .venv/bin/python bench/fuzz.py --examples 200 --seed 7

The properties (see the test modules): every request, in both eras, on /mcp, /mcp/{namespace}
and /v1/tools, with any JSON-RPC body and headers, gets the right JSON-RPC error or HTTP status,
never a 500 and never a traceback (in the reply or the router's log), within the router's
timeouts, and a namespace never shows a tool outside it; a backend answering garbage, half a
body, an endless stream, a huge result or the wrong id gets the client an error, and other
clients are served meanwhile; listen streams open at once or are refused; a polled stream resumes
with its own events only; the catalog and policy parsers answer any document with a result or a
ConfigError. After each HTTP module its router is back to the sessions and connections it held
before (or the module fails), and its resident memory before and after is reported.
Results: bench/results/fuzz.json (docs/fuzz.md).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--examples", type=int, default=1000, help="examples per property")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    memory = Path(tempfile.mkstemp(prefix="fuzz-memory-", suffix=".jsonl")[1])
    env = {
        **os.environ,
        "TOOLMESH_FUZZ_EXAMPLES": str(args.examples),
        "TOOLMESH_FUZZ_SEED": str(seed),
        "TOOLMESH_FUZZ_MEMORY": str(memory),  # tests/support/fuzzing.py `settle` writes here
    }
    argv = [
        sys.executable, "-m", "pytest", "tests/test_fuzz_http.py", "tests/test_fuzz_documents.py",
        "tests/test_fuzz_streams.py", "tests/test_fuzz_namespaces.py",
        "-q", "-p", "no:cacheprovider", f"--hypothesis-seed={seed}", "--hypothesis-show-statistics",
        "-o", "timeout=0",
    ]  # fmt: skip
    print(f"seed {seed}, {args.examples} examples per property", flush=True)
    started = time.monotonic()
    run = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    output = run.stdout + run.stderr
    print(output[-6000:])
    blocks = re.split(r"^(tests/test_fuzz_\w+\.py::\S+):\s*$", output, flags=re.M)
    properties = []
    for name, block in zip(blocks[1::2], blocks[2::2], strict=True):
        counts = re.findall(r"- (\d+) passing, (\d+) failing, and (\d+) invalid", block)
        totals = [sum(int(count[n]) for count in counts) for n in range(3)]
        properties.append({"test": name, "passing": totals[0], "failing": totals[1], "invalid": totals[2]})
    summary = re.findall(r"^=* ?(.*(?:passed|failed).*?) ?=*$", output, flags=re.M)
    routers = [orjson.loads(line) for line in memory.read_text().splitlines() if line]
    memory.unlink()
    for router in routers:  # resident memory of each module's router: after warm-up, after settling
        before, after = router["before"]["rss_kib"], router["after"]["rss_kib"]
        router["rss_growth_percent"] = round(100 * (after - before) / before, 1) if before else None
    report = {
        "seed": seed,
        "examples_per_property": args.examples,
        "seconds": round(seconds, 1),
        "exit_code": run.returncode,
        "summary": summary[-1] if summary else "",
        "properties": properties,
        "routers": routers,
        "failures": re.findall(r"^FAILED (.*)$", output, flags=re.M),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fuzz.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    sys.exit(run.returncode)


if __name__ == "__main__":
    main()
