"""The router with a part switched off, to measure what that part costs a call (bench only).

    TOOLMESH_BENCH_WITHOUT=usage[,limits] python bench/variants.py router --config ...

`usage`: calls are not metered (the call observer is built without a usage ledger: no usage
record, no per-call usage work after the reply). `limits`: results are not measured against the
output limit (`output_limit.enforce` returns the result as it is, size 0, and the reply encodes it). Nothing else
changes. bench/cpu_cost.py and bench/opcodes.py run the router through this with `--without`;
bench/traced_router.py applies it too. Not an operator's setting: metering and the output limit
are always on in a real router.
"""

from __future__ import annotations

import os
import runpy
from typing import Any

PARTS = ("usage", "limits")
ENV = "TOOLMESH_BENCH_WITHOUT"


def parts(value: str) -> list[str]:
    """The parts named in `value` (comma-separated); raises ValueError naming an unknown one."""
    named = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [part for part in named if part not in PARTS]
    if unknown:
        raise ValueError(f"unknown part {unknown[0]!r}: choose from {', '.join(PARTS)}")
    return named


def apply(value: str | None = None) -> list[str]:
    """Switch off the parts named in `value` (default: $TOOLMESH_BENCH_WITHOUT) in this process."""
    named = parts(os.environ.get(ENV, "") if value is None else value)
    if "usage" in named:
        from router.server import bookkeeping

        original = bookkeeping.CallObserver.__init__

        def unmetered(self: Any, metrics: Any, audit: Any, usage: Any = None, spans: Any = None) -> None:
            original(self, metrics, audit, None, spans)

        bookkeeping.CallObserver.__init__ = unmetered  # type: ignore[method-assign]
    if "limits" in named:
        from router.relay import output_limit

        def unmeasured(
            result: dict[str, Any], limit: Any, server: str, tool: str
        ) -> tuple[dict[str, Any], bytes]:
            return result, b""  # no JSON: the reply encodes the result itself

        output_limit.enforce = unmeasured
    return named


if __name__ == "__main__":
    apply()
    runpy.run_module("router", run_name="__main__", alter_sys=True)
