"""Real processes against a real SQLite file: SIGKILL at random moments, and races."""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from substrate.events import Head, Inline, NodeCompleted, RunStarted, seal, verify_chain
from substrate.stores.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("FOLDLINE_CRASH_KILLS", "24"))


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.substrate.writers", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _check_valid_prefix(db: Path, run_id: str) -> int:
    """Read the log back; assert it is a valid prefix of whole batches. Returns its length."""
    with SQLiteStore(db) as store:
        log = store.read(run_id)  # re-hashes every row and checks the chain
        head = store.head(run_id)
    assert verify_chain(log, run_id=run_id) == head
    assert isinstance(log[0].data, RunStarted)
    batches: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for ev in log[1:]:
        assert isinstance(ev.data, NodeCompleted)
        v = ev.data.output.value  # type: ignore[union-attr]
        batches[v["batch"]].append((v["i"], v["size"]))
    assert sorted(batches) == list(range(len(batches))), "a batch is missing"
    for b, items in batches.items():
        size = items[0][1]
        assert [i for i, _ in items] == list(range(size)), f"batch {b} is partial: {items}"
    return len(log)


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_a_valid_prefix(tmp_path: Path) -> None:
    seed = int(os.environ.get("FOLDLINE_CRASH_SEED", str(random.randrange(2**32))))
    rnd = random.Random(seed)
    db = tmp_path / "crash.db"
    lengths = []
    for kill in range(KILLS):
        durability = "strict" if kill % 4 == 3 else "process"
        child = _child("crash", str(db), "run-1", durability)
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line == "ready\n", (
            f"child did not start (seed {seed}): {child.stderr.read() if child.stderr else ''}"
        )
        time.sleep(rnd.uniform(0.0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        child.stdout.close()
        if child.stderr:
            child.stderr.close()
        if child.stdin:
            child.stdin.close()
        lengths.append(_check_valid_prefix(db, "run-1"))
    assert len(lengths) >= 20
    # Each child committed at least one batch before it was killed.
    assert all(b > a for a, b in itertools.pairwise(lengths)), (seed, lengths)


@pytest.mark.slow
def test_two_processes_race_for_the_same_seq_exactly_one_wins(tmp_path: Path) -> None:
    db = tmp_path / "race.db"
    rounds = 12
    with SQLiteStore(db) as store:
        events, bodies, _ = seal(Head(), [(0, None, RunStarted("race", Inline({}), "00"))])
        store.append("run-1", 0, events, bodies=bodies)
    a, b = (
        _child("race", str(db), "run-1", "A", str(rounds)),
        _child("race", str(db), "run-1", "B", str(rounds)),
    )
    try:
        for r in range(rounds):
            for p in (a, b):
                assert p.stdout is not None
                assert p.stdout.readline() == "ready\n"
            for p in (a, b):
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            results = {
                name: p.stdout.readline().strip() for name, p in (("A", a), ("B", b)) if p.stdout
            }
            assert sorted(results.values()) == ["lost", "won"], (r, results)
            winner = next(n for n, v in results.items() if v == "won")
            with SQLiteStore(db) as store:
                log = store.read("run-1")
            assert len(log) == 1 + 20 * (r + 1)
            last_batch = log[-20:]
            assert {e.node for e in last_batch} == {f"{winner}.{1 + 20 * r}"}, "batches interleaved"
    finally:
        for p in (a, b):
            for stream in (p.stdin, p.stdout, p.stderr):
                if stream:
                    stream.close()
            p.wait(timeout=30)
    assert a.returncode == 0
    assert b.returncode == 0
