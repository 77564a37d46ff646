"""Gate decisions are refused with a clear message when they cannot apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.api import answer, approve, reject, resume, run
from executor.errors import GateError, RunNotFound
from kir import Graph, Node
from kir.schema import GateConfig
from substrate import SQLiteStore


@pytest.fixture
def waiting(tmp_path: Path) -> tuple[SQLiteStore, str]:
    store = SQLiteStore(tmp_path / "runs.db")
    g = Graph(nodes=[Node(id="review", config=GateConfig(question="Ship it?"))], output="review")
    res = run(g, store=store, run_id="r1")
    assert res.status == "waiting"
    assert [g.id for g in res.gates] == ["review#0"]
    return store, "r1"


def test_unknown_gate_names_the_open_ones(waiting: tuple[SQLiteStore, str]) -> None:
    store, run_id = waiting
    with pytest.raises(
        GateError, match=r"^run 'r1': gate 'nope' is not open \(open gates: review#0\)$"
    ):
        approve(store, run_id, "nope", by="x")


def test_deciding_twice_is_refused(waiting: tuple[SQLiteStore, str]) -> None:
    store, run_id = waiting
    approve(store, run_id, "review#0", by="erin", note="lgtm")
    with pytest.raises(GateError, match=r"was already decided \(approve by erin\)"):
        reject(store, run_id, "review#0", by="frank")


def test_answer_on_an_approval_gate_is_refused(waiting: tuple[SQLiteStore, str]) -> None:
    store, run_id = waiting
    with pytest.raises(GateError, match="takes approve/reject, not an answer"):
        answer(store, run_id, "review#0", {"x": 1}, by="x")


def test_unknown_run(waiting: tuple[SQLiteStore, str]) -> None:
    store, _ = waiting
    with pytest.raises(RunNotFound, match=r"^no run 'zzz' in the store$"):
        approve(store, "zzz", "review#0", by="x")


def test_decision_after_the_run_ended_is_refused(waiting: tuple[SQLiteStore, str]) -> None:
    store, run_id = waiting
    approve(store, run_id, "review#0", by="erin")
    done = resume(run_id, store=store)
    assert done.status == "completed"
    assert done.output == {"decision": "approve", "by": "erin", "note": "", "answer": None}


def test_question_gate_takes_an_answer(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    schema = {"type": "object", "properties": {"size": {"type": "integer"}}}
    g = Graph(
        nodes=[Node(id="ask", config=GateConfig(question="How big?", answer_schema=schema))],
        output="ask",
    )
    res = run(g, store=store, run_id="r1")
    answer(store, "r1", res.gates[0].id, {"size": 3}, by="gina")
    done = resume("r1", store=store)
    assert done.output["answer"] == {"size": 3}
    assert done.output["decision"] == "answer"
