"""Replay of a long run: events regenerated and compared per second.

Usage: python bench/replay.py [--items 50000] [--chain-nodes 10000] [--rounds 3]
                              [--profile]

A run is recorded once through the real engine on a SQLite file, then replayed with
:func:`executor.replay.areplay` (every node re-run, every event re-encoded and compared
byte for byte with the recorded one):

* ``map``: ``src -> gap -> m -> join``, ``m`` a ``map`` with an inline async ``code``
  body over ``--items`` items (2 events per item: 100,010 events for 50,000 items);
* ``chain``: ``--chain-nodes`` async ``code`` nodes in a chain (2 events per node).

Each round runs in a fresh Python process and times ``areplay`` from a fresh store
handle (the read of the log, the graph, the regeneration and the comparison). One
JSON line per shape, medians over ``--rounds`` (``round_events_per_s``: every round,
sorted). Target (issue 5, "Replay"): >= 100k events/s. Nothing is asserted.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.resume import RUN_ID, build, chain_graph, map_graph
from executor.replay import areplay
from substrate.stores.sqlite import SQLiteStore

TARGET = 100_000.0


def measure(path: str, profile: bool) -> dict[str, float]:
    store = SQLiteStore(path)
    prof = cProfile.Profile() if profile else None
    t = time.perf_counter()
    if prof:
        prof.enable()
    report = asyncio.run(areplay(store, RUN_ID))
    if prof:
        prof.disable()
    dt = time.perf_counter() - t
    store.close()
    if prof:
        stats = pstats.Stats(prof)
        rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:12]  # type: ignore[attr-defined]
        for (file, line, fn), (_, ncalls, tottime, cumtime, _) in rows:
            name = f"{Path(file).name}:{line}({fn})"
            print(
                json.dumps(
                    {
                        "what": "profile",
                        "function": name,
                        "ncalls": ncalls,
                        "tottime_ms": round(tottime * 1e3, 1),
                        "cumtime_ms": round(cumtime * 1e3, 1),
                    }
                ),
                file=sys.stderr,
            )
    return {"seconds": dt, "events": report.events}


def in_child(path: Path, profile: bool) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", str(path)] + (["--profile"] if profile else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    if profile:
        sys.stderr.write(out.stderr)
    values: dict[str, float] = json.loads(out.stdout)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--chain-nodes", type=int, default=10_000, help="0 to skip the chain")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="profile the last round")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.profile)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        shapes = {"map": map_graph(args.items)}
        if args.chain_nodes:
            shapes["chain"] = chain_graph(args.chain_nodes)
        for shape, graph in shapes.items():
            path = Path(tmp) / f"{shape}.db"
            t = time.perf_counter()
            events = build(path, graph)
            build_s = time.perf_counter() - t
            runs = [
                in_child(path, args.profile and i == args.rounds - 1) for i in range(args.rounds)
            ]
            secs = statistics.median(r["seconds"] for r in runs)
            rate = events / secs
            print(
                json.dumps(
                    {
                        "what": "replay",
                        "shape": shape,
                        "events": events,
                        "rounds": args.rounds,
                        "record_s": round(build_s, 2),
                        "replay_s": round(secs, 3),
                        "events_per_s": round(rate),
                        "us_per_event": round(secs / events * 1e6, 2),
                        # Every round, sorted: the spread the median hides.
                        "round_events_per_s": sorted(round(events / r["seconds"]) for r in runs),
                        "target_events_per_s": TARGET,
                        "met": rate >= TARGET,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
