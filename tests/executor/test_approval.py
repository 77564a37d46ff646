"""Approval across processes: nothing happens before a human approved exactly that call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from substrate import SQLiteStore
from substrate.events import GateDecided, GateOpened, ToolRequested
from tests.executor.ops import MANIFEST

ROOT = Path(__file__).resolve().parents[2]


def step(cmd: str, db: Path, side: Path, gate: str = "") -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GATE": gate}
    out = subprocess.run(
        [sys.executable, "-m", "tests.executor.ops", cmd, str(db), "ops-run", str(side)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_three_processes_start_approve_resume(tmp_path: Path) -> None:
    db, side = tmp_path / "runs.db", tmp_path
    applied = side / "applied"

    started = step("start", db, side)
    assert started["status"] == "waiting"
    ((gate, tool, args),) = started["gates"]
    assert (tool, args) == ("apply_manifest", MANIFEST)
    assert not applied.exists()  # waiting before any side effect
    with SQLiteStore(db) as store:
        log = store.read("ops-run")
    assert not any(
        isinstance(e.data, ToolRequested) and e.data.tool == "apply_manifest" for e in log
    )

    other = step("approve-other", db, side, gate)
    assert other["approved"] is False
    assert "approval is bound to the exact call" in other["error"]

    assert step("approve", db, side, gate) == {"approved": True}
    twice = step("approve", db, side, gate)
    assert twice["approved"] is False
    assert "already decided (approve by alice)" in twice["error"]

    done = step("resume", db, side)
    assert done == {"status": "completed", "output": "web scaled to 3 replicas"}
    assert [json.loads(line) for line in applied.read_text().splitlines()] == [MANIFEST]

    with SQLiteStore(db) as store:
        log = store.read("ops-run")
    opened = next(e.data for e in log if isinstance(e.data, GateOpened))
    decided = next(e.data for e in log if isinstance(e.data, GateDecided))
    assert decided.args_hash == opened.args_hash
    assert decided.by == "alice"
