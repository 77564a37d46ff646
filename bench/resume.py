"""Resume of a long run: the time from a fresh store handle to the folded state.

Usage: python bench/resume.py [--items 50000] [--chain-nodes 10000] [--rounds 3]
                              [--no-profile]

A run is built once through the real engine on a SQLite file (durability ``process``):

* ``map``: ``src -> gap -> m -> join``, ``m`` a ``map`` with an inline ``code`` body over
  ``--items`` items: 2 events per item, 100,010 events for 50,000 items, in a graph
  of four nodes (so the log, not the graph, is what is large);
* ``chain``: ``--chain-nodes`` ``code`` nodes in a chain (2 events per node), to show the
  per-event fold of a chain and the cost of loading a large graph.

Each measurement runs in a fresh Python process (nothing cached: no decoders, no
page of the graph), opening a new :class:`SQLiteStore` on the file:

* ``open``: ``SQLiteStore(path)``;
* ``read``: ``store.read(run_id)``, i.e. fetch, re-hash, decode and chain-check every event;
* ``graph``: the stored graph decoded and compiled (what ``load_graph`` does after the read);
* ``fold``: ``RunState(graph, run_id).apply_all(log)``;
* ``aresume``: in another fresh process, ``aresume(run_id, store=...)`` on the same run.
  The run is completed, so ``aresume`` returns right after folding it: this is the
  whole resume path up to the folded state (plus building the result).

``read`` and ``fold`` run with the cycle collector paused, as ``aresume`` runs them
(``executor.api.load_graph`` and ``fold_log``). ``aresume`` also pays what the breakdown
does not show: the collector's first pass over the new objects once a pause ends, and
freeing the log and the state before it returns.

One JSON line per shape, medians over ``--rounds`` interleaved rounds
(``round_aresume_ms``: every round's ``aresume``, sorted). Target (issue
4, "Executor"): resume of 100k events <= 0.5 s. When a shape is over the target, a
cProfile of ``aresume`` is printed as ``profile`` lines (top functions by own time).
Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from executor.api import aresume, arun
from executor.fold import RunState
from executor.schedule import EngineOptions
from kir import Edge, Graph, Node
from kir.compile import compile_graph, load_compiled
from kir.schema import CodeConfig, MapConfig
from substrate.events import RunStarted
from substrate.gcpause import gc_paused
from substrate.stores.sqlite import SQLiteStore

TARGET_MS = 500.0
RUN_ID = "long"


def _code(node_id: str, fn: str, inputs: dict[str, str] | None = None, **params: Any) -> Node:
    return Node(
        id=node_id,
        config=CodeConfig(function=f"bench.fns:{fn}", params=params),
        inputs=inputs or {},
    )


def map_graph(n: int) -> Graph:
    body = _code("body", "asquare", {"item": "$item"})
    m = Node(id="m", config=MapConfig(over="src", node=body, max_concurrency=10_000))
    nodes = [
        _code("src", "items", n=n),
        _code("gap", "ainc", {"x": "$input.x"}),  # one async step before the map
        m,
        _code("join", "atotal", {"xs": "m"}),
    ]
    edges = [Edge("src", "gap"), Edge("gap", "m"), Edge("m", "join")]
    return Graph(nodes=nodes, edges=edges, output="join")


def chain_graph(n: int) -> Graph:
    nodes = [_code("n0", "ainc", {"x": "$input.x"})]
    nodes += [_code(f"n{i}", "ainc", {"x": f"n{i - 1}"}) for i in range(1, n)]
    edges = [Edge(f"n{i - 1}", f"n{i}") for i in range(1, n)]
    return Graph(nodes=nodes, edges=edges, output=f"n{n - 1}")


def build(path: Path, graph: Graph) -> int:
    """Run ``graph`` to completion on a new SQLite file; the number of events."""
    store = SQLiteStore(path)
    options = EngineOptions(poll_interval_s=60.0, max_concurrency=10_000)
    try:
        result = asyncio.run(
            arun(compile_graph(graph), {"x": 0}, store=store, run_id=RUN_ID, options=options)
        )
    finally:
        store.close()
    if result.status != "completed":
        raise SystemExit(f"building the run failed: {result.status} {result.error}")
    return result.events


# -- the measurements, each in its own process -------------------------------------------


def measure_breakdown(path: str) -> dict[str, float]:
    t0 = time.perf_counter()
    store = SQLiteStore(path)
    t1 = time.perf_counter()
    with gc_paused():
        log = store.read(RUN_ID)
    t2 = time.perf_counter()
    first = log[0].data
    assert isinstance(first, RunStarted)
    graph = load_compiled(store.get_graph(first.graph_hash))
    t3 = time.perf_counter()
    with gc_paused():
        state = RunState(graph, RUN_ID).apply_all(log)
    t4 = time.perf_counter()
    store.close()
    assert state.status == "completed"
    assert state.applied == len(log)
    return {"open": t1 - t0, "read": t2 - t1, "graph": t3 - t2, "fold": t4 - t3}


def measure_aresume(path: str) -> dict[str, float]:
    store = SQLiteStore(path)
    t = time.perf_counter()
    result = asyncio.run(aresume(RUN_ID, store=store))
    dt = time.perf_counter() - t
    store.close()
    assert result.status == "completed"
    return {"aresume": dt}


def in_child(mode: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    values: dict[str, float] = json.loads(out)
    return values


def profile(path: Path, top: int) -> list[dict[str, Any]]:
    """cProfile of one ``aresume`` on a fresh handle: the top functions by own time."""
    store = SQLiteStore(path)
    prof = cProfile.Profile()
    prof.enable()
    asyncio.run(aresume(RUN_ID, store=store))
    prof.disable()
    store.close()
    stats = pstats.Stats(prof)
    rows = []
    for (file, line, func), (_cc, ncalls, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(file).name}:{line}({func})" if line else func
        rows.append(
            {"function": where, "ncalls": ncalls, "tottime_ms": tt * 1e3, "cumtime_ms": ct * 1e3}
        )
    rows.sort(key=lambda r: -r["tottime_ms"])
    total = sum(r["tottime_ms"] for r in rows)
    for r in rows:
        r["tottime_ms"] = round(r["tottime_ms"], 1)
        r["cumtime_ms"] = round(r["cumtime_ms"], 1)
    return [{"profiled_total_ms": round(total, 1), **r} for r in rows[:top]]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--items", type=int, default=50_000, help="map items (2 events each)")
    ap.add_argument("--chain-nodes", type=int, default=10_000, help="0 to skip the chain")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--top", type=int, default=15, help="functions per profile")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, path = args.child
        measure = measure_breakdown if mode == "breakdown" else measure_aresume
        print(json.dumps(measure(path)))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.fns for the engine
    shapes = {"map": map_graph(args.items)}
    if args.chain_nodes:
        shapes["chain"] = chain_graph(args.chain_nodes)
    with tempfile.TemporaryDirectory() as tmp:
        paths: dict[str, Path] = {}
        events: dict[str, int] = {}
        build_s: dict[str, float] = {}
        for shape, graph in shapes.items():
            paths[shape] = Path(tmp) / f"{shape}.db"
            t = time.perf_counter()
            events[shape] = build(paths[shape], graph)
            build_s[shape] = time.perf_counter() - t
        runs: dict[str, dict[str, list[float]]] = {s: {} for s in shapes}
        for _ in range(args.rounds):
            for shape, path in paths.items():
                for mode in ("breakdown", "aresume"):
                    for what, seconds in in_child(mode, path).items():
                        runs[shape].setdefault(what, []).append(seconds)
        for shape, measured in runs.items():
            ms = {what: statistics.median(v) * 1e3 for what, v in measured.items()}
            n = events[shape]
            line: dict[str, Any] = {
                "what": "resume",
                "shape": shape,
                "events": n,
                "rounds": args.rounds,
                "build_s": round(build_s[shape], 2),
                **{f"{k}_ms": round(v, 1) for k, v in ms.items()},
                "sum_ms": round(sum(ms[k] for k in ("open", "read", "graph", "fold")), 1),
                "read_us_per_event": round(ms["read"] * 1e3 / n, 2),
                "fold_us_per_event": round(ms["fold"] * 1e3 / n, 2),
                "target_ms_per_100k_events": TARGET_MS,
                "aresume_ms_per_100k_events": round(ms["aresume"] * 100_000 / n, 1),
                # Every round, sorted: the spread the median hides on a shared machine.
                "round_aresume_ms": sorted(round(v * 1e3, 1) for v in measured["aresume"]),
                # The part of a resume that grows with the log (the graph's does not).
                "read_fold_ms_per_100k_events": round((ms["read"] + ms["fold"]) * 100_000 / n, 1),
            }
            line["met"] = line["aresume_ms_per_100k_events"] <= TARGET_MS
            print(json.dumps(line), flush=True)
            if not line["met"] and not args.no_profile:
                for row in profile(paths[shape], args.top):
                    print(json.dumps({"what": "profile", "shape": shape, **row}), flush=True)


if __name__ == "__main__":
    main()
