"""Instructions executed by the fold, a resume, a replay and a chain step, counted by callgrind.

Usage: python bench/instructions.py [--items 10000] [--chain-nodes 1000]
                                    [--what fold,resume,replay,chain,chain-sqlite] [--keep DIR]

Wall time on a shared machine moves by a third from one minute to the next; the number
of instructions a piece of work executes does not. This script runs each workload in a
child process under ``valgrind --tool=callgrind`` with collection switched on only
inside one call (the measured call is made through ``functools.reduce``, a C function
nothing else in the workload calls), after one warm-up call that is not counted:

* ``fold``: ``RunState(graph).apply_all(log)`` of a run built by ``bench/resume.py``'s map
  shape over ``--items`` items (2 events per item), the log read beforehand;
* ``resume``: ``aresume`` of that completed run on a new store handle (read, verify,
  fold, as ``bench/resume.py`` times it);
* ``replay``: ``areplay`` of that run on a new store handle (read, regenerate, compare,
  as ``bench/replay.py`` times it);
* ``chain``: ``arun`` of a chain of ``--chain-nodes`` async ``code`` nodes on a
  :class:`MemoryStore` (the engine alone, as ``bench/chain.py``'s memory line);
* ``chain-sqlite``: the same on a new :class:`SQLiteStore` file with durability
  ``process`` (as ``bench/chain.py``'s sqlite-process line; the kernel's work in the
  write system calls is not counted).

One JSON line per workload: ``instructions``, and that per event (fold, resume) or per
node (chain). Compare two versions of the code by running this script on each.
``--keep DIR`` leaves callgrind's output files there (``callgrind_annotate
--inclusive=yes DIR/replay.out`` breaks a count down by C function). Needs ``valgrind``;
counts only (nothing is asserted, nothing is timed).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chain import OPTIONS, chain_graph
from bench.resume import RUN_ID, build, map_graph
from executor.api import aresume, arun, load_graph
from executor.fold import RunState
from executor.replay import areplay
from kir.compile import compile_graph
from substrate.stores.base import EventStore
from substrate.stores.memory import MemoryStore
from substrate.stores.sqlite import SQLiteStore


def _child(what: str, path: str, n: int) -> None:
    """Run one workload: a warm-up call, then the counted call inside functools.reduce."""
    if what == "fold":
        graph, log = load_graph(SQLiteStore(path), RUN_ID)

        def work() -> Any:
            return RunState(graph, RUN_ID).apply_all(log)

    elif what == "resume":
        store = SQLiteStore(path)

        def work() -> Any:
            return asyncio.run(aresume(RUN_ID, store=store))

    elif what == "replay":

        def work() -> Any:
            store = SQLiteStore(path)
            try:
                return asyncio.run(areplay(store, RUN_ID))
            finally:
                store.close()

    else:
        chain = compile_graph(chain_graph(n, "ainc"))
        files = iter(range(3))

        def work() -> Any:
            store: EventStore = MemoryStore()
            if what == "chain-sqlite":
                store = SQLiteStore(Path(path).with_name(f"chain{next(files)}.db"))
            try:
                result = asyncio.run(arun(chain, {"x": 0}, store=store, options=OPTIONS))
            finally:
                store.close()
            assert result.status == "completed"
            return result

    work()
    functools.reduce(lambda _a, _b: work(), [0, 0])


def count(what: str, path: Path, n: int, out: Path) -> int:
    """Instructions of one workload, from callgrind's totals."""
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            "--toggle-collect=functools_reduce",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--child",
            what,
            str(path),
            str(n),
        ],
        check=True,
        capture_output=True,
    )
    match = re.search(r"^(?:totals|summary): (\d+)", out.read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit(f"no totals in callgrind's output {out}")
    return int(match.group(1))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--items", type=int, default=10_000, help="map items of the logged run")
    ap.add_argument("--chain-nodes", type=int, default=1_000, help="nodes of the chain")
    ap.add_argument("--what", default="fold,resume,replay,chain", help="workloads, comma-separated")
    ap.add_argument("--keep", type=Path, help="leave callgrind's output files in this folder")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("bench/instructions.py needs valgrind (apt install valgrind)", file=sys.stderr)
        raise SystemExit(2)
    whats = [w for w in args.what.split(",") if w]
    unknown = sorted(set(whats) - {"fold", "resume", "replay", "chain", "chain-sqlite"})
    if unknown:
        print(f"unknown workload(s): {', '.join(unknown)}", file=sys.stderr)
        raise SystemExit(2)

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "runs.db"
        logged = {"fold", "resume", "replay"} & set(whats)
        events = build(db, map_graph(args.items)) if logged else 0
        outs = args.keep or Path(tmp)
        outs.mkdir(parents=True, exist_ok=True)
        for what in whats:
            chain = what.startswith("chain")
            n = args.chain_nodes if chain else events
            total = count(what, db, n, outs / f"{what}.out")
            unit = "node" if chain else "event"
            line = {"what": "instructions", "workload": what, f"{unit}s": n}
            line |= {"instructions": total, f"per_{unit}": round(total / n)}
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
