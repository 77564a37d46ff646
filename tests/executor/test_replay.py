"""Replay: any recorded run re-drives byte-identically; a change is named precisely.

The property test records random graphs (every node kind the random builder makes)
with random scripted answers, random latencies (so the completion order of concurrent
work varies) and random crash points (each followed by a resume in a fresh engine),
then replays the log read back from the store.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor import api
from executor.errors import ExecutorError, NondeterminismError, RunNotFound
from executor.replay import diff, first_difference, fork, replay
from executor.schedule import EXECUTOR_FLAGS, SUPPORTED_FLAGS, EngineOptions
from kir import Edge, Graph, Node
from kir.compile import compile_graph
from kir.schema import CodeConfig, LlmConfig
from substrate.events import Event, Head, Inline, LogHeader, NodeCompleted, RunStarted, seal
from substrate.mock import MockModel, StepClock
from substrate.stores.memory import MemoryStore
from substrate.stores.sqlite import SQLiteStore
from tests.executor import randgraph
from tests.executor.helpers import chain, code, hi_lo_router


class Killed(BaseException):
    pass


class KillingStore(MemoryStore):
    """Raises instead of the n-th append, like a process killed before it commits."""

    def __init__(self) -> None:
        super().__init__()
        self.left: int | None = None

    def append(self, run_id: str, expected_seq: int, events: Sequence[Event], **kw: Any) -> Any:
        if self.left is not None:
            if self.left <= 0:
                self.left = None
                raise Killed()
            self.left -= 1
        return super().append(run_id, expected_seq, events, **kw)


def _echo(v: Any) -> Any:
    return v


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    graph=randgraph.graphs(max_nodes=10),
    answers=st.lists(st.text("abcxyz ", min_size=1, max_size=12), min_size=1, max_size=4),
    turns=st.lists(st.integers(0, 5), min_size=1, max_size=6),
    kills=st.lists(st.integers(1, 10), max_size=3),
    x=st.integers(0, 9),
    concurrency=st.integers(1, 4),
)
def test_any_recorded_run_replays_byte_identically(
    graph: Graph,
    answers: list[str],
    turns: list[int],
    kills: list[int],
    x: int,
    concurrency: int,
) -> None:
    store = KillingStore()
    clock = StepClock()
    tools = {"echo": _echo}
    store.left = kills[0] if kills else None
    with contextlib.suppress(Killed):
        api.run(
            graph,
            {"x": x, "items": [1, 2, 3]},
            store=store,
            model=randgraph.ScriptedModel(answers, turns),
            tools=tools,
            clock=clock,
            run_id="r",
            options=EngineOptions(max_concurrency=concurrency),
        )
    for k in [*kills[1:], None]:
        store.left = k
        with contextlib.suppress(Killed):
            api.resume(
                "r",
                store=store,
                model=randgraph.ScriptedModel(answers, turns),
                tools=tools,
                clock=clock,
            )
    store.left = None
    report = replay(store, "r")
    assert report.events == store.head("r").next_seq
    assert report.resumes == sum(1 for e in store.read("r") if e.kind == "run.resumed")


# -- divergence reports ------------------------------------------------------------------


def _two_step(fn: str) -> Graph:
    return Graph(
        nodes=[
            Node(
                id="a",
                config=CodeConfig(function="tests.executor.fns:inc"),
                inputs={"x": "$input.x"},
            ),
            Node(id="b", config=CodeConfig(function=f"tests.executor.fns:{fn}"), inputs={"x": "a"}),
        ],
        edges=[Edge("a", "b")],
        output="b",
    )


def _swap_graph(store: MemoryStore, run_id: str, graph: Graph) -> None:
    """Copy a recorded run under another graph: 'the code changed after recording'."""
    log = store.read(run_id)
    compiled = compile_graph(graph)
    store.put_graph(compiled.graph_hash, compiled.canonical)
    first = log[0].data
    assert isinstance(first, RunStarted)
    drafts = [(log[0].at, None, msgspec.structs.replace(first, graph_hash=compiled.graph_hash))]
    drafts += [(e.at, e.node, e.data) for e in log[1:]]
    events, bodies, _ = seal(Head(), drafts)
    store.append(run_id + "-changed", 0, events, bodies=bodies)


def test_a_changed_output_is_named_by_seq_node_kind_and_path() -> None:
    store = MemoryStore()
    res = api.run(_two_step("inc"), {"x": 1}, store=store, clock=StepClock(), run_id="r")
    _swap_graph(store, "r", _two_step("double"))
    with pytest.raises(NondeterminismError) as err:
        replay(store, "r-changed")
    exc = err.value
    seq = next(e.seq for e in store.read("r") if e.node == "b" and e.kind == "node.completed")
    assert (exc.seq, exc.node, exc.kind, exc.path) == (
        seq,
        "b",
        "node.completed",
        "$.data.output.value",
    )
    assert (exc.recorded, exc.regenerated) == ("3", "4")
    assert str(exc) == (
        f"run 'r-changed' diverged at seq {seq} (node.completed of node 'b'): "
        "$.data.output.value was 3 when recorded, 4 on replay"
    )
    assert res.status == "completed"


def test_a_changed_prompt_is_caught_at_the_request_before_any_answer() -> None:
    def graph(prompt: str) -> Graph:
        return Graph(
            nodes=[
                Node(
                    id="w",
                    config=LlmConfig(model="mock:m", prompt=prompt),
                    inputs={"t": "$input.t"},
                )
            ],
            output="w",
        )

    store = MemoryStore()
    api.run(graph("Write about {t}"), {"t": "tides"}, store=store, clock=StepClock(), run_id="r")
    _swap_graph(store, "r", graph("Write a poem about {t}"))
    with pytest.raises(NondeterminismError) as err:
        replay(store, "r-changed")
    assert err.value.kind == "model.requested"
    assert err.value.path == "$.data.request_hash"


def test_long_values_are_abbreviated() -> None:
    a = Event(3, 1, "node.completed", "n", NodeCompleted(output=Inline("x" * 500)), None)
    b = Event(3, 1, "node.completed", "n", NodeCompleted(output=Inline("y" * 500)), None)
    path, ra, rb = first_difference(a, b)
    assert path == "$.data.output.value"
    assert len(ra) <= 120
    assert ra.endswith("(502 chars)")
    assert len(rb) <= 120


def test_replay_of_an_unknown_run_names_it() -> None:
    with pytest.raises(RunNotFound, match="no run 'nope'"):
        replay(MemoryStore(), "nope")


def test_replay_reads_a_sqlite_log_with_blobs(tmp_path: Any) -> None:
    store = SQLiteStore(str(tmp_path / "runs.db"))
    big = "word " * 2000
    g = Graph(
        nodes=[
            Node(id="w", config=LlmConfig(model="mock:m", prompt="{t}"), inputs={"t": "$input.t"})
        ],
        output="w",
    )
    res = api.run(g, {"t": big}, store=store, run_id="r")
    assert replay(store, "r").events == res.events


def test_a_long_chain_replays_in_order() -> None:
    store = MemoryStore()
    res = api.run(chain(300), {"x": 0}, store=store, run_id="r")
    report = replay(store, "r")
    assert (report.events, report.status, report.resumes) == (res.events, "completed", 0)


# -- fork and diff ---------------------------------------------------------------------


def _pipeline() -> Graph:
    return Graph(
        nodes=[
            Node(
                id="outline",
                config=LlmConfig(model="mock:m", prompt="Outline {t}"),
                inputs={"t": "$input.t"},
            ),
            Node(
                id="essay",
                config=LlmConfig(model="mock:m", prompt="Essay from {o}"),
                inputs={"o": "outline"},
            ),
        ],
        edges=[Edge("outline", "essay")],
        output="essay",
    )


def test_fork_reuses_the_prefix_and_continues_live() -> None:
    store = MemoryStore()
    first = MockModel({"outline": ["1. moon"], "essay": ["An essay."]})
    api.run(_pipeline(), {"t": "tides"}, store=store, model=first, run_id="a")
    log = store.read("a")
    at = next(e.seq for e in log if e.kind == "node.started" and e.node == "essay")
    new_id = fork(store, "a", at=at)
    assert new_id == f"a-fork-{at}"
    second = MockModel({"essay": ["A better essay."]})
    res = api.resume(new_id, store=store, model=second)
    assert (res.status, res.output) == ("completed", "A better essay.")
    assert second.calls == 1  # the outline was not asked again
    forked = store.read(new_id)
    assert [e.data for e in forked[1:at]] == [e.data for e in log[1:at]]
    assert forked[0].data.options["forked_from"] == {"run": "a", "at": at}  # type: ignore[attr-defined]
    replay(store, new_id)  # a forked run replays too
    d = diff(store, "a", new_id)
    assert not d.identical
    assert d.first is not None
    assert d.first.seq == 0
    changed = {c.node: c.changes for c in d.nodes}
    assert set(changed) == {"essay"}
    assert changed["essay"]["output"] == ("An essay.", "A better essay.")


def test_fork_refuses_a_bad_seq_and_a_taken_id() -> None:
    store = MemoryStore()
    api.run(chain(2), {"x": 0}, store=store, run_id="a")
    with pytest.raises(Exception, match="--at must be between 1 and"):
        fork(store, "a", at=0)
    fork(store, "a", at=2, new_run_id="b")
    with pytest.raises(Exception, match="run 'b' already exists"):
        fork(store, "a", at=2, new_run_id="b")


def test_diff_of_two_runs_names_the_first_difference_and_the_nodes() -> None:
    store = MemoryStore()
    clock = StepClock()
    api.run(
        _pipeline(),
        {"t": "tides"},
        store=store,
        clock=clock,
        seed="0" * 32,
        run_id="a",
        model=MockModel({"outline": ["1. moon"], "essay": ["An essay."]}),
    )
    clock2 = StepClock()
    api.run(
        _pipeline(),
        {"t": "tides"},
        store=store,
        clock=clock2,
        seed="0" * 32,
        run_id="b",
        model=MockModel({"outline": ["1. moon"], "essay": ["Another essay, longer."]}),
    )
    d = diff(store, "a", "b")
    assert d.first is not None
    assert d.first.kind_a == d.first.kind_b == "model.called"
    assert d.first.node == "essay"
    changes = {c.node: c.changes for c in d.nodes}
    assert set(changes) == {"essay"}
    assert set(changes["essay"]) >= {"output", "tokens", "cost_usd"}
    same = diff(store, "a", "a")
    assert same.identical
    assert same.nodes == []


def test_a_run_imported_or_forked_under_another_id_still_replays(tmp_path: Any) -> None:
    from executor.bundle import export_run, import_run
    from kir import ToolSpec
    from kir.schema import ToolConfig

    g = Graph(
        nodes=[
            Node(
                id="t", config=ToolConfig(tool="echo", args={"v": "{x}"}), inputs={"x": "$input.x"}
            ),
            Node(
                id="u",
                config=CodeConfig(function="tests.executor.fns:inc"),
                inputs={"x": "$input.x"},
            ),
        ],
        edges=[Edge("t", "u")],
        tools=[ToolSpec(name="echo")],
    )
    store = MemoryStore()
    api.run(g, {"x": 1}, store=store, tools={"echo": _echo}, run_id="orig")
    export_run(store, "orig", tmp_path / "b")
    other = MemoryStore()
    import_run(other, tmp_path / "b", run_id="renamed")
    assert replay(other, "renamed").status == "completed"
    at = len(store.read("orig")) - 1
    fork(store, "orig", at=at, new_run_id="forked")
    api.resume("forked", store=store, tools={"echo": _echo})
    assert replay(store, "forked").status == "completed"
    keys = [e.data.idempotency_key for e in store.read("forked") if e.kind == "tool.requested"]  # type: ignore[attr-defined]
    assert keys == [
        e.data.idempotency_key for e in store.read("orig") if e.kind == "tool.requested"
    ]  # type: ignore[attr-defined]


def _started_under(flags: dict[str, Any] | None) -> MemoryStore:
    """A store holding run 'r' of a 2-node chain: only its run.started, whose header
    carries ``flags`` (None: no header written at all, as in the oldest logs)."""
    store = MemoryStore()
    compiled = compile_graph(chain(2))
    store.put_graph(compiled.graph_hash, compiled.canonical)
    data = RunStarted(graph_hash=compiled.graph_hash, inputs=Inline({"x": 0}), seed="5e")
    if flags is not None:
        data = msgspec.structs.replace(data, header=LogHeader(flags=flags))
    events, bodies, _ = seal(Head(0, None), [(1_700_000_000_000_000, None, data)])
    store.append("r", 0, events, bodies=bodies)
    return store


@pytest.mark.parametrize(
    ("flags", "foreign"),
    [({"engine": 3}, {"engine": 3}), ({"engine": 2, "streaming": True}, {"streaming": True})],
)
def test_a_run_recorded_under_engine_behaviour_this_engine_lacks_is_refused(
    flags: dict[str, Any], foreign: dict[str, Any]
) -> None:
    store = _started_under(flags)
    message = (
        f"run 'r' was recorded with engine behaviour flags {foreign} that this Foldline "
        "does not have (it runs engine=1|2); resume or replay it with the Foldline "
        "that recorded it"
    )
    with pytest.raises(ExecutorError, match=f"^{re.escape(message)}$"):
        api.resume("r", store=store)
    with pytest.raises(ExecutorError, match=re.escape(message)):
        replay(store, "r")
    assert len(store.read("r")) == 1  # nothing was written


@pytest.mark.parametrize("flags", [None, {}, dict(EXECUTOR_FLAGS)])
def test_a_header_lacking_a_flag_runs_the_oldest_behaviour(flags: dict[str, Any] | None) -> None:
    assert all(v in SUPPORTED_FLAGS[k] for k, v in EXECUTOR_FLAGS.items())
    store = _started_under(flags)
    res = api.resume("r", store=store)
    assert (res.status, res.output) == ("completed", 2)
    assert replay(store, "r").events == len(store.read("r"))


def test_diff_names_a_changed_route_and_what_it_skipped() -> None:
    g = Graph(
        nodes=[
            hi_lo_router(),
            code("hi", "inc", {"x": "$input.x"}),
            code("lo", "inc", {"x": "$input.x"}),
        ],
        edges=[Edge("r", "hi", when="hi"), Edge("r", "lo", when="lo")],
    )
    store = MemoryStore()
    for run_id, x in (("a", 9), ("b", 1)):
        api.run(g, {"x": x}, store=store, clock=StepClock(), seed="0" * 32, run_id=run_id)
    d = diff(store, "a", "b")
    assert d.first is not None
    assert (d.first.seq, d.first.kind_a, d.first.path) == (
        0,
        "run.started",
        "$.data.inputs.value.x",
    )
    changes = {c.node: c.changes for c in d.nodes}
    assert changes["r"]["route"] == (["hi"], ["lo"])
    assert changes["hi"]["status"] == ("completed", "skipped")
    assert changes["lo"]["status"] == ("skipped", "completed")
