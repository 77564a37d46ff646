"""Gate decisions are refused with a clear message when they cannot apply."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from executor.api import answer, approve, reject, resume, run, signal
from executor.errors import GateError, RunNotFound
from kir import Graph, Node, ToolSpec
from kir.schema import CodeConfig, GateConfig
from substrate import SQLiteStore
from substrate.events import GateDecided
from tests.executor import fns


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


@pytest.mark.parametrize(
    ("now", "other"),
    [(["destroy", {"replicas": 3}], "tool"), (["apply", {"replicas": 5}], "args")],
)
def test_an_approval_does_not_carry_over_to_another_call(
    tmp_path: Path, now: list[Any], other: str
) -> None:
    """A gate is bound to the exact tool and args of the call that opened it: if, on
    resume, the same call asks for another tool or other args (the node's code changed),
    the approval does not apply to it and nothing runs."""
    ran: list[tuple[str, dict[str, Any]]] = []
    tools = {
        "apply": lambda replicas: ran.append(("apply", {"replicas": replicas})),
        "destroy": lambda replicas: ran.append(("destroy", {"replicas": replicas})),
    }
    g = Graph(
        nodes=[Node(id="c", config=CodeConfig(function="tests.executor.fns:call_named_tool"))],
        tools=[
            ToolSpec(name="apply", requires_approval=True),
            ToolSpec(name="destroy", requires_approval=True),
        ],
        output="c",
    )
    store = SQLiteStore(tmp_path / "runs.db")
    fns.TOOL_CALL[:] = ["apply", {"replicas": 3}]
    try:
        first = run(g, store=store, run_id="r1", tools=tools)
        assert first.status == "waiting"
        assert [(x.id, x.tool, x.args) for x in first.gates] == [("c#0", "apply", {"replicas": 3})]
        approve(store, "r1", "c#0", by="alice", args={"replicas": 3})
        fns.TOOL_CALL[:] = now
        res = resume("r1", store=store, tools=tools)
    finally:
        fns.TOOL_CALL[:] = ["apply", {"replicas": 3}]
        store.close()
    assert ran == []
    assert res.status == "failed"
    assert re.search(
        rf"gate 'c#0' is bound to tool 'apply' with args hash \w{{12}}, but call 0 now asks "
        rf"for tool '{now[0]}' with args hash \w{{12}} \(other {other}\); it is refused",
        str(res.error),
    ), res.error


class _Racing(SQLiteStore):
    """A handle whose first append loses a race: just before it, ``first`` runs (another
    process's input, appended through a second handle on the same file)."""

    def __init__(self, path: Path, first: Any) -> None:
        super().__init__(path)
        self.first = first
        self.appends = 0

    def append(self, *args: Any, **kwargs: Any) -> Any:
        self.appends += 1
        if self.first is not None:
            first, self.first = self.first, None
            with SQLiteStore(self.path) as other:
                first(other)
        return super().append(*args, **kwargs)


def test_two_deciders_racing_decide_a_gate_once(waiting: tuple[SQLiteStore, str]) -> None:
    store, run_id = waiting
    racing = _Racing(Path(store.path), lambda s: reject(s, run_id, "review#0", by="bob"))
    try:
        with pytest.raises(GateError, match=r"gate 'review#0' was already decided \(reject by bob"):
            approve(racing, run_id, "review#0", by="alice")
        assert racing.appends == 1  # the loser's append was fenced, then it read the winner's
    finally:
        racing.close()
    decided = [e.data for e in store.read(run_id) if isinstance(e.data, GateDecided)]
    assert [(d.decision, d.by) for d in decided] == [("reject", "bob")]


def test_a_decision_that_meets_another_input_is_retried_after_it(
    waiting: tuple[SQLiteStore, str],
) -> None:
    store, run_id = waiting
    racing = _Racing(Path(store.path), lambda s: signal(s, run_id, "ping", {"n": 1}))
    try:
        approve(racing, run_id, "review#0", by="alice")
        assert racing.appends == 2  # fenced once by the signal, then appended after it
    finally:
        racing.close()
    kinds = [e.kind for e in store.read(run_id)][-2:]
    assert kinds == ["signal.received", "gate.decided"]
    assert resume(run_id, store=store).status == "completed"
