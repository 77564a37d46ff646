"""Chaos at scale: SIGKILL the worker of a >=100-node mixed run many times.

Usage: python bench/chaos.py [--kills 1000] [--seed N] [--max-delay 0.5]

Each kill lands at a random moment of a run; a fresh process resumes it, and every
finished run is checked exactly as the CI chaos test does (output equal to an
uninterrupted run, no call recorded twice, the provider's bills exactly the recorded
calls plus those a killed worker had answered and not yet committed, non-idempotent
tools at most once, interrupted ones turned into unknown-outcome gates, and the run
replays byte for byte). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.executor.chaos import run_chaos


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=random.randrange(2**32))
    ap.add_argument(
        "--max-delay", type=float, default=0.5, help="seconds; kill delay is uniform in [0, this]"
    )
    args = ap.parse_args()
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report = run_chaos(Path(tmp), kills=args.kills, seed=args.seed, max_delay_s=args.max_delay)
    report["seconds"] = round(time.perf_counter() - t, 1)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
