"""Engine cost per step on a chain of ``code`` nodes, against a plain sqlite3 loop.

Usage: python bench/chain.py [--sizes 1000,10000] [--strict-sizes 1000,10000]
                             [--fns inc,ainc] [--rounds 3]

A chain ``n0 -> n1 -> ... -> n{N-1}`` of pure ``code`` nodes is run through the real
engine (``arun``, graph compiled beforehand and not timed) on a fresh store:

* ``sqlite-process``: :class:`SQLiteStore`, durability ``process`` (WAL, synchronous=NORMAL);
* ``sqlite-strict``: durability ``strict`` (WAL, synchronous=FULL: one fsync per commit);
* ``memory``: :class:`MemoryStore` (the engine alone, no I/O).

Two callables: ``inc`` is a plain function, which the engine runs in a worker thread
(while the step's start is committed); ``ainc`` is a coroutine, awaited in the loop (no
thread hop). When a plain function is chained, each round also times a bare round trip
of it through a worker thread, 1,000 times, outside any engine and any event loop (the
``hop`` line, and ``thread_hop_us`` on the sync lines): what handing work to another
thread and taking its result back costs on this machine. On Linux the ``hop`` line also
gives ``us_per_round_trip_one_cpu``, the same round trip with both threads on one CPU:
the difference is what waking a thread on the other core costs here.

In the same run, interleaved with the engine runs, a ``plain`` loop does what one
step of the chain must do at the least: BEGIN IMMEDIATE, INSERT the two events of a
step (the real canonical bytes of a ``node.completed`` and a ``node.started``), COMMIT,
on a file with the store's schema and pragmas.

One JSON line per measurement (median over ``--rounds`` interleaved rounds):
``us_per_step`` is the wall time of ``arun`` over the number of nodes; ``ratio_to_plain``
is that over the plain loop's µs per commit of the same durability (``round_ratios``: the
same ratio within each round, sorted, to show the spread); ``commits_per_node``
is ``EngineStats.appends`` over the number of nodes (one commit per node is the design).

Targets (issue 4, "Executor"): ``process`` <= 2x the plain loop per step (about 100 µs);
``strict`` <= 1.3x one fsync per node, i.e. the strict plain loop's µs per commit.
``memory`` has no target; its line shows what the engine costs without a store.
Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# This checkout's packages, not an installed copy, and bench.fns for the engine.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import fns as bench_fns
from executor.api import arun
from executor.schedule import EngineOptions
from kir import Edge, Graph, Node
from kir.compile import CompiledGraph, compile_graph
from kir.schema import CodeConfig
from substrate.blobs import pack
from substrate.codec import encode
from substrate.events import Head, NodeCompleted, NodeStarted, seal
from substrate.stores.base import EventStore
from substrate.stores.memory import MemoryStore
from substrate.stores.sqlite import SCHEMA, SQLiteStore

#: No step takes a minute: the engine never polls the store while it waits.
OPTIONS = EngineOptions(poll_interval_s=60.0)
SYNCHRONOUS = {"process": "NORMAL", "strict": "FULL"}
TARGETS = {"sqlite-process": 2.0, "sqlite-strict": 1.3}
#: Round trips per ``hop`` measurement.
HOPS = 1_000


def chain_graph(n: int, fn: str) -> Graph:
    """``n0 -> ... -> n{n-1}``; n0 reads ``$input.x``, every next node the previous output."""
    ref = f"bench.fns:{fn}"
    nodes = [Node(id="n0", config=CodeConfig(function=ref), inputs={"x": "$input.x"})]
    nodes += [
        Node(id=f"n{i}", config=CodeConfig(function=ref), inputs={"x": f"n{i - 1}"})
        for i in range(1, n)
    ]
    edges = [Edge(f"n{i - 1}", f"n{i}") for i in range(1, n)]
    return Graph(nodes=nodes, edges=edges, output=f"n{n - 1}")


def step_bodies() -> list[bytes]:
    """The canonical bytes of one step's events: a completion and the next start."""
    blobs: dict[str, bytes] = {}
    events, bodies, _ = seal(
        Head(4_321, "0" * 64),
        [
            (1_700_000_000_000_000, "n4321", NodeCompleted(output=pack(4_322, blobs))),
            (1_700_000_000_000_001, "n4322", NodeStarted(attempt=1)),
        ],
    )
    assert encode(events[0]) == bodies[0]
    return bodies


def plain_loop(path: Path, n: int, durability: str, bodies: list[bytes]) -> float:
    """µs per commit of a bare BEGIN / INSERT the step's rows / COMMIT loop."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={SYNCHRONOUS[durability]}")
    db.executescript(SCHEMA)
    h = "0" * 64
    seq = 0
    t = time.perf_counter()
    for _ in range(n):
        db.execute("BEGIN IMMEDIATE")
        for body in bodies:
            db.execute(
                "INSERT INTO events (run_id, seq, body, hash) VALUES (?, ?, ?, ?)",
                ("r", seq, body, h),
            )
            seq += 1
        db.execute("COMMIT")
    dt = time.perf_counter() - t
    db.close()
    return dt / n * 1e6


def hop_loop(fn: str, n: int) -> float:
    """µs per round trip of ``bench.fns`` callable ``fn`` through a worker thread, alone:
    submitted to a one-thread pool, its result waited for (no event loop)."""
    call = getattr(bench_fns, fn)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(call, 0).result()  # the worker exists before the clock starts
        t = time.perf_counter()
        for i in range(n):
            pool.submit(call, i).result()
        dt = time.perf_counter() - t
    return dt / n * 1e6


def hop_loop_one_cpu(fn: str, n: int) -> float | None:
    """:func:`hop_loop` with the calling thread and the worker on one CPU (Linux only).

    Both threads then wake each other on the same core. Set against :func:`hop_loop`, it
    shows how much of a round trip is the machine's cost of waking a thread on the other
    core. Only this thread is pinned, for the measurement, and then let go.
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})  # 0: this thread; the pool's worker inherits it
    try:
        return hop_loop(fn, n)
    finally:
        os.sched_setaffinity(0, allowed)


def engine_run(graph: CompiledGraph, store: EventStore) -> tuple[float, int, int]:
    """Wall seconds of ``arun``, commits, events."""
    t = time.perf_counter()
    result = asyncio.run(arun(graph, {"x": 0}, store=store, run_id="chain", options=OPTIONS))
    dt = time.perf_counter() - t
    if result.status != "completed" or result.output != len(graph.order):
        raise SystemExit(f"chain run did not complete: {result.status} {result.error}")
    assert result.stats is not None
    return dt, result.stats.appends, result.events


def new_store(kind: str, path: Path) -> EventStore:
    if kind == "memory":
        return MemoryStore()
    return SQLiteStore(path, durability=kind.removeprefix("sqlite-"))  # type: ignore[arg-type]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--sizes", type=_ints, default=[1_000, 10_000], help="chain lengths")
    ap.add_argument(
        "--strict-sizes", type=_ints, default=[1_000, 10_000], help="chain lengths under strict"
    )
    ap.add_argument("--fns", default="inc,ainc", help="bench.fns callables to chain")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    fns = [f for f in args.fns.split(",") if f]
    sync_fns = [f for f in fns if not inspect.iscoroutinefunction(getattr(bench_fns, f))]
    cases: list[tuple[str, int]] = [("memory", n) for n in args.sizes]
    cases += [("sqlite-process", n) for n in args.sizes]
    cases += [("sqlite-strict", n) for n in args.strict_sizes]
    graphs = {(fn, n): compile_graph(chain_graph(n, fn)) for fn in fns for _, n in cases}
    bodies = step_bodies()
    plain: dict[tuple[str, int], list[float]] = {}
    runs: dict[tuple[str, int, str], list[tuple[float, int, int]]] = {}
    hops: dict[str, list[float]] = {}
    hops_one_cpu: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for fn in sync_fns:
                hops.setdefault(fn, []).append(hop_loop(fn, HOPS))
                one_cpu = hop_loop_one_cpu(fn, HOPS)
                if one_cpu is not None:
                    hops_one_cpu.setdefault(fn, []).append(one_cpu)
            for kind, n in cases:
                d = Path(tmp) / f"{r}-{kind}-{n}"
                d.mkdir()
                if kind != "memory":
                    durability = kind.removeprefix("sqlite-")
                    us = plain_loop(d / "plain.db", n, durability, bodies)
                    plain.setdefault((durability, n), []).append(us)
                for fn in fns:
                    store = new_store(kind, d / f"{fn}.db")
                    try:
                        runs.setdefault((kind, n, fn), []).append(engine_run(graphs[fn, n], store))
                    finally:
                        store.close()
    for (durability, n), values in plain.items():
        _print(
            {
                "what": "plain",
                "store": f"sqlite-{durability}",
                "n": n,
                "rows_per_commit": len(bodies),
                "rounds": args.rounds,
                "us_per_commit": round(statistics.median(values), 2),
            }
        )
    for fn, values in hops.items():
        _print(
            {
                "what": "hop",
                "fn": fn,
                "n": HOPS,
                "rounds": args.rounds,
                "us_per_round_trip": round(statistics.median(values), 2),
                "round_us": sorted(round(v, 1) for v in values),
                **(
                    {"us_per_round_trip_one_cpu": round(statistics.median(hops_one_cpu[fn]), 2)}
                    if fn in hops_one_cpu
                    else {}
                ),
            }
        )
    for (kind, n, fn), results in runs.items():
        us = statistics.median(dt for dt, _, _ in results) / n * 1e6
        _, commits, events = results[0]
        line: dict[str, Any] = {
            "what": "chain",
            "store": kind,
            "fn": fn,
            "n": n,
            "rounds": args.rounds,
            "us_per_step": round(us, 2),
            "commits_per_node": round(commits / n, 4),
            "events_per_node": round(events / n, 4),
        }
        if fn in hops:
            line["thread_hop_us"] = round(statistics.median(hops[fn]), 2)
        base = plain.get((kind.removeprefix("sqlite-"), n)) or plain.get(("process", n))
        if base:
            ratio = us / statistics.median(base)
            line["ratio_to_plain"] = round(ratio, 2)
            # Each round runs the plain loop just before the engine: the ratio within a
            # round is the least disturbed by the machine's load changing between rounds.
            line["round_ratios"] = sorted(
                round(dt / n * 1e6 / b, 2) for (dt, _, _), b in zip(results, base, strict=True)
            )
            if kind in TARGETS:
                line["target_ratio"] = TARGETS[kind]
                line["met"] = ratio <= TARGETS[kind]
        _print(line)


def _print(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
