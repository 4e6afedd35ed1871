"""What each literal reading costs a new task: CPU per task of `strip_patterns` with and without it.

    python bench/literal_cost.py [--rounds R]

A task's text is read once (then cached by `QueryReader`), and `strip_patterns` tries every
literal of `router/catalog/search/literals.py` on it in turn. Over every task of the evaluation
sets (bench/toolsearch/*.jsonl), each literal is left out in turn and the whole pass timed, the
two passes interleaved round by round (so machine noise hits both alike); printed per literal:
the median CPU microseconds per task with all literals, without it, and the difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from router.catalog.search import literals

TASKS = Path(__file__).with_name("toolsearch")


def per_task_us(tasks: list[str]) -> float:
    """CPU microseconds per task of one `strip_patterns` pass over ``tasks``."""
    start = time.process_time()
    for task in tasks:
        literals.strip_patterns(task)
    return (time.process_time() - start) / len(tasks) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    tasks = [
        json.loads(line)["query"]
        for path in sorted(TASKS.glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    every = literals._LITERALS
    print(f"{len(tasks)} tasks, {rounds} rounds; CPU us per task (median)")
    print(f"{'literal':64} {'all':>7} {'without':>8} {'cost':>6}")
    for place, literal in enumerate(every):
        without = every[:place] + every[place + 1 :]
        with_it: list[float] = []
        without_it: list[float] = []
        for _ in range(rounds):
            literals._LITERALS = every
            with_it.append(per_task_us(tasks))
            literals._LITERALS = without
            without_it.append(per_task_us(tasks))
        literals._LITERALS = every
        a, b = statistics.median(with_it), statistics.median(without_it)
        print(f"{literal.pattern.pattern[:64]:64} {a:7.1f} {b:8.1f} {a - b:+6.1f}")


if __name__ == "__main__":
    main()
