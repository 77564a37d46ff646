"""Inputs from other processes while a run is live, and scheduling without wave barriers."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from executor.api import Budget, approve, arun, cancel, raise_budget, resume, run
from executor.errors import RunFenced
from executor.schedule import EngineOptions
from kir import Edge, Graph, Node
from kir.schema import GateConfig, LlmConfig
from substrate import MockModel, SQLiteStore
from substrate.events import RunResumed, seal
from tests.executor.helpers import code

FAST_POLL = EngineOptions(poll_interval_s=0.02)


def later(seconds: float, fn: Any) -> threading.Thread:
    def go() -> None:
        time.sleep(seconds)
        fn()

    t = threading.Thread(target=go)
    t.start()
    return t


def test_cancel_from_another_handle_stops_a_live_run(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    g = Graph(nodes=[code("a", "slow"), code("b", "slow")], edges=[Edge("a", "b")])
    other = SQLiteStore(db)
    t = later(0.2, lambda: cancel(other, "r1", by="ops", reason="wrong input"))
    with SQLiteStore(db) as store:
        res = run(g, store=store, run_id="r1", options=FAST_POLL)
        t.join()
        kinds = [e.kind for e in store.read("r1")]
    other.close()
    assert res.status == "cancelled"
    assert kinds[-2:] == ["run.cancel_requested", "run.cancelled"]
    assert "node.started" in kinds
    assert kinds.count("node.completed") == 0


def test_an_approval_arriving_while_live_is_picked_up_without_a_resume(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    g = Graph(
        nodes=[
            Node(id="review", config=GateConfig(question="go?")),
            code("work", "slow"),
            code("after", "noop"),
        ],
        edges=[Edge("review", "after"), Edge("work", "after")],
    )
    other = SQLiteStore(db)
    t = later(0.3, lambda: approve(other, "r1", "review#0", by="dana"))
    with SQLiteStore(db) as store:
        res = run(g, store=store, run_id="r1", options=FAST_POLL)
        t.join()
        kinds = [(e.kind, e.node) for e in store.read("r1")]
    other.close()
    assert res.status == "completed"
    assert ("node.completed", "after") in kinds
    assert ("run.resumed", None) not in kinds


def test_a_takeover_fences_the_old_process(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    g = Graph(nodes=[code("a", "slow"), code("b", "noop")], edges=[Edge("a", "b")])
    other = SQLiteStore(db)

    def take_over() -> None:
        head = other.head("r1")
        events, bodies, _ = seal(head, [(1, None, RunResumed(worker="thief"))])
        other.append("r1", head.next_seq, events, bodies=bodies)

    t = later(0.2, take_over)
    with SQLiteStore(db) as store, pytest.raises(RunFenced, match="taken over by another process"):
        run(g, store=store, run_id="r1", options=FAST_POLL)
    t.join()
    other.close()


def test_a_node_starts_as_soon_as_its_own_inputs_are_ready(tmp_path: Path) -> None:
    # a (slow) -> b ;  c (fast) -> d : d must not wait for a's "wave".
    g = Graph(
        nodes=[code("a", "slow"), code("b", "noop"), code("c", "short"), code("d", "noop")],
        edges=[Edge("a", "b"), Edge("c", "d")],
    )
    with SQLiteStore(tmp_path / "runs.db") as store:
        res = run(g, store=store)
        order = [(e.kind, e.node) for e in store.read(res.run_id)]
    assert order.index(("node.completed", "d")) < order.index(("node.completed", "a"))


def test_concurrency_limit_is_respected(tmp_path: Path) -> None:
    g = Graph(nodes=[code(f"n{i}", "short") for i in range(6)])
    with SQLiteStore(tmp_path / "runs.db") as store:
        res = run(g, store=store, options=EngineOptions(max_concurrency=2))
        log = store.read(res.run_id)
    active = peak = 0
    for e in log:
        active += {"node.started": 1, "node.completed": -1}.get(e.kind, 0)
        peak = max(peak, active)
    assert peak == 2


def test_raise_the_budget_and_resume(tmp_path: Path) -> None:
    g = Graph(
        nodes=[
            Node(id="a", config=LlmConfig(model="mock:m", prompt="one")),
            Node(id="b", config=LlmConfig(model="mock:m", prompt="two")),
        ],
        edges=[Edge("a", "b")],
        output="b",
    )
    with SQLiteStore(tmp_path / "runs.db") as store:
        model = MockModel(["x", "y"])
        first = run(g, store=store, model=model, budget=Budget(calls=1))
        assert first.status == "waiting"
        assert model.calls == 1
        raise_budget(store, first.run_id, calls=2, by="finance")
        done = resume(first.run_id, store=store, model=MockModel(["y"]))
    assert done.status == "completed"
    assert done.output == "y"
    assert done.model_calls == 2


def test_run_id_taken_is_refused(tmp_path: Path) -> None:
    g = Graph(nodes=[code("a", "noop")])
    with SQLiteStore(tmp_path / "runs.db") as store:
        run(g, store=store, run_id="r1")
        with pytest.raises(Exception, match="run 'r1' already exists"):
            asyncio.run(arun(g, store=store, run_id="r1"))
