"""Store append cost against a plain sqlite3 INSERT+COMMIT loop, measured in the same run.

Usage: python bench/store_append.py [--n 10000] [--batch 10] [--strict-n 2000]

For each durability mode it prints one JSON line per measurement:

* ``plain``: a bare sqlite3 loop — BEGIN, INSERT one row of the same bytes into a
  table of the same shape, COMMIT — on a file with the same pragmas (WAL, and
  synchronous=NORMAL for ``process``, FULL for ``strict``).
* ``append``: ``SQLiteStore.append`` of one pre-sealed event per call (the fence,
  chain link check, hashing and commit included).
* ``seal+append``: sealing the event too (canonical encoding and hash chaining),
  i.e. everything an engine pays to record one event.
* ``batch``: ``append`` of ``--batch`` events per call, reported per event.

``ratio`` is µs per append over the plain loop's µs per insert. The target is
<= 1.5 for ``process`` durability. Measurements are interleaved over ``--rounds``
rounds and the median is printed, so a noisy moment hurts every line alike.
Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from substrate.codec import encode
from substrate.events import EventData, Head, Inline, NodeCompleted, RunStarted, seal
from substrate.stores.sqlite import SCHEMA, SQLiteStore


def _draft(i: int) -> tuple[int, str | None, EventData]:
    return (
        1_700_000_000_000_000 + i,
        f"node{i % 100}",
        NodeCompleted(Inline({"i": i, "ok": True})),
    )


def plain_loop(path: Path, n: int, synchronous: str, body: bytes) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.executescript(SCHEMA)
    h = "0" * 64
    t = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO events (run_id, seq, body, hash) VALUES (?, ?, ?, ?)", ("r", i, body, h)
        )
        db.execute("COMMIT")
    dt = time.perf_counter() - t
    db.close()
    return dt / n * 1e6


def store_single(path: Path, n: int, durability: str, *, presealed: bool) -> float:
    store = SQLiteStore(path, durability=durability)  # type: ignore[arg-type]
    head = Head()
    first, first_bodies, head = seal(head, [(0, None, RunStarted("g", Inline({}), "00"))])
    store.append("r", 0, first, bodies=first_bodies)
    if presealed:
        batches = []
        for i in range(1, n + 1):
            events, bodies, head = seal(head, [_draft(i)])
            batches.append((events, bodies))
        t = time.perf_counter()
        for seq, (events, bodies) in enumerate(batches, start=1):
            store.append("r", seq, events, bodies=bodies)
        dt = time.perf_counter() - t
    else:
        t = time.perf_counter()
        for i in range(1, n + 1):
            events, bodies, new_head = seal(head, [_draft(i)])
            store.append("r", head.next_seq, events, bodies=bodies)
            head = new_head
        dt = time.perf_counter() - t
    store.close()
    return dt / n * 1e6


def store_batches(path: Path, n: int, durability: str, batch: int) -> float:
    store = SQLiteStore(path, durability=durability)  # type: ignore[arg-type]
    events, bodies, head = seal(Head(), [(0, None, RunStarted("g", Inline({}), "00"))])
    store.append("r", 0, events, bodies=bodies)
    t = time.perf_counter()
    i = 1
    while i <= n:
        events, bodies, new_head = seal(head, [_draft(j) for j in range(i, i + batch)])
        store.append("r", head.next_seq, events, bodies=bodies)
        head = new_head
        i += batch
    dt = time.perf_counter() - t
    store.close()
    return dt / (i - 1) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="appends per process-mode measurement")
    ap.add_argument(
        "--strict-n", type=int, default=2_000, help="appends per strict-mode measurement"
    )
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    events, _, _ = seal(Head(1, "0" * 64), [_draft(1)])
    body = encode(events[0])
    batch = f"batch{args.batch}"
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for durability, sync, n in (
            ("process", "NORMAL", args.n),
            ("strict", "FULL", args.strict_n),
        ):
            runs: dict[str, list[float]] = {}
            for r in range(args.rounds):
                p = d / f"{durability}-{r}"
                p.mkdir()
                measured = {
                    "plain": plain_loop(p / "plain.db", n, sync, body),
                    "append": store_single(p / "a.db", n, durability, presealed=True),
                    "seal+append": store_single(p / "s.db", n, durability, presealed=False),
                    batch: store_batches(p / "b.db", n, durability, args.batch),
                }
                for what, us in measured.items():
                    runs.setdefault(what, []).append(us)
            plain = statistics.median(runs["plain"])
            for what, values in runs.items():
                us = statistics.median(values)
                print(
                    json.dumps(
                        {
                            "durability": durability,
                            "what": what,
                            "n": n,
                            "rounds": args.rounds,
                            "us_per_event": round(us, 2),
                            "ratio_to_plain": round(us / plain, 2),
                        }
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    main()
