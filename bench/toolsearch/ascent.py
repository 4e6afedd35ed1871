"""Coordinate ascent over the ranking's weights (router/catalog/search/weights.py), in two folds.

Offline only. The query sets are split into two folds (every other set, in the order given); each
parameter in turn is tried at 0.6x and 1.5x its value (an integer rounded, a zero at 0.1 and 0.3),
and a step is kept when both folds put at least one more task first-or-in-the-first-five, or
neither loses and the two together gain at least three (with ``--both N``: only when each fold
gains at least N, as the third pass of 2026-12-06 did with 2). A step that only one fold likes is noise
or one set's taste. The score of a fold is its tasks found first plus its tasks in the first
five. Each evaluation rebuilds every set's index (about 10-20 s for 43 sets on this machine).

    python bench/toolsearch/ascent.py SET[,SET...] [--skip NAME,...] [--both N] > ascent.log

It prints every trial and the weights it ends with; the defaults in weights.py are changed by
hand from that, and a step that breaks a test of a real example is left out (docs/tool-search.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

import search as bench  # noqa: E402

from router.catalog.search.index import SearchIndex  # noqa: E402
from router.catalog.search.weights import Weights  # noqa: E402

Fold = list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]


def evaluate(weights: Weights, fold: Fold) -> tuple[int, int]:
    """(tasks found first, tasks found in the first five) over one fold's sets."""
    first = five = 0
    for catalog, queries in fold:
        index = SearchIndex(weights=weights)
        for server in catalog:
            index.put_server(server["server"], server.get("instructions"), server["tools"])
        for q in queries:
            relevant = {tuple(r) for r in q["relevant"]}
            keys = [h.key for h in index.search(q["query"], 5)]
            rank = next((i for i, k in enumerate(keys, 1) if k in relevant), None)
            first += rank == 1
            five += rank is not None
    return first, five


def steps(value: float | int) -> list[float | int]:
    if value == 0:
        return [0.1, 0.3]
    if isinstance(value, int):
        return [max(1, round(value * 0.6)), round(value * 1.5)]
    return [value * 0.6, value * 1.5]


def kept(deltas: list[int], both: int | None) -> bool:
    if both is not None:
        return all(d >= both for d in deltas)
    return all(d >= 1 for d in deltas) or (min(deltas) >= 0 and sum(deltas) >= 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", help="query sets, comma-separated (bench/toolsearch/NAME.jsonl)")
    ap.add_argument("--skip", default="", help="parameters not to move, comma-separated")
    ap.add_argument("--both", type=int, default=None, help="keep a step only if each fold gains this much")
    args = ap.parse_args()
    servers = bench.load_servers()
    data = [
        (bench.catalog_for(servers, name), bench.load_queries(bench.HERE / f"{name}.jsonl"))
        for name in args.sets.split(",")
    ]
    folds: list[Fold] = [data[0::2], data[1::2]]
    weights = Weights()
    base = [evaluate(weights, f) for f in folds]
    print("start", base, flush=True)
    skip = set(filter(None, args.skip.split(",")))
    for field in dataclasses.fields(Weights):
        if field.name in skip:
            continue
        value = getattr(weights, field.name)
        for candidate in steps(value):
            started = time.monotonic()
            changed: dict[str, Any] = {field.name: candidate}
            trial = dataclasses.replace(weights, **changed)
            scores = [evaluate(trial, f) for f in folds]
            deltas = [sum(s) - sum(b) for s, b in zip(scores, base, strict=True)]
            took = time.monotonic() - started
            print(f"{field.name} {value} -> {candidate} {scores} delta {deltas} {took:.0f}s", flush=True)
            if kept(deltas, args.both):
                weights, base = trial, scores
                print("KEEP", field.name, candidate, flush=True)
                break
    print("end", base)
    print(weights)


if __name__ == "__main__":
    main()
