"""A compiled crew, end to end across processes: it pauses at human review, is approved
from another process, and a third process resumes it to completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from executor import load_graph
from kir import compile_graph
from substrate import MockModel, SQLiteStore
from substrate.events import GateDecided
from tests.dsl.crews import review, review_script

ROOT = Path(__file__).resolve().parents[2]
INPUTS = {"topic": "tides", "audience": "kids"}

APPROVE = """
import sys
from executor import approve
from substrate.stores import open_store
approve(open_store(sys.argv[1]), sys.argv[2], sys.argv[3], by="alice", note="lgtm")
"""

RESUME = """
import json, sys
from substrate import MockModel
from substrate.stores import open_store
from tests.dsl.crews import review, review_script
result = review().resume(
    sys.argv[2], store=open_store(sys.argv[1]), model=MockModel(review_script(), by_turn=True)
)
print(json.dumps({"status": result.status, "output": result.output, "error": result.error}))
"""


def python(code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_review_is_approved_from_another_process(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    url, run_id = f"sqlite://{db}", "review-run"
    crew = review()

    with SQLiteStore(db) as store:
        first = crew.run(
            INPUTS, store=store, model=MockModel(review_script(), by_turn=True), run_id=run_id
        )
    assert first.status == "waiting"
    (gate,) = first.gates
    assert (gate.id, gate.node, gate.reason) == ("draft-review#0", "draft-review", "approval")
    assert gate.question == (
        "Approve the output of task 'draft'?\n\n"
        "Tides rise and fall twice a day.\n\nThe moon pulls the sea."
    )

    python(APPROVE, url, run_id, gate.id)
    done: dict[str, Any] = json.loads(python(RESUME, url, run_id).strip().splitlines()[-1])
    assert done == {
        "status": "completed",
        "output": "READY: Tides rise and fall twice a day. The moon pulls the sea.",
        "error": None,
    }

    with SQLiteStore(db) as store:
        graph, log = load_graph(store, run_id)
    assert graph.graph_hash == compile_graph(crew.compile()).graph_hash
    (decided,) = [e.data for e in log if isinstance(e.data, GateDecided)]
    assert (decided.gate, decided.decision, decided.by, decided.note) == (
        "draft-review#0",
        "approve",
        "alice",
        "lgtm",
    )
    completed = [e.node for e in log if e.kind == "node.completed"]
    assert completed == ["draft", "draft-review", "publish"]
    assert not any(e.node == "draft-rejected" and e.kind == "node.completed" for e in log)
