"""Chaos: SIGKILL a worker at random moments; a fresh process resumes each time.

Asserted, for a >=100-node mixed graph (llm, agents with tool calls, a map fan-out, a
router, code, idempotent and non-idempotent tools):

* the final output equals an uninterrupted run's;
* every model call recorded in the final log was billed, and a call was billed again
  only when its process was killed between the provider's answer and the commit of
  ``model.called`` (the answer then existed only in the dead process): such calls are
  counted and can be at most one per kill;
* each non-idempotent tool ran at most once, and every call interrupted between
  ``tool.requested`` and ``tool.returned`` became an ``unknown-outcome`` gate.

``FOLDLINE_CHAOS_KILLS`` sets the number of kills (default 30); ``bench/chaos.py`` runs
many more.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from executor.api import approve, reject
from substrate import SQLiteStore
from substrate.events import GateOpened, ModelCalled, RunResumed, ToolRequested, ToolReturned

ROOT = Path(__file__).resolve().parents[2]


def _worker(db: Path, run_id: str, side: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.executor.chaos", str(db), run_id, str(side)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=120)
    lines = out.strip().splitlines()
    assert proc.returncode == 0, err[-3000:]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _settle_gates(db: Path, run_id: str, side: Path, gates: list[list[str]]) -> None:
    """Answer unknown-outcome gates from the tool's own ledger, as an operator would."""
    notified = _ledger(side)
    with SQLiteStore(db) as store:
        log = store.read(run_id)
        for gate_id, reason in gates:
            assert reason == "unknown-outcome", (gate_id, reason)
            opened = next(e for e in log if isinstance(e.data, GateOpened) and e.data.gate == gate_id)
            node = opened.node
            call = int(gate_id.split("#")[1].split(".")[0])
            req = next(
                e.data
                for e in log
                if isinstance(e.data, ToolRequested) and e.node == node and e.data.call == call
            )
            if req.idempotency_key in notified:
                reject(store, run_id, gate_id, by="chaos", answer=notified[req.idempotency_key])
            else:
                approve(store, run_id, gate_id, by="chaos")


def _ledger(side: Path) -> dict[str, str]:
    path = side / "notified"
    if not path.exists():
        return {}
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    keys = Counter(k for k, _ in entries)
    assert max(keys.values(), default=0) <= 1, f"a non-idempotent tool ran twice: {keys.most_common(3)}"
    return dict(entries)


def _reference(tmp: Path) -> Any:
    side = tmp / "ref"
    side.mkdir()
    db = tmp / "ref.db"
    res = _finish(_worker(db, "ref", side))
    assert res["status"] == "completed", res
    with SQLiteStore(db) as store:
        from executor.api import result_of
        from executor.fold import RunState
        from executor.api import load_graph

        graph, log = load_graph(store, "ref")
        state = RunState(graph, "ref").apply_all(log)
        assert len(state.instances) >= 100
        return result_of(state, store).output


@pytest.mark.slow
def test_sigkill_anywhere_then_resume_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    kills_wanted = int(os.environ.get("FOLDLINE_CHAOS_KILLS", "30"))
    seed = int(os.environ.get("FOLDLINE_CHAOS_SEED", str(random.randrange(2**32))))
    rnd = random.Random(seed)
    expected = _reference(tmp_path)
    kills = 0
    window_rebills = 0
    runs = 0
    while kills < kills_wanted:
        runs += 1
        run_id = f"chaos-{runs}"
        side = tmp_path / run_id
        side.mkdir()
        db = tmp_path / f"{run_id}.db"
        killed_here = 0
        while True:
            proc = _worker(db, run_id, side)
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
            # Kill at a random moment of the run (some kills land after it finished).
            deadline = time.monotonic() + rnd.uniform(0.0, 0.5)
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.002)
            if proc.poll() is None and kills < kills_wanted:
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=30)
                kills += 1
                killed_here += 1
                continue
            res = _finish(proc)
            if res["status"] == "waiting":
                _settle_gates(db, run_id, side, res["gates"])
                continue
            assert res["status"] == "completed", (seed, res)
            break
        with SQLiteStore(db) as store:
            from executor.api import load_graph, result_of
            from executor.fold import RunState

            graph, log = load_graph(store, run_id)
            state = RunState(graph, run_id).apply_all(log)
            assert result_of(state, store).output == expected, f"seed {seed}"
        window_rebills += _check_billing(log, side, killed_here, seed)
        _check_ledger(log, side, seed)
    assert kills >= kills_wanted
    print(f"chaos: seed {seed}, {kills} kills over {runs} runs, {window_rebills} calls re-billed")


def _check_billing(log: list[Any], side: Path, kills: int, seed: int) -> int:
    recorded = Counter(f"{e.node}#{e.data.call}" for e in log if isinstance(e.data, ModelCalled))
    billed = Counter((side / "billed").read_text().split())
    assert max(recorded.values()) == 1, f"seed {seed}: a call recorded twice"
    assert set(billed) == set(recorded), f"seed {seed}: billed calls differ from recorded ones"
    rebilled = sum(n - 1 for n in billed.values())
    assert rebilled <= kills, f"seed {seed}: {rebilled} re-billed calls for {kills} kills"
    return rebilled


def _check_ledger(log: list[Any], side: Path, seed: int) -> None:
    """Every non-idempotent call interrupted by a death became an unknown-outcome gate."""
    _ledger(side)  # at most once per key
    returned = {(e.node, e.data.call) for e in log if isinstance(e.data, ToolReturned)}
    outcome_gates = {
        e.data.gate for e in log if isinstance(e.data, GateOpened) and e.data.reason == "unknown-outcome"
    }
    requested_at: dict[tuple[str | None, int], int] = {}
    for e in log:
        if isinstance(e.data, ToolRequested) and e.data.tool == "notify":
            requested_at[(e.node, e.data.call)] = e.seq
    resumes = [e.seq for e in log if isinstance(e.data, RunResumed)]
    for (node, call), seq in requested_at.items():
        ret_seq = next(
            (e.seq for e in log if isinstance(e.data, ToolReturned) and e.node == node and e.data.call == call),
            None,
        )
        interrupted = any(seq < r and (ret_seq is None or r < ret_seq) for r in resumes)
        gate = f"{node}#{call}.outcome"
        assert (gate in outcome_gates) == interrupted, (seed, node, call)
        assert (node, call) in returned or gate in outcome_gates, (seed, node, call)
