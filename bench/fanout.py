"""Fan-out 1 -> N -> 1: cost per branch, and how many commits the branches share.

Usage: python bench/fanout.py [--branches 1000] [--fns square,asquare] [--rounds 3]
                              [--stores memory,sqlite-process]

Two shapes, each run through the real engine (``arun``, graph compiled beforehand and
not timed) on a fresh store:

* ``map``: ``src -> gap -> m -> join``. ``src`` returns ``[0..N-1]``; ``m`` is a ``map``
  over it with an inline ``code`` body (``max_concurrency`` = N, and the engine's too);
  ``join`` sums the list. ``gap``, an async step between ``src`` and the map, keeps the
  shape the same as ``bench/resume.py``'s and ``bench/replay.py``'s map shape.
* ``parallel``: ``src -> b0..b{N-1} -> sink``: N ``code`` nodes in parallel between a
  source and a sink that takes all N outputs.

``square``/``asquare`` name the body callable (a plain function, run in a worker
thread, or a coroutine). One JSON line per (shape, store, callable), the median over
``--rounds`` interleaved rounds: ``us_per_branch`` is the wall time of ``arun`` over N;
``commits`` is ``EngineStats.appends``; ``branches`` is the number of branches
completed; ``grouped`` says whether ``commits < branches``.

Target (issue 4, "Executor"): fan-out commits are grouped — fewer commits than
completed branches. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from executor.api import arun
from executor.schedule import EngineOptions
from kir import Edge, Graph, Node
from kir.compile import CompiledGraph, compile_graph
from kir.schema import CodeConfig, MapConfig
from substrate.stores.base import EventStore
from substrate.stores.memory import MemoryStore
from substrate.stores.sqlite import SQLiteStore


def _code(node_id: str, fn: str, inputs: dict[str, str] | None = None, **params: Any) -> Node:
    return Node(
        id=node_id,
        config=CodeConfig(function=f"bench.fns:{fn}", params=params),
        inputs=inputs or {},
    )


def map_graph(n: int, fn: str) -> Graph:
    """``src -> gap -> m (map over src, inline body) -> join``."""
    body = _code("body", fn, {"item": "$item"})
    m = Node(id="m", config=MapConfig(over="src", node=body, max_concurrency=min(n, 10_000)))
    nodes = [
        _code("src", "items", n=n),
        _code("gap", "ainc", {"x": "$input.x"}),
        m,
        _code("join", "atotal", {"xs": "m"}),
    ]
    edges = [Edge("src", "gap"), Edge("gap", "m"), Edge("m", "join")]
    return Graph(nodes=nodes, edges=edges, output="join")


def parallel_graph(n: int, fn: str) -> Graph:
    """``src -> b0..b{n-1} -> sink``; each branch squares ``$input.x``, the sink counts."""
    branches = [_code(f"b{i}", fn, {"item": "src"}) for i in range(n)]
    sink = _code("sink", "acount", {f"b{i}": f"b{i}" for i in range(n)})
    nodes = [_code("src", "ainc", {"x": "$input.x"}), *branches, sink]
    edges = [Edge("src", f"b{i}") for i in range(n)] + [Edge(f"b{i}", "sink") for i in range(n)]
    return Graph(nodes=nodes, edges=edges, output="sink")


def expected(shape: str, n: int) -> int:
    return sum(i * i for i in range(n)) if shape == "map" else n


def new_store(kind: str, path: Path) -> EventStore:
    if kind == "memory":
        return MemoryStore()
    return SQLiteStore(path, durability=kind.removeprefix("sqlite-"))  # type: ignore[arg-type]


def engine_run(
    graph: CompiledGraph, store: EventStore, n: int, want: int
) -> tuple[float, int, int]:
    """Wall seconds of ``arun``, commits, events."""
    options = EngineOptions(poll_interval_s=60.0, max_concurrency=max(n, 16))
    t = time.perf_counter()
    result = asyncio.run(arun(graph, {"x": 0}, store=store, run_id="fan", options=options))
    dt = time.perf_counter() - t
    if result.status != "completed" or result.output != want:
        raise SystemExit(f"fan-out run did not complete: {result.status} {result.error}")
    assert result.stats is not None
    return dt, result.stats.appends, result.events


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--branches", type=int, default=1_000)
    ap.add_argument("--fns", default="square,asquare", help="bench.fns callables per branch")
    ap.add_argument("--shapes", default="map,parallel")
    ap.add_argument("--stores", default="memory,sqlite-process,sqlite-strict")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.fns for the engine
    n = args.branches
    builders = {"map": map_graph, "parallel": parallel_graph}
    cases = [
        (shape, kind, fn)
        for shape in args.shapes.split(",")
        for kind in args.stores.split(",")
        for fn in args.fns.split(",")
    ]
    graphs = {(shape, fn): compile_graph(builders[shape](n, fn)) for shape, _, fn in cases}
    runs: dict[tuple[str, str, str], list[tuple[float, int, int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for shape, kind, fn in cases:
                d = Path(tmp) / f"{r}-{shape}-{kind}-{fn}"
                d.mkdir()
                store = new_store(kind, d / "fan.db")
                try:
                    got = engine_run(graphs[shape, fn], store, n, expected(shape, n))
                finally:
                    store.close()
                runs.setdefault((shape, kind, fn), []).append(got)
    for (shape, kind, fn), results in runs.items():
        us = statistics.median(dt for dt, _, _ in results) / n * 1e6
        commits = [c for _, c, _ in results]
        print(
            json.dumps(
                {
                    "what": "fanout",
                    "shape": shape,
                    "store": kind,
                    "fn": fn,
                    "branches": n,
                    "rounds": args.rounds,
                    "us_per_branch": round(us, 2),
                    "commits": statistics.median(commits),
                    "commits_per_round": commits,
                    "events": results[0][2],
                    "grouped": max(commits) < n,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
