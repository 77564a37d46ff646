"""Property tests of the pure core: the fold and the incremental frontier."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.api import arun
from executor.errors import FoldError
from executor.fold import RunState
from executor.frontier import frontier_from_scratch
from executor.schedule import EngineOptions
from kir import Edge, Graph, Node, compile_graph
from kir.schema import MapConfig, SubgraphConfig
from substrate import MockModel, SQLiteStore, StepClock
from substrate.events import Event, EventData, Head, Inline, NodeCompleted, seal
from tests.executor.randgraph import ScriptedModel, graphs


async def _echo(v: Any) -> Any:
    await asyncio.sleep(0)
    return v


def _record(
    graph: Graph, x: int, items: list[int], seed: int, model: MockModel
) -> tuple[Any, list[Event], Any]:
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
                    model=model,
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


@settings(max_examples=60, deadline=None)
@given(
    graph=graphs(),
    x=st.integers(0, 50),
    items=st.lists(st.integers(0, 9), max_size=4),
    seed=st.integers(0, 2**16),
    answers=st.lists(st.text("abcxyz ", min_size=1, max_size=12), min_size=1, max_size=4),
    turns=st.lists(st.integers(0, 5), min_size=1, max_size=6),
)
def test_fold_of_the_log_read_back_equals_the_live_state(
    graph: Graph, x: int, items: list[int], seed: int, answers: list[str], turns: list[int]
) -> None:
    compiled, log, live = _record(graph, x, items, seed, ScriptedModel(answers, turns))
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

    unknown = Event(0, 0, Unheard.KIND, None, Unheard(), None)
    message = r"^run 'r' seq 0: no fold for event kind 'run\.unheard'$"
    with pytest.raises(FoldError, match=message):
        RunState(compiled, "r").apply(unknown)
    with pytest.raises(FoldError, match=message):
        RunState(compiled, "r").apply_all([unknown])


class Unheard(EventData, frozen=True):
    """An event kind the fold has no handler for."""

    KIND: ClassVar[str] = "run.unheard"


def test_instances_are_a_view_of_the_places_reached() -> None:
    from substrate.events import NodeStarted, RunStarted
    from tests.executor.helpers import chain

    compiled = compile_graph(chain(3))
    state = RunState(compiled, "r")
    started = RunStarted(graph_hash=compiled.graph_hash, inputs=Inline({"x": 1}), seed="5e")
    events, _, _ = seal(
        Head(),
        [
            (0, None, started),
            (1, "n0", NodeStarted()),
            (2, "n0", NodeCompleted(Inline(2))),
            (3, "n1", NodeStarted()),
        ],
    )
    state.apply_all(events)
    # n2 is not reached; n1 runs; n0 is done.
    assert dict(state.instances.items()) == {"n0": state.instance("n0"), "n1": state.instance("n1")}
    assert len(state.instances) == 2
    assert "n1" in state.instances
    assert "n2" not in state.instances
    assert state.instances.get("n2") is None
    assert state.instances["n0"].status == "completed"
    assert state.in_flight == ["n1"]
    with pytest.raises(KeyError):
        state.instances["n2"]
    with pytest.raises(FoldError, match=r"^run 'r': no node instance 'nope' has been reached"):
        state.instance("nope")


def _composites() -> Graph:
    """Every way of opening scopes: a map of maps, maps over one- and two-node graphs, a
    subgraph, each body inline or declared."""
    from tests.executor.helpers import code

    one = Graph(id="one", nodes=[code("d", "double", {"x": "$input.item"})], output="d")
    two = Graph(
        id="two",
        nodes=[code("d", "double", {"x": "$input.item"}), code("i", "inc", {"x": "d"})],
        edges=[Edge("d", "i")],
        output="i",
    )
    inner = Node(
        id="inner",
        config=MapConfig(over="$item", node=code("e", "double", {"x": "$item"}), max_concurrency=2),
    )
    return Graph(
        nodes=[
            Node(id="outer", config=MapConfig(over="$input.items", node=inner, max_concurrency=2)),
            Node(id="m1", config=MapConfig(over="$input.flat", graph="one", max_concurrency=2)),
            Node(id="m2", config=MapConfig(over="$input.flat", graph="two")),
            Node(id="sub", config=SubgraphConfig(graph="two"), inputs={"item": "$input.x"}),
        ],
        subgraphs=[one, two],
    )


def test_fold_of_composite_scopes_equals_the_live_state() -> None:
    graph = _composites()
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "runs.db")
        try:
            inputs = {"x": 3, "items": [[1, 2, 3], [], [4]], "flat": [5, 6, 7]}
            res = asyncio.run(
                arun(
                    graph, inputs, store=store, run_id="r", options=EngineOptions(max_concurrency=3)
                )
            )
            assert res.status == "completed", res.error
            assert res.output == {
                "outer": [[2, 4, 6], [], [8]],
                "m1": [10, 12, 14],
                "m2": [11, 13, 15],
                "sub": 7,
            }
            log = store.read("r")
        finally:
            store.close()
    compiled = compile_graph(graph)
    live = RunState(compiled, "r").apply_all(log)
    folded = RunState(compiled, "r")
    for event in log:
        folded.apply(event)
        _check_frontier(folded)
    assert folded.snapshot() == live.snapshot()
    fr = folded.frontier
    # Item scopes of one-node bodies are made when asked for, and look like any other.
    scope = fr.scopes["outer[2]/"]
    assert (scope.prefix, scope.owner, scope.item, scope.order_key) == (
        "outer[2]/",
        "outer",
        2,
        (*fr.order_keys["outer"], 2),
    )
    assert fr.node_of("outer[2]/inner[0]/e")[0] is fr.scopes["outer[2]/inner[0]/"]
    assert fr.where["m1[1]/d"] == ("m1[1]/", "d")
    assert fr.order_keys["m1[1]/d"] == (*fr.order_keys["m1"], 1, 0)
    assert "m1[3]/" not in fr.scopes  # never opened
    assert "m1[01]/" not in fr.scopes  # one spelling per index
    assert "m2[2]/" in fr.scopes
    assert sorted(fr.scopes) == [
        "",
        "m1[0]/",
        "m1[1]/",
        "m1[2]/",
        "m2[0]/",
        "m2[1]/",
        "m2[2]/",
        "outer[0]/",
        "outer[0]/inner[0]/",
        "outer[0]/inner[1]/",
        "outer[0]/inner[2]/",
        "outer[1]/",
        "outer[2]/",
        "outer[2]/inner[0]/",
        "sub/",
    ]
    assert len(fr.scopes) == len(list(fr.scopes))


@settings(max_examples=40)
@given(
    limit=st.integers(1, 6),
    total=st.integers(0, 12),
    moves=st.lists(st.booleans(), max_size=60),
)
def test_pop_ready_takes_map_items_in_order_among_other_ready_nodes(
    limit: int, total: int, moves: list[bool]
) -> None:
    """A one-node map's items wait in the map's own queue (one of them in the heap): what
    comes out is still the ready instance of least order key, whatever else is ready."""
    from executor.frontier import Frontier, SingleNode
    from kir.schema import CodeConfig

    def node(node_id: str) -> Node:
        return Node(id=node_id, config=CodeConfig(function="tests.executor.fns:noop"))

    body = node("b")
    m = Node(id="m", config=MapConfig(over="a", node=body, max_concurrency=limit))
    graph = compile_graph(
        Graph(
            nodes=[node("a"), m, node("k"), node("n"), node("z")],
            edges=[Edge("a", "m"), Edge("k", "n")],
            output="m",
        )
    )
    fr = Frontier()
    fr.open_scope("", graph, (), None)
    running: list[str] = []

    def pop_and_check() -> str | None:
        ready = [k for k in fr.ready_set() if k not in fr.skippable]
        place = fr.pop_ready()
        key = None if place is None else place.key
        if not ready:
            assert key is None
            return None
        assert key == min(ready, key=lambda k: (fr.order_keys[k], k))
        fr.started(key)
        running.append(key)
        if key == "m":
            fr.open_map("m", SingleNode(body, graph.subgraphs, graph.tools), total, limit)
        return key

    def finish_one() -> None:
        key = running.pop(0)
        if key != "m":  # the map is done when its items are: not by hand
            fr.done(key, None, False)

    for finish in moves:
        if (finish or pop_and_check() is None) and running:
            finish_one()
    while pop_and_check() is not None or running:
        if running:
            finish_one()
    opened = fr.fanouts["m"].opened if "m" in fr.fanouts else 0
    assert opened == total or "m" not in fr.fanouts
