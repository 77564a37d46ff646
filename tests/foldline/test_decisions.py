"""``approve``, ``reject``, ``answer``, ``signal``, ``budget`` and ``cancel``."""

from __future__ import annotations

import json
from pathlib import Path

from kir import Edge, Graph, Node
from kir.schema import CodeConfig, GateConfig, WaitConfig
from substrate.events import Event, GateDecided, GateOpened
from substrate.stores import SQLiteStore
from tests.foldline.conftest import (
    FNS,
    OPS,
    cli,
    graph_file,
    lines,
    one_line_error,
    snapshot,
    start_ops,
)
from tests.foldline.fixtures import ops_agent


def read(db: Path, run_id: str) -> list[Event]:
    with SQLiteStore(db) as store:
        return store.read(run_id)


def question_graph() -> Graph:
    return Graph(
        id="ask",
        nodes=[
            Node(
                id="ask",
                config=GateConfig(question="How many replicas?", answer_schema={"type": "integer"}),
            ),
            Node(id="use", config=CodeConfig(function=f"{FNS}:inc"), inputs={"x": "ask.answer"}),
        ],
        edges=[Edge("ask", "use")],
        output="use",
    )


def signal_graph() -> Graph:
    return Graph(
        id="hold",
        nodes=[
            Node(id="hold", config=WaitConfig(signal="go")),
            Node(id="use", config=CodeConfig(function=f"{FNS}:inc"), inputs={"x": "hold.n"}),
        ],
        edges=[Edge("hold", "use")],
        output="use",
    )


def test_approve_binds_to_the_args_the_gate_shows(db: Path) -> None:
    start_ops("r1")
    result = cli("approve", "r1", "ops#1", "--by", "alice", "--note", "looks right")
    assert result.exit_code == 0, result.output
    assert lines(result) == [
        'approved gate ops#1 of run r1 as alice: apply_manifest {"replicas": 3}',
        "resume:  foldline resume r1",
    ]
    log = read(db, "r1")
    opened = next(e.data for e in log if isinstance(e.data, GateOpened))
    decided = log[-1].data
    assert isinstance(decided, GateDecided)
    assert (decided.decision, decided.by, decided.note) == ("approve", "alice", "looks right")
    assert decided.args_hash == opened.args_hash


def test_reject_reports_back_to_the_agent(db: Path) -> None:
    start_ops("r1")
    ops_agent.APPLIED.clear()
    result = cli("reject", "r1", "ops#1", "--by", "bob", "--note", "not now")
    assert result.exit_code == 0, result.output
    assert lines(result) == ["rejected gate ops#1 of run r1 as bob", "resume:  foldline resume r1"]
    done = cli("resume", "r1")
    assert done.exit_code == 0, done.output
    assert ops_agent.APPLIED == []
    log = read(db, "r1")
    assert "tool.requested" not in [e.kind for e in log]
    request = json.loads(cli("show", "r1", "--json").output)["events"][-3]["data"]["request"]
    assert "Rejected" in json.dumps(request)  # the agent was told, and carried on


def test_answer_a_question_gate(db: Path, tmp_path: Path) -> None:
    started = cli("run", str(graph_file(tmp_path, question_graph())), "--run-id", "q1")
    assert started.exit_code == 0, started.output
    assert lines(started)[2:] == [
        "gate ask#0 (question, node ask): How many replicas?",
        "  answer:  foldline answer q1 'ask#0' VALUE --by you",
    ]
    result = cli("answer", "q1", "ask#0", "4", "--by", "bob")
    assert result.exit_code == 0, result.output
    assert lines(result)[0] == "answered gate ask#0 of run q1 as bob: 4"
    done = cli("resume", "q1")
    assert lines(done)[-1] == "output: 5"  # the answer is JSON: 4, not "4"


def test_signal_wakes_a_waiting_run(db: Path, tmp_path: Path) -> None:
    started = cli("run", str(graph_file(tmp_path, signal_graph())), "--run-id", "s1")
    assert started.exit_code == 0, started.output
    assert lines(started)[2:] == [
        "signal go: the run waits for it",
        "  send:    foldline signal s1 go [PAYLOAD]",
    ]
    sent = cli("signal", "s1", "go", '{"n": 9}')
    assert sent.exit_code == 0, sent.output
    assert lines(sent) == ["sent signal go to run s1", "resume:  foldline resume s1"]
    assert lines(cli("resume", "s1"))[-1] == "output: 10"


def test_budget_raises_the_caps_of_a_run_waiting_on_them(db: Path) -> None:
    result = start_ops("b1", "--max-usd", "0.0001")
    assert lines(result)[0] == "run b1: waiting on budget"
    assert lines(result)[2].startswith("budget: the next model call could exceed the run's cap")
    assert lines(result)[3] == "  raise:   foldline budget b1 --usd LIMIT --by you"
    raised = cli("budget", "b1", "--usd", "1", "--by", "me")
    assert raised.exit_code == 0, raised.output
    assert lines(raised) == [
        "set the budget of run b1 to usd 1 as me",
        "resume:  foldline resume b1",
    ]
    assert lines(cli("resume", "b1"))[0] == "run b1: waiting on ops#1"
    none = cli("budget", "b1", "--by", "me")
    assert none.exit_code == 2
    assert one_line_error(none) == "error: give at least one new cap: --usd, --tokens or --calls"


def test_cancel_a_waiting_run_stops_it_now(db: Path) -> None:
    start_ops("r1")
    result = cli("cancel", "r1", "--by", "bob", "--reason", "not today")
    assert result.exit_code == 0, result.output
    assert lines(result) == ["cancelled run r1"]
    kinds = [e.kind for e in read(db, "r1")[-3:]]
    assert kinds == ["run.cancel_requested", "run.resumed", "run.cancelled"]
    assert "cancelled" in cli("ls").output
    before = snapshot(db)
    again = cli("cancel", "r1")
    assert again.exit_code == 2
    assert one_line_error(again) == "error: run 'r1' was cancelled; there is nothing to cancel"
    assert snapshot(db) == before
    gate = cli("approve", "r1", "ops#1", "--by", "alice")
    assert gate.exit_code == 2
    assert one_line_error(gate) == (
        "error: run 'r1' has cancelled; gate 'ops#1' can no longer be decided"
    )


def test_decisions_need_a_name(db: Path) -> None:
    start_ops("r1")
    before = snapshot(db)
    result = cli("approve", "r1", "ops#1", "--by", " ")
    assert result.exit_code == 2
    assert one_line_error(result) == "error: --by must name who decides"
    missing = cli("approve", "r1", "ops#1")
    assert missing.exit_code == 2
    assert "Missing option '--by'" in one_line_error(missing)
    assert snapshot(db) == before


def test_approve_from_another_store_path_form(db: Path) -> None:
    start_ops("r1")
    result = cli("approve", "r1", "ops#1", "--by", "alice", "--store", f"sqlite://{db}")
    assert result.exit_code == 0, result.output
    assert str(OPS) in read(db, "r1")[0].data.options["labels"]["source"]  # type: ignore[attr-defined]
