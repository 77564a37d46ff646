"""Property tests of the pure core: the fold and the incremental frontier."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.errors import FoldError
from executor.fold import RunState
from executor.frontier import frontier_from_scratch
from executor.schedule import EngineOptions
from kir import Graph, compile_graph
from substrate import CallKey, MockModel, SQLiteStore, StepClock
from substrate.events import Event, Head, Inline, NodeCompleted, seal
from tests.executor.randgraph import graphs


def _jittered_model(seed: int) -> MockModel:
    def latency(key: CallKey) -> float:
        return (hash((seed, key.node, key.index)) % 7) * 0.0003

    return MockModel(
        lambda req, key: f"{key.node}:{len(req.messages[-1].content)}", latency=latency
    )


async def _echo(v: Any) -> Any:
    await asyncio.sleep(0)
    return v


def _record(graph: Graph, x: int, items: list[int], seed: int) -> tuple[Any, list[Event], Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "runs.db")
        try:
            compiled = compile_graph(graph)
            holder: dict[str, Any] = {}

            async def go() -> Any:
                from executor.fold import RunState as RS
                from executor.schedule import Engine

                state = RS(compiled, "r")
                store.put_graph(compiled.graph_hash, b"{}")
                engine = Engine(
                    store,
                    state,
                    model=_jittered_model(seed),
                    tools=__import__("substrate").PythonTools({"echo": _echo}),
                    clock=StepClock(),
                    options=EngineOptions(max_concurrency=4),
                )
                await engine.start({"x": x, "items": items}, seed=f"{seed:032x}", options={})
                holder["state"] = engine.state
                return engine.state

            live = asyncio.run(go())
            log = store.read("r")
            return compiled, log, live
        finally:
            store.close()


def _check_frontier(state: RunState) -> None:
    fr = state.frontier
    done = {k: i.route for k, i in state.instances.items() if i.status == "completed"}
    skipped = {k for k, i in state.instances.items() if i.status == "skipped"}
    started = {k for k, i in state.instances.items() if i.status in ("running", "failed")}
    assert fr.ready_set() == frontier_from_scratch(fr.scopes, done, skipped, started)


@settings(max_examples=60)
@given(
    graph=graphs(),
    x=st.integers(0, 50),
    items=st.lists(st.integers(0, 9), max_size=4),
    seed=st.integers(0, 2**16),
)
def test_fold_of_the_log_read_back_equals_the_live_state(
    graph: Graph, x: int, items: list[int], seed: int
) -> None:
    compiled, log, live = _record(graph, x, items, seed)
    assert live.status == "completed", live.error
    folded = RunState(compiled, "r")
    for event in log:
        folded.apply(event)
        _check_frontier(folded)  # the incremental frontier equals a from-scratch one
    assert folded.snapshot() == live.snapshot()


def test_fold_refuses_out_of_order_and_unknown_events() -> None:
    from tests.executor.helpers import chain

    compiled = compile_graph(chain(2))
    state = RunState(compiled, "r")
    events, _, _ = seal(Head(), [(0, "n0", NodeCompleted(Inline(1)))])
    with pytest.raises(
        FoldError,
        match=r"^run 'r' seq 0: node.completed for node instance 'n0', which the run has not",
    ):
        state.apply(events[0])
    skipped, _, _ = seal(Head(5, None), [(0, None, NodeCompleted(Inline(1)))])
    with pytest.raises(FoldError, match="event seq 5 applied where seq 0 was expected"):
        RunState(compiled, "r").apply(skipped[0])
