"""`python -m router` that counts the bytecode instructions it executes between two signals.

Used by bench/opcodes.py: SIGUSR1 starts counting (per code object, main thread), SIGUSR2
stops and writes the table to $TOOLMESH_TRACE_TABLE as TSV lines
`instructions<TAB>frames<TAB>file:function:line`. The handlers run on the event loop's thread
between instructions, which is where every request is served. Parts named in
$TOOLMESH_BENCH_WITHOUT are switched off first (bench/variants.py).
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from collections import Counter
from types import CodeType, FrameType
from typing import Any

instructions: Counter[CodeType] = Counter()
frames: Counter[CodeType] = Counter()


def _in_frame(frame: FrameType, event: str, arg: Any) -> Any:
    if event == "opcode":
        instructions[frame.f_code] += 1
    return _in_frame


def _on_call(frame: FrameType, event: str, arg: Any) -> Any:
    if event != "call":
        return None
    frame.f_trace_opcodes = True
    frames[frame.f_code] += 1
    return _in_frame


def _start(signum: int, frame: FrameType | None) -> None:
    instructions.clear()
    frames.clear()
    sys.settrace(_on_call)


def _stop(signum: int, frame: FrameType | None) -> None:
    sys.settrace(None)
    lines = (
        f"{count}\t{frames[code]}\t{code.co_filename}:{code.co_name}:{code.co_firstlineno}\n"
        for code, count in instructions.most_common()
    )
    with open(os.environ["TOOLMESH_TRACE_TABLE"], "w") as table:
        table.writelines(lines)


if __name__ == "__main__":
    import variants  # bench/ is on sys.path when this file runs as a script

    variants.apply()
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
    runpy.run_module("router", run_name="__main__", alter_sys=True)
