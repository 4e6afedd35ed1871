"""Tool search: the ranker against plain BM25 on a frozen evaluation set, tokens, speed, memory.

    python bench/search.py              # quality on the three query sets, tokens, scale
    python bench/search.py --misses     # also list the queries.jsonl queries the ranker misses@5
    python bench/search.py --no-scale   # skip the 5,000-tool timing/memory part

The evaluation set is bench/toolsearch/ (frozen tools/list output of real servers, made by its
collect.py; queries.jsonl was used while tuning the ranker, heldout.jsonl and heldout2.jsonl never
were; heldout2.jsonl was written later, before the ranker's round-6 changes, without reading
heldout.jsonl). The ranker is router/catalog/search/; the baseline is search_baseline.py. Results go to
bench/results/search.json; docs/benchmarks.md reports them.

A set named `unseenN-agent` asks `unseenN`'s tasks as an agent would, with the short query it
writes from the user's request ("block phone number on Fritzbox"), on the same catalog.

Quality metrics, per query set:
  recall@k  share of queries with at least one acceptable tool in the top k (the acceptable tools
            of a query are alternatives: any one of them does the task);
  MRR       mean of 1/rank of the first acceptable tool (0 when none is in the top 50).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
HERE = BENCH / "toolsearch"
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from search_baseline import BM25Index  # noqa: E402

from router.catalog.index import Definitions, Index  # noqa: E402
from router.catalog.naming import NamingPolicy  # noqa: E402
from router.catalog.search import Hit, SearchIndex  # noqa: E402
from router.catalog.search.live import LiveSearch  # noqa: E402
from router.catalog.search.query import QueryReader  # noqa: E402
from router.catalog.search.text import clear_caches  # noqa: E402
from router.guard.agent import Agent  # noqa: E402
from router.guard.guard import Guard  # noqa: E402
from router.guard.views import OPEN  # noqa: E402
from router.relay.meta_tools import ToolSearch, ToolsSettings, render  # noqa: E402

Server = dict[str, Any]
Query = dict[str, Any]


def load_servers(folder: Path = HERE / "evalset") -> list[Server]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def catalog_for(servers: list[Server], set_name: str) -> list[Server]:
    """The catalog a query set is evaluated on: the evaluation set, plus the servers in the
    folder of the set's name (up to a "-") if there is one (`unseen/` for `unseen.jsonl` and
    `unseen-blind.jsonl`: servers no ranker was tuned on, whose queries compete with every tool of
    the evaluation set)."""
    extra = HERE / set_name.partition("-")[0]
    return [*servers, *load_servers(extra)] if extra.is_dir() else servers


def load_queries(path: Path) -> list[Query]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def quality(search: Callable[[str, int], list[Hit]], queries: Sequence[Query]) -> dict[str, float]:
    r1 = r5 = rr = 0.0
    for q in queries:
        relevant = {tuple(x) for x in q["relevant"]}
        keys = [h.key for h in search(q["query"], 50)]
        rank = next((i + 1 for i, k in enumerate(keys) if k in relevant), None)
        if rank is not None:
            rr += 1.0 / rank
            r1 += rank == 1
            r5 += rank <= 5
    n = len(queries)
    return {"recall@1": r1 / n, "recall@5": r5 / n, "mrr": rr / n, "queries": n}


# ---- tokens -------------------------------------------------------------------------------------


def _tok(obj: Any) -> float:
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False)) / 4


def router_index(servers: Sequence[Server], generation: int = 1) -> Index:
    """The router's own catalog Index over the servers (prefixed names, as by default)."""
    defs = {
        s["server"]: Definitions(tools=tuple(s["tools"]), instructions=s.get("instructions")) for s in servers
    }
    return Index(NamingPolicy("always", "__", 64), defs, generation)


def tokens(servers: Sequence[Server], queries: Sequence[Query]) -> dict[str, float]:
    """Flat tools/list vs the search-mode list plus one search_tools result page (5 hits), both as
    the router produces them (router/relay/meta_tools.py)."""
    index = router_index(servers)
    search = ToolSearch(ToolsSettings(mode="search"), serving=lambda server: True)
    flat_tokens = len(index.pages("tools", 0)[0]) / 4
    listed = search.listed(None, OPEN, index)
    assert listed is not None
    meta_tokens = len(listed) / 4
    pages: list[float] = []
    for q in queries:
        found = search.search(OPEN, index, q["query"], 5)
        result = {"content": [{"type": "text", "text": render(found["tools"])}], "structuredContent": found}
        pages.append(_tok(result))
    page = statistics.mean(pages)
    return {
        "tools": len(index.tools),
        "flat_list": flat_tokens,
        "search_list": meta_tokens,
        "result_page_mean": page,
        "result_page_max": max(pages),
        "search_total": meta_tokens + page,
        "ratio": (meta_tokens + page) / flat_tokens,
    }


# ---- scale-up -----------------------------------------------------------------------------------

_FILLER = (
    "quickly",
    "reliably",
    "for the current account",
    "in the workspace",
    "as JSON",
    "if present",
    "with pagination",
    "from the API",
    "safely",
    "by identifier",
)


def perturb(servers: Sequence[Server], target: int, seed: int = 7) -> list[Server]:
    """Copies of the real servers under new names, with descriptions lightly perturbed (a word
    dropped, a filler phrase added), until ``target`` tools exist in total."""
    rng = random.Random(seed)
    out = [dict(s) for s in servers]
    total = sum(len(s["tools"]) for s in out)
    copy = 0
    while total < target:
        copy += 1
        for s in servers:
            if total >= target:
                break
            tools = []
            for t in s["tools"]:
                t2 = dict(t)
                words = str(t.get("description") or "").split()
                if len(words) > 4:
                    del words[rng.randrange(len(words))]
                words.append(rng.choice(_FILLER))
                t2["description"] = " ".join(words)
                tools.append(t2)
            out.append(
                {"server": f"{s['server']}-{copy:02d}", "instructions": s.get("instructions"), "tools": tools}
            )
            total += len(tools)
    return out


def build(servers: Sequence[Server]) -> SearchIndex:
    index = SearchIndex()
    for s in servers:
        index.put_server(s["server"], s.get("instructions"), s["tools"])
    return index


def build_bm25(servers: Sequence[Server]) -> BM25Index:
    """The baseline over the same servers, as `build` makes the ranker's index."""
    bm25 = BM25Index()
    for s in servers:
        bm25.put_server(s["server"], s.get("instructions"), s["tools"])
    return bm25


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def scale(  # noqa: PLR0915
    servers: Sequence[Server], query_sets: dict[str, list[Query]], target: int = 5000
) -> dict[str, Any]:
    queries = [q for qs in query_sets.values() for q in qs]
    big = perturb(servers, target)
    n_tools = sum(len(s["tools"]) for s in big)
    gc.collect()
    tracemalloc.start()
    index = build(big)
    mem = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    gc.collect()

    t0 = time.perf_counter()
    build(big)
    build_s = time.perf_counter() - t0

    texts = [q["query"] for q in queries]
    for q in texts:  # warm the query cache and the all-visible view, as a long-running router would be
        index.search(q, 5)

    def timed(fn: Callable[[str], object], rounds: int = 3) -> dict[str, float]:
        # wall time, and CPU time of this thread (which leaves out the time other processes on a
        # shared machine took the core away)
        wall: list[float] = []
        cpu: list[float] = []
        for _ in range(rounds):
            for q in texts:
                t, c = time.perf_counter(), time.thread_time()
                fn(q)
                cpu.append((time.thread_time() - c) * 1000)
                wall.append((time.perf_counter() - t) * 1000)
        return {
            "p50": pct(wall, 50),
            "p99": pct(wall, 99),
            "max": max(wall),
            "cpu_p50": pct(cpu, 50),
            "cpu_p99": pct(cpu, 99),
        }

    all_ms = timed(lambda q: index.search(q, 5))
    # what a task never seen before costs once (its literals, intent and terms; cached per text
    # after): a reader with an empty cache for each round, on the index's lexicon and neighbours
    read_cpu: list[float] = []
    for _ in range(3):
        reader = QueryReader(index.weights, index.lexicon, index.neighbours)
        for q in texts:
            c = time.thread_time()
            reader.read(q)
            read_cpu.append((time.thread_time() - c) * 1000)
    keys = index.keys()
    half = frozenset(k for i, k in enumerate(keys) if i % 2 == 0)
    index.search("warm", 5, visible=half, token="half")
    half_ms = timed(lambda q: index.search(q, 5, visible=half, token="half"))

    # one server's registration at full size: cold (a server never seen, text-analysis caches
    # emptied) and warm (the same definitions registered again, as on drift checks and restarts)
    def register(src: Server, rounds: int, cold: bool) -> tuple[list[float], list[float]]:
        out: list[float] = []
        cpu: list[float] = []
        for r in range(rounds):
            fresh = perturb([src], 2 * len(src["tools"]), seed=1000 + r)[1] if cold else src
            name = f"{src['server']}-new{r}" if cold else src["server"]
            if cold:
                clear_caches()
            t, c = time.perf_counter(), time.thread_time()
            index.put_server(name, fresh.get("instructions"), fresh["tools"])
            cpu.append((time.thread_time() - c) * 1000)
            out.append((time.perf_counter() - t) * 1000)
            if cold:
                index.remove_server(name)
        return out, cpu

    # quality at scale: a perturbed copy stands for its original; copies of one tool are collapsed
    # into one result (else the ~10 copies of the top tool fill the first page)
    def base_search(q: str, k: int) -> list[Hit]:
        out: dict[tuple[str, str], Hit] = {}
        for h in index.search(q, 12 * k):
            base = (h.key[0] if h.key[0] in real else h.key[0].rsplit("-", 1)[0], h.key[1])
            out.setdefault(base, Hit(base, h.score))
        return list(out.values())[:k]

    real = {s["server"] for s in servers}
    # only sets about the catalog's own servers: an unseen set's tools are not in it (all would miss)
    at_scale = {
        name: quality(base_search, qs)
        for name, qs in query_sets.items()
        if all(server in real for q in qs for server, _ in q["relevant"])
    }

    first_ms: list[float] = []
    for _ in range(30):
        index.put_server("github-01", None, next(s for s in big if s["server"] == "github-01")["tools"])
        t = time.perf_counter()
        index.search(texts[0], 5)
        first_ms.append((time.perf_counter() - t) * 1000)
    reg: dict[str, Any] = {}
    for src_name in ("github", "atlassian"):
        src = next(s for s in servers if s["server"] == src_name)
        for mode in ("cold", "warm"):
            ms, cpu = register(src, 10, cold=mode == "cold")
            reg[f"{src_name} ({len(src['tools'])} tools) {mode}"] = {
                "p50": pct(ms, 50),
                "max": max(ms),
                "cpu_p50": pct(cpu, 50),
                "cpu_max": max(cpu),
            }
    return {
        "tools": n_tools,
        "servers": len(big),
        "memory_bytes": mem,
        "full_build_s": build_s,
        "search_all_visible_ms": all_ms,
        "read_new_task_cpu_ms": {"p50": pct(read_cpu, 50), "p99": pct(read_cpu, 99)},
        "search_half_visible_ms": half_ms,
        "first_search_after_update_ms": {"p50": pct(first_ms, 50), "p99": pct(first_ms, 99)},
        "register_one_server_ms": reg,
        "quality_at_scale": at_scale,
    }


def router_path(servers: Sequence[Server], queries: Sequence[Query], target: int = 5000) -> dict[str, Any]:
    """The same scale through the router's own code: `ToolSearch.search` (what search_tools and
    GET /v1/tools/search run, incl. the result rows) with no policy and with a policy view that
    hides half the servers, and `LiveSearch.follow` for one server's registration."""
    big = perturb(servers, target)
    names = sorted(s["server"] for s in big)
    search = ToolSearch(ToolsSettings(mode="search"), serving=lambda server: True)
    gc.collect()
    tracemalloc.start()
    index = router_index(big, 1)
    search.live.follow(index)
    mem = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    guard = Guard()
    allowed = json.dumps(names[::2])
    guard.install(f'{{"groups": {{"half": {{"allow": {{"servers": {allowed}}}}}}}}}'.encode(), "bench")
    half = guard.view(Agent("bench", frozenset({"half"})))
    texts = [q["query"] for q in queries]

    def timed(view: Any) -> dict[str, float]:
        for q in texts:  # warm, as a running router is
            search.search(view, index, q, 5)
        wall: list[float] = []
        cpu: list[float] = []
        for _ in range(3):
            for q in texts:
                t, c = time.perf_counter(), time.thread_time()
                search.search(view, index, q, 5)
                cpu.append((time.thread_time() - c) * 1000)
                wall.append((time.perf_counter() - t) * 1000)
        return {"p50": pct(wall, 50), "p99": pct(wall, 99), "cpu_p50": pct(cpu, 50), "cpu_p99": pct(cpu, 99)}

    everyone = timed(OPEN)
    halved = timed(half)
    # one server registers (a new Index in which every other server keeps its Definitions)
    follow: dict[str, Any] = {}
    generation = 2
    for src_name in ("github", "atlassian"):
        src = next(s for s in servers if s["server"] == src_name)
        ms: list[float] = []
        first: list[float] = []
        for r in range(10):
            copy = perturb([src], 2 * len(src["tools"]), seed=2000 + r)[1]
            added = Index(
                index.naming,
                {**index.servers, f"new-{src_name}-{r}": Definitions(tools=tuple(copy["tools"]))},
                generation,
            )
            generation += 1
            t = time.perf_counter()
            search.live.follow(added)
            ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            search.search(half, added, texts[r], 5)
            first.append((time.perf_counter() - t) * 1000)
            search.live.follow(index)  # and leaves again
        follow[f"{src_name} ({len(src['tools'])} tools)"] = {
            "follow_p50": pct(ms, 50), "follow_max": max(ms),
            "first_search_half_view_p50": pct(first, 50), "first_search_half_view_max": max(first),
        }  # fmt: skip
    return {
        "tools": len(index.tools),
        "memory_bytes_index_and_live": mem,
        "search_no_policy_ms": everyone,
        "search_half_view_ms": halved,
        "register_one_server_ms": follow,
    }


def semantic(  # noqa: PLR0915
    servers: Sequence[Server], sets: dict[str, list[Query]], target: int = 5000
) -> dict[str, Any]:
    """Words and meaning (`tools_semantic`): quality on every set through `LiveSearch`, then the
    costs: the model's memory, a query's vector, a search at 5,000 tools given the vector, and how
    long the worker takes to catch up with the catalog and with one server's registration."""
    from router.catalog.search.semantic import Meanings, MiniLM

    gc.collect()
    tracemalloc.start()
    model = MiniLM.load()
    model_mem = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    out: dict[str, Any] = {"model_memory_bytes": model_mem}

    def live_for(catalog: Sequence[Server]) -> tuple[ToolSearch, Index, Meanings, float]:
        meanings = Meanings(model)
        search = ToolSearch(ToolsSettings(mode="search"), lambda server: True, LiveSearch(meanings=meanings))
        index = router_index(catalog)
        t = time.perf_counter()
        search.live.follow(index)
        assert meanings.wait(3600)
        return search, index, meanings, time.perf_counter() - t

    base = list(servers)
    search, index, meanings, ready_s = live_for(base)
    out["catalog_ready_s"] = {"tools": len(index.tools), "seconds": ready_s}

    def hybrid_on(search: ToolSearch, index: Index, meanings: Meanings) -> Callable[[str, int], list[Hit]]:
        def hybrid(q: str, k: int) -> list[Hit]:
            found = search.live.search(index, q, k, meaning=meanings.embed(q))
            return [Hit((f.target.server, f.target.name), f.score) for f in found]

        return hybrid

    print(f"{'set':10} {'ranker':10} {'recall@1':>9} {'recall@5':>9} {'MRR':>7}")
    for name, qs in sets.items():
        catalog = catalog_for(base, name)
        on = (search, index, meanings) if catalog is base else live_for(catalog)[:3]
        m = quality(hybrid_on(*on), qs)
        out[f"{name}/words+meaning"] = m
        print(
            f"{name:10} {'semantic':10} {m['recall@1']:9.3f} {m['recall@5']:9.3f} {m['mrr']:7.3f}  (n={m['queries']})"
        )

    texts = [q["query"] for qs in sets.values() for q in qs]
    embed_ms: list[float] = []
    for q in texts:
        t = time.perf_counter()
        model.encode([q])
        embed_ms.append((time.perf_counter() - t) * 1000)
    out["query_vector_ms"] = {"p50": pct(embed_ms, 50), "p99": pct(embed_ms, 99)}

    big = perturb(servers, target)
    search, index, meanings, ready_s = live_for(big)
    out["scale_ready_s"] = {"tools": len(index.tools), "seconds": ready_s}
    vectors = {q: meanings.embed(q) for q in texts}
    for q in texts:
        search.search(OPEN, index, q, 5, meaning=vectors[q])
    wall: list[float] = []
    for _ in range(3):
        for q in texts:
            t = time.perf_counter()
            search.search(OPEN, index, q, 5, meaning=vectors[q])
            wall.append((time.perf_counter() - t) * 1000)
    out["scale_search_given_vector_ms"] = {"p50": pct(wall, 50), "p99": pct(wall, 99)}
    catch_up: dict[str, float] = {}
    for src_name in ("github", "atlassian"):
        src = next(s for s in servers if s["server"] == src_name)
        copy = perturb([src], 2 * len(src["tools"]), seed=3000)[1]
        added = Index(
            index.naming, {**index.servers, f"new-{src_name}": Definitions(tools=tuple(copy["tools"]))}, 99
        )
        t = time.perf_counter()
        search.live.follow(added)
        catch_up[f"{src_name} ({len(src['tools'])} tools): follow, on the event loop"] = (
            time.perf_counter() - t
        ) * 1000
        assert meanings.wait(600)
        catch_up[f"{src_name} ({len(src['tools'])} tools): until its vectors are in"] = (
            time.perf_counter() - t
        ) * 1000
        search.live.follow(index)
        assert meanings.wait(600)
    out["registration_vectors_ms"] = catch_up
    return out


def together(everything: Sequence[Server], sets: dict[str, list[Query]]) -> dict[str, Any]:
    """Every set's tasks against one catalog of every frozen server, as a router sees them when
    all of them register at once: each task competes with thousands of tools of servers it was
    not written for, and another server's tool that would serve it equally counts as a miss
    (the sets name the tools of their own catalog only), so this is a floor."""
    index, bm25 = build(everything), build_bm25(everything)
    queries = [q for qs in sets.values() for q in qs]
    out: dict[str, Any] = {"servers": len(everything), "tools": sum(len(s["tools"]) for s in everything)}
    print(f"together: {out['servers']} servers, {out['tools']} tools, {len(queries)} tasks")
    for rname, fn in (("toolsearch", index.search), ("bm25", bm25.search)):
        m = quality(fn, queries)
        out[rname] = m
        print(f"{'together':10} {rname:10} {m['recall@1']:9.3f} {m['recall@5']:9.3f} {m['mrr']:7.3f}")
    return out


def names(servers: Sequence[Server]) -> dict[str, float]:
    """Searching for a tool by its name: the share of tools found first by their own name (or a
    tool of another server with the same name: either is right) and by the router's exposed name
    `<server>__<name>` (that tool only), over every catalog in bench/toolsearch/."""
    index, bm25 = build(servers), build_bm25(servers)
    report: dict[str, float] = {"tools": float(sum(len(s["tools"]) for s in servers))}
    for rname, search in (("toolsearch", index.search), ("bm25", bm25.search)):
        by_name = exposed = 0
        for s in servers:
            for tool in s["tools"]:
                hits = search(tool["name"], 1)
                by_name += bool(hits) and hits[0].key[1] == tool["name"]
                hits = search(f"{s['server']}__{tool['name']}", 1)
                exposed += bool(hits) and hits[0].key == (s["server"], tool["name"])
        report[f"{rname}/name"] = by_name / report["tools"]
        report[f"{rname}/exposed_name"] = exposed / report["tools"]
    return report


def main() -> None:  # noqa: PLR0915
    ap = argparse.ArgumentParser()
    ap.add_argument("--misses", action="store_true")
    ap.add_argument("--no-scale", action="store_true")
    ap.add_argument("--semantic", action="store_true", help="also words+meaning (needs the semantic extra)")
    ap.add_argument(
        "--sets",
        default="queries,heldout,heldout2,heldout3,heldout4,heldout5,heldout6",
        help="query sets (bench/toolsearch/NAME.jsonl)",
    )
    ap.add_argument(
        "--together",
        action="store_true",
        help="also every set against one catalog of every frozen server (as when all register at once)",
    )
    ap.add_argument("--json", type=Path, default=BENCH / "results" / "search.json")
    args = ap.parse_args()

    servers = load_servers()
    index = build(servers)
    sets = {name: load_queries(HERE / f"{name}.jsonl") for name in args.sets.split(",")}
    report: dict[str, Any] = {"servers": len(servers), "tools": sum(len(s["tools"]) for s in servers)}
    print(f"evaluation set: {report['servers']} servers, {report['tools']} tools")
    print(f"{'set':10} {'ranker':10} {'recall@1':>9} {'recall@5':>9} {'MRR':>7}")
    for name, qs in sets.items():
        catalog = catalog_for(servers, name)
        ranker = index if catalog is servers else build(catalog)
        bm25 = build_bm25(catalog)
        if catalog is not servers:
            print(f"{name}: {len(catalog)} servers, {sum(len(s['tools']) for s in catalog)} tools")
        for rname, fn in (("toolsearch", ranker.search), ("bm25", bm25.search)):
            m = quality(fn, qs)
            report[f"{name}/{rname}"] = m
            print(
                f"{name:10} {rname:10} {m['recall@1']:9.3f} {m['recall@5']:9.3f} {m['mrr']:7.3f}"
                f"  (n={m['queries']})"
            )
    frozen = sorted(d for d in HERE.glob("unseen*") if d.is_dir())  # every catalog frozen beside the set
    everything = [*servers, *(s for folder in frozen for s in load_servers(folder))]
    if args.together:
        report["together"] = together(everything, sets)
    nm = names(everything)
    report["names"] = nm
    print(
        f"a tool's name searched, found first ({nm['tools']:.0f} tools): toolsearch {nm['toolsearch/name']:.3f}"
        f" (exposed name {nm['toolsearch/exposed_name']:.3f}); bm25 {nm['bm25/name']:.3f}"
        f" ({nm['bm25/exposed_name']:.3f})"
    )
    tuning = sets.get("queries") or next(iter(sets.values()))  # the set the misses and tokens use
    tk = tokens(servers, tuning)
    report["tokens"] = tk
    print(
        f"tokens: flat tools/list {tk['flat_list']:.0f}; search mode {tk['search_list']:.0f} + one page "
        f"{tk['result_page_mean']:.0f} (max {tk['result_page_max']:.0f}) = {tk['search_total']:.0f} "
        f"-> {100 * tk['ratio']:.2f} % of flat"
    )
    if args.misses:
        for q in tuning:
            relevant = {tuple(x) for x in q["relevant"]}
            hits = index.search(q["query"], 5)
            if not any(h.key in relevant for h in hits):
                print(
                    "MISS",
                    q["query"],
                    "| want",
                    sorted(relevant)[:3],
                    "| got",
                    [f"{h.key[0]}:{h.key[1]}" for h in hits[:3]],
                )
    if not args.no_scale:
        sc = scale(servers, sets)
        report["scale"] = sc
        print(json.dumps(sc, indent=1))
        rp = router_path(servers, [q for qs in sets.values() for q in qs])
        report["router_path"] = rp
        print(json.dumps(rp, indent=1))
    if args.semantic:
        sem = semantic(servers, sets)
        report["semantic"] = sem
        print(json.dumps({k: v for k, v in sem.items() if "/" not in k}, indent=1))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
