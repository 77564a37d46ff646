"""Resume after the process died: nothing completed runs again, nothing answered is re-billed.

The death is simulated in-process by a ``BaseException`` escaping the engine (the store
keeps only what was committed); ``tests/executor/test_chaos.py`` does it with SIGKILL.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from executor import api
from executor.api import approve, reject, resume, run
from executor.errors import ExecutorError
from kir import Edge, Graph, Node, ToolSpec
from kir.schema import AgentConfig, LlmConfig, ToolConfig
from substrate import CallKey, MockModel, MockReply, ModelRequest, SQLiteStore
from substrate.codec import digest, encode
from substrate.events import ModelCalled, RunResumed, ToolRequested
from tests.executor import fns
from tests.executor.helpers import chain


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = SQLiteStore(tmp_path / "runs.db")
    yield s
    s.close()


def test_resume_does_not_rerun_completed_nodes(store: SQLiteStore) -> None:
    fns.CALLS.clear()
    fns.CRASH_AT.clear()
    fns.CRASH_AT.add(5)
    g = chain(10, fn="counted")
    with pytest.raises(fns.Crash):
        run(g, {"x": 0}, store=store, run_id="r1")
    assert {str(i): 1 for i in range(6)} == fns.CALLS
    res = resume("r1", store=store)
    assert res.status == "completed"
    assert res.output == 10
    # Nodes 0..4 ran once; node 5 ran twice (its first attempt died), the rest once.
    assert {**{str(i): 1 for i in range(10)}, "5": 2} == fns.CALLS
    assert sum(isinstance(e.data, RunResumed) for e in store.read("r1")) == 1


class DyingModel(MockModel):
    """Dies (before billing) on the call numbered ``die_at`` (1-based, across instances)."""

    def __init__(self, die_at: int | None, billed: list[str], **kw: Any) -> None:
        super().__init__(lambda r, k: f"answer to {r.messages[-1].content}", **kw)
        self.die_at = die_at
        self.billed = billed

    async def complete(self, request: ModelRequest, key: CallKey) -> Any:
        if self.die_at is not None and len(self.billed) + 1 == self.die_at:
            raise fns.Crash("killed during a model call")
        response = await super().complete(request, key)
        self.billed.append(f"{key.node}#{key.index}")
        return response


def _llm_chain(n: int) -> Graph:
    nodes = [
        Node(id="s0", config=LlmConfig(model="mock:m", prompt="{x}"), inputs={"x": "$input.x"})
    ]
    nodes += [
        Node(id=f"s{i}", config=LlmConfig(model="mock:m", prompt="{x}"), inputs={"x": f"s{i - 1}"})
        for i in range(1, n)
    ]
    return Graph(
        nodes=nodes, edges=[Edge(f"s{i - 1}", f"s{i}") for i in range(1, n)], output=f"s{n - 1}"
    )


def test_a_completed_model_call_is_never_billed_twice(store: SQLiteStore) -> None:
    billed: list[str] = []
    g = _llm_chain(6)
    with pytest.raises(fns.Crash):
        run(g, {"x": "q"}, store=store, run_id="r1", model=DyingModel(4, billed))
    assert len(billed) == 3
    res = resume("r1", store=store, model=DyingModel(None, billed))
    assert res.status == "completed"
    called = [e for e in store.read("r1") if isinstance(e.data, ModelCalled)]
    assert len(billed) == len(called) == 6
    assert len(set(billed)) == 6


def test_agent_crash_in_a_late_turn_keeps_the_earlier_turns(store: SQLiteStore) -> None:
    g = Graph(
        nodes=[
            Node(
                id="agent",
                config=AgentConfig(model="mock:m", instructions="go", tools=["look"], max_turns=10),
            )
        ],
        tools=[ToolSpec(name="look", idempotent=True)],
        output="agent",
    )
    looked: list[int] = []

    def look(n: int) -> int:
        looked.append(n)
        return n

    script: list[MockReply | str] = [MockReply(tool_calls=[("look", {"n": i})]) for i in range(6)]
    script.append("done")

    class Dying(MockModel):
        async def complete(self, request: ModelRequest, key: CallKey) -> Any:
            if self.calls == 6:
                raise fns.Crash("turn 7")
            return await super().complete(request, key)

    with pytest.raises(fns.Crash):
        run(g, store=store, run_id="r1", model=Dying(script), tools={"look": look})
    assert looked == [0, 1, 2, 3, 4, 5]
    fresh = MockModel(["done"])
    res = resume("r1", store=store, model=fresh, tools={"look": look})
    assert res.output == "done"
    assert fresh.calls == 1  # only turn 7 was asked again
    assert looked == [0, 1, 2, 3, 4, 5]  # no tool ran twice


def _tool_graph(idempotent: bool) -> Graph:
    return Graph(
        nodes=[Node(id="pay", config=ToolConfig(tool="charge", args={"amount": 5}))],
        tools=[ToolSpec(name="charge", idempotent=idempotent)],
        output="pay",
    )


def test_idempotent_tool_interrupted_is_rerun_with_the_same_key(store: SQLiteStore) -> None:
    keys: list[str] = []

    def dies(amount: int, idempotency_key: str) -> str:
        keys.append(idempotency_key)
        raise fns.Crash("killed inside the tool")

    def charge(amount: int, idempotency_key: str) -> str:
        keys.append(idempotency_key)
        return "ok"

    with pytest.raises(fns.Crash):
        run(_tool_graph(True), store=store, run_id="r1", tools={"charge": dies})
    assert [e.kind for e in store.read("r1")][-1] == "tool.requested"  # committed before the call
    res = resume("r1", store=store, tools={"charge": charge})
    assert res.output == "ok"
    assert len(keys) == 2
    assert keys[0] == keys[1]  # the API can deduplicate on it
    assert sum(isinstance(e.data, ToolRequested) for e in store.read("r1")) == 1


@pytest.mark.parametrize("happened", [True, False])
def test_non_idempotent_tool_interrupted_becomes_an_unknown_outcome_gate(
    store: SQLiteStore, happened: bool
) -> None:
    ran: list[int] = []

    def dies(amount: int) -> str:
        ran.append(amount)
        raise fns.Crash("killed inside the tool")

    def charge(amount: int) -> str:
        ran.append(amount)
        return "charged"

    with pytest.raises(fns.Crash):
        run(_tool_graph(False), store=store, run_id="r1", tools={"charge": dies})
    waiting = resume("r1", store=store, tools={"charge": charge})
    assert waiting.status == "waiting"
    (gate,) = waiting.gates
    assert (gate.id, gate.reason, gate.tool, gate.args) == (
        "pay#0.outcome",
        "unknown-outcome",
        "charge",
        {"amount": 5},
    )
    assert ran == [5]  # nothing ran again on its own
    if happened:
        reject(store, "r1", gate.id, by="ops", answer="charged (confirmed in the bank's UI)")
        done = resume("r1", store=store, tools={"charge": charge})
        assert ran == [5]
        assert done.output == "charged (confirmed in the bank's UI)"
    else:
        approve(store, "r1", gate.id, by="ops")
        done = resume("r1", store=store, tools={"charge": charge})
        assert ran == [5, 5]
        assert done.output == "charged"


def test_an_approved_rerun_that_dies_too_is_asked_about_again(store: SQLiteStore) -> None:
    """An approval ("it did not happen, run it again") covers one run of the call: if the
    process dies during that run as well, the next one asks again (its own gate) rather
    than running the call a third time under the same approval."""
    ran: list[int] = []

    def dies(amount: int) -> str:
        ran.append(amount)
        raise fns.Crash("killed inside the tool")

    with pytest.raises(fns.Crash):
        run(_tool_graph(False), store=store, run_id="r1", tools={"charge": dies})
    (first,) = resume("r1", store=store, tools={"charge": dies}).gates
    approve(store, "r1", first.id, by="ops")
    with pytest.raises(fns.Crash):
        resume("r1", store=store, tools={"charge": dies})
    assert ran == [5, 5]
    again = resume("r1", store=store, tools={"charge": dies})
    assert ran == [5, 5]  # not run a third time
    assert [(g.id, g.reason) for g in again.gates] == [("pay#0.outcome.2", "unknown-outcome")]
    reject(store, "r1", "pay#0.outcome.2", by="ops", answer="charged twice (refund one)")
    done = resume("r1", store=store, tools={"charge": dies})
    assert (done.status, done.output, ran) == ("completed", "charged twice (refund one)", [5, 5])
    requests = [e.data for e in store.read("r1") if isinstance(e.data, ToolRequested)]
    assert len(requests) == 2  # the approved run was requested again before it ran
    assert len({r.idempotency_key for r in requests}) == 1


def test_a_damaged_stored_graph_is_refused_by_name(store: SQLiteStore) -> None:
    run(chain(3), {"x": 0}, store=store, run_id="r1")
    graph_hash = store.read("r1")[0].data.graph_hash  # type: ignore[union-attr]
    api._COMPILED.clear()  # what a fresh process has
    body = store.get_graph(graph_hash) + b" "
    with closing(sqlite3.connect(store.path)) as db, db:
        db.execute("UPDATE graphs SET body = ? WHERE graph_hash = ?", (body, graph_hash))
    with pytest.raises(ExecutorError, match="run 'r1': the stored graph does not hash"):
        resume("r1", store=store)


def test_a_stored_graph_that_is_not_valid_is_refused_by_name(store: SQLiteStore) -> None:
    # Bytes that hash as recorded but are no compiled graph (an edge to a missing node).
    body = encode({"id": "g", "nodes": [], "edges": [{"from": "a", "to": "b"}]})
    store.put_graph(digest(body), body)
    api._COMPILED.clear()
    not_valid = r"(?s)run 'r9': the stored graph is not valid: .*edge from 'a' is not a node"
    with pytest.raises(ExecutorError, match=not_valid):
        api._graph_by_hash(store, digest(body), "r9")
