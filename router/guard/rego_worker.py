"""A worker process that evaluates one Rego module for the router (`guard/rego.py` `RegoWorkers`).

The engine keeps the interpreter lock for a whole evaluation, so an evaluation on any thread of the
router's process stops its event loop until the engine returns: only another process can be
stopped when its budget runs out. The router starts this module with `python -m`, writes one line
`{"module": <source>, "query": <query>}` and reads `+` (ready) or `!<why>`; then every line it
writes is an input document (compact JSON, so one line) and every line it reads back is
`=<the query's value as JSON>` or `!<why it could not be evaluated>`. End of input ends the worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO

import orjson

PR_SET_PDEATHSIG = 1  # prctl(2)


def _one_line(exc: BaseException, path: str = "") -> bytes:
    text = str(exc).replace(path, "rego.module") if path else str(exc)
    return b"!" + " ".join(text.split()).encode()[:400] + b"\n"


def serve(lines: BinaryIO, out: BinaryIO) -> None:
    import opa_eval

    first = lines.readline()
    path = ""
    try:
        spec = orjson.loads(first)
        with tempfile.TemporaryDirectory(prefix="toolmesh-rego-") as tmp:
            path = str(Path(tmp) / "policy.rego")
            Path(path).write_text(spec["module"], encoding="utf-8")
            engine = opa_eval.OpaEval(path, query=spec["query"])
    except Exception as exc:
        out.write(_one_line(exc))
        out.flush()
        return
    out.write(b"+\n")
    out.flush()
    for line in lines:
        try:
            reply = b"=" + engine.evaluate(line.decode()).encode() + b"\n"
        except Exception as exc:
            reply = _one_line(exc, path)
        out.write(reply)
        out.flush()


def _die_with_the_router() -> None:
    """Linux: the kernel kills this worker when the router's process ends, even by SIGKILL (an
    evaluation that runs away would otherwise outlive it; an idle worker ends on end of input)."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the router was gone before the call above
            os._exit(0)


if __name__ == "__main__":
    _die_with_the_router()
    serve(sys.stdin.buffer, sys.stdout.buffer)
