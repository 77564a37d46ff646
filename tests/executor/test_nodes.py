"""Each node kind, run on the engine against a real SQLite store with the scripted model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from executor.api import Budget, approve, reject, resume, run, signal
from executor.replay import replay
from executor.schedule import EngineOptions
from kir import Edge, Graph, Node, ToolSpec
from kir.schema import (
    AgentConfig,
    GateConfig,
    LlmConfig,
    MapConfig,
    RetryPolicy,
    RouterConfig,
    SubgraphConfig,
    ToolConfig,
    WaitConfig,
)
from substrate import CallKey, MockModel, MockReply, ModelRequest, SQLiteStore, StepClock
from substrate.codec import hash_value
from substrate.events import ModelCalled, NodeFailed, NodeStarted, ToolRequested
from tests.executor import fns
from tests.executor.helpers import chain, code, hi_lo_router, item_map


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = SQLiteStore(tmp_path / "runs.db")
    yield s
    s.close()


def kinds(store: SQLiteStore, run_id: str) -> list[tuple[str, str | None]]:
    return [(e.kind, e.node) for e in store.read(run_id)]


def test_chain_of_code_nodes(store: SQLiteStore) -> None:
    res = run(chain(5), {"x": 1}, store=store, clock=StepClock())
    assert res.status == "completed"
    assert res.output == 6
    log = store.read(res.run_id)
    assert [e.kind for e in log] == ["run.started"] + ["node.started", "node.completed"] * 5 + [
        "run.completed"
    ]


def test_sync_and_async_callables(store: SQLiteStore) -> None:
    g = Graph(
        nodes=[code("a", "double", {"x": "$input.x"}), code("b", "adouble", {"x": "a"})],
        edges=[Edge("a", "b")],
        output="b",
    )
    assert run(g, {"x": 3}, store=store).output == 12


def test_async_callables_run_without_a_context_exactly_as_with_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A coroutine function with no ``ctx`` is awaited by the engine directly: the log is
    byte for byte the one ``run_code`` (through a NodeContext) writes, errors included."""
    from executor import nodes, schedule
    from kir.schema import CodeConfig

    fn = "tests.executor.fns:"
    assert nodes.direct_code(fn + "ainc") == (fns.ainc, False, True)
    assert nodes.direct_code(fn + "aparams") == (fns.aparams, True, True)
    assert nodes.direct_code(fn + "actx") is None  # wants its context
    assert nodes.direct_code(fn + "no_such_fn") is None  # run_code names the error

    def graph(last: str) -> Graph:
        with_params = Node(
            id="p",
            config=CodeConfig(function=fn + "aparams", params={"add": 10}),
            inputs={"x": "s"},
        )
        return Graph(
            nodes=[
                code("a", "ainc", {"x": "$input.x"}),
                code("s", "asleep_inc", {"x": "a"}),  # suspends: continues as a task
                with_params,
                code("c", "actx", {"x": "p"}),
                code("z", last, {"x": "c"}),
            ],
            edges=[Edge("a", "s"), Edge("s", "p"), Edge("p", "c"), Edge("c", "z")],
            output="z",
        )

    def record(name: str, last: str) -> tuple[Any, list[bytes]]:
        store = SQLiteStore(tmp_path / f"{name}.db")
        try:
            res = run(graph(last), {"x": 1}, store=store, clock=StepClock(), run_id="r", seed="5e")
            return res, store.read_sealed("r").bodies
        finally:
            store.close()

    # The last node returns; raises at once; raises after a suspension; takes no 'x'.
    lasts = ("ainc", "aboom", "asleep_boom", "anamed")
    direct = {last: record(f"direct-{last}", last) for last in lasts}
    monkeypatch.setattr(schedule, "direct_code", lambda ref: None)
    with_ctx = {last: record(f"ctx-{last}", last)[1] for last in lasts}

    assert direct["ainc"][0].status == "completed"
    assert direct["ainc"][0].output == 1 + 1 + 1 + 10 + 1 + 1
    for last in lasts[1:]:
        assert direct[last][0].status == "failed"
    assert "aboom" in str(direct["aboom"][0].error)
    assert "asleep_boom" in str(direct["asleep_boom"][0].error)
    assert "'x'" in str(direct["anamed"][0].error)
    for last in lasts:
        assert direct[last][1] == with_ctx[last], last


def test_plain_functions_run_in_worker_threads_exactly_as_through_run_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain function with no ``ctx`` goes to a worker thread from the engine itself,
    and its outcome is taken without a trip through the loop once the thread is done.
    Whether it was done when the engine looked (every one, below) or not (none), the log
    is byte for byte the one ``run_code`` (``asyncio.to_thread``) writes, errors included,
    and it replays."""
    from concurrent.futures import wait

    from executor import nodes, schedule
    from kir.schema import CodeConfig

    fn = "tests.executor.fns:"
    assert nodes.direct_code(fn + "inc") == (fns.inc, False, False)
    assert nodes.direct_code(fn + "params_inc") == (fns.params_inc, True, False)
    assert nodes.direct_code(fn + "stamp") is None  # wants its context

    def graph(last: str) -> Graph:
        with_params = Node(
            id="p",
            config=CodeConfig(function=fn + "params_inc", params={"add": 10}),
            inputs={"x": "a"},
        )
        return Graph(
            nodes=[
                code("a", "inc", {"x": "$input.x"}),
                with_params,
                code("c", "ainc", {"x": "p"}),  # async between two threads
                code("z", last, {"x": "c"}),
            ],
            edges=[Edge("a", "p"), Edge("p", "c"), Edge("c", "z")],
            output="z",
        )

    def record(name: str, last: str) -> tuple[Any, list[bytes]]:
        store = SQLiteStore(tmp_path / f"{name}.db")
        try:
            res = run(graph(last), {"x": 1}, store=store, clock=StepClock(), run_id="r", seed="5e")
            assert replay(store, "r").events == len(store.read("r"))
            return res, store.read_sealed("r").bodies
        finally:
            store.close()

    looked: dict[str, int] = {"done": 0, "waited": 0}
    threads_done, threads_to_tasks = (
        schedule.Engine._threads_done,
        schedule.Engine._threads_to_tasks,
    )

    def counted_done(self: schedule.Engine) -> list[tuple[str, Any]]:
        found = threads_done(self)
        looked["done"] += len(found)
        return found

    def counted_to_tasks(self: schedule.Engine) -> None:
        looked["waited"] += len(self._threads)
        threads_to_tasks(self)

    monkeypatch.setattr(schedule.Engine, "_threads_done", counted_done)
    monkeypatch.setattr(schedule.Engine, "_threads_to_tasks", counted_to_tasks)
    lasts = ("inc", "boom", "named")  # returns; raises; takes no 'x'

    # Every thread done before the engine looks: the commit waits for them first.
    commit = schedule.Engine._commit

    def commit_after_threads(self: schedule.Engine, durable: bool = False) -> None:
        wait(list(self._threads.values()))
        commit(self, durable)

    with monkeypatch.context() as m:
        m.setattr(schedule.Engine, "_commit", commit_after_threads)
        done_first = {last: record(f"done-{last}", last) for last in lasts}
    assert looked["done"] >= 2 * len(lasts), looked
    assert looked["waited"] == 0, looked

    # No thread done when the engine looks: each comes back through the loop.
    looked.update(done=0, waited=0)
    with monkeypatch.context() as m:
        m.setattr(schedule.Engine, "_threads_done", lambda self: [])
        waited = {last: record(f"waited-{last}", last)[1] for last in lasts}
    assert looked["waited"] >= 2 * len(lasts), looked

    monkeypatch.setattr(schedule, "direct_code", lambda ref: None)
    with_ctx = {last: record(f"ctx-{last}", last)[1] for last in lasts}

    assert done_first["inc"][0].status == "completed"
    assert done_first["inc"][0].output == 1 + 1 + 10 + 1 + 1
    assert "boom" in str(done_first["boom"][0].error)
    assert "'x'" in str(done_first["named"][0].error)
    for last in lasts:
        assert done_first[last][1] == waited[last] == with_ctx[last], last


def test_the_loop_thread_waits_briefly_for_plain_functions_then_leaves_it_to_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With only worker threads running, the loop's thread blocks on them for at most
    ``thread_wait_s``: a call that returns within it is taken at once, a longer one is
    handed to the loop; with 0 the thread never blocks. The log is the same either way."""
    from concurrent import futures

    from executor import schedule
    from substrate import MemoryStore

    to_loop: list[str] = []
    threads_to_tasks = schedule.Engine._threads_to_tasks

    def counted_to_tasks(self: schedule.Engine) -> None:
        to_loop.extend(self._threads)
        fns.RELEASE.set()  # held() can return only once the loop has taken the wait over
        threads_to_tasks(self)

    blocked: list[float] = []
    futures_wait = futures.wait

    def counted_wait(fs: Any, timeout: float | None = None, return_when: str = "") -> Any:
        blocked.append(timeout or 0.0)
        return futures_wait(fs, timeout, return_when)

    monkeypatch.setattr(schedule.Engine, "_threads_to_tasks", counted_to_tasks)
    monkeypatch.setattr(schedule.futures, "wait", counted_wait)

    def bodies(graph: Graph, wait_s: float) -> list[bytes]:
        store = MemoryStore()
        options = EngineOptions(thread_wait_s=wait_s)
        res = run(
            graph, {"x": 0}, store=store, clock=StepClock(), run_id="r", seed="5e", options=options
        )
        assert res.status == "completed", res.error
        return store.read_sealed("r").bodies

    # A bound far above any step: every call returns within it; none goes to the loop.
    longer = bodies(chain(20), 30.0)
    assert (len(blocked), to_loop) == (20, [])
    assert set(blocked) == {30.0}
    # 0: the loop's thread never blocks on a worker.
    blocked.clear()
    assert bodies(chain(20), 0.0) == longer
    assert blocked == []
    # A call still running when the wait ends is handed to the loop, and completes there.
    blocked.clear()
    to_loop.clear()
    fns.RELEASE.clear()
    held = Graph(nodes=[code("h", "held", {"x": "$input.x"})], output="h")
    bodies(held, 0.001)
    assert (blocked, to_loop) == ([0.001], ["h"])


def test_a_plain_function_runs_in_a_worker_thread_with_the_callers_context(
    store: SQLiteStore,
) -> None:
    """As under ``asyncio.to_thread``: not in the loop's thread, with the context the
    run was started in; and no worker thread outlives the run."""
    import threading

    token = fns.TRACE.set("run-1")
    try:
        graph = Graph(nodes=[code("w", "where", {"x": "$input.x"})], output="w")
        res = run(graph, {"x": 1}, store=store)
    finally:
        fns.TRACE.reset(token)
    assert res.status == "completed", res.error
    assert res.output["trace"] == "run-1"
    assert res.output["thread"].startswith("foldline-code")
    assert res.output["thread"] != threading.current_thread().name
    assert not [t for t in threading.enumerate() if t.name.startswith("foldline-code")]


def test_a_run_that_ends_around_a_running_plain_function_does_not_wait_for_it(
    store: SQLiteStore,
) -> None:
    """A sibling fails the run while a worker thread still runs: the run ends at once and
    records nothing of it; the call ends on its own (its outcome is dropped)."""
    import threading

    fns.RELEASE.clear()
    fns.HELD.clear()
    graph = Graph(nodes=[code("h", "held", {"x": "$input.x"}), code("b", "boom_once_held", {})])
    try:
        res = run(graph, {"x": 1}, store=store)
        assert res.status == "failed"
        assert "boom" in str(res.error)
        (in_held,) = fns.HELD
        assert in_held.name.startswith("foldline-code")
        assert in_held.is_alive()  # the run did not wait for it
        assert not [e for e in store.read(res.run_id) if e.node == "h" and e.kind != "node.started"]
    finally:
        fns.RELEASE.set()
    for t in threading.enumerate():
        if t.name.startswith("foldline-code"):
            t.join(30)
            assert not t.is_alive()


@pytest.mark.parametrize("fn", ["nonfinite", "anonfinite"])
def test_an_output_holding_nan_or_infinity_fails_its_node_naming_the_place(
    store: SQLiteStore, fn: str
) -> None:
    # The node.completed event is encoded without a scan for NaN: the check is the
    # payload's, made before the event exists. No event may carry the value as null.
    res = run(Graph(nodes=[code("n", fn, {"x": "$input.x"})]), {"x": 1}, store=store)
    assert res.status == "failed"
    log = store.read(res.run_id)
    failed = [e for e in log if e.kind == "node.failed"]
    assert len(failed) == 1
    assert failed[0].data.error.type == "NonFiniteFloat"  # type: ignore[attr-defined]
    assert "$.scores[1]" in failed[0].data.error.message  # type: ignore[attr-defined]
    assert not [e for e in log if e.kind == "node.completed"]
    assert replay(store, res.run_id).events == len(log)


def test_llm_node_records_the_call_and_its_cost(store: SQLiteStore) -> None:
    g = Graph(
        nodes=[
            Node(
                id="ask",
                config=LlmConfig(model="mock:m", prompt="Summarize {topic}", system="Be brief"),
                inputs={"topic": "$input.topic"},
            )
        ],
        output="ask",
    )
    model = MockModel(["short summary"], price_in=1.0, price_out=2.0)
    res = run(g, {"topic": "tides"}, store=store, model=model)
    assert res.output == "short summary"
    assert model.calls == 1
    (called,) = [e.data for e in store.read(res.run_id) if isinstance(e.data, ModelCalled)]
    assert called.cost_usd == res.cost_usd > 0
    assert res.model_calls == 1
    assert res.tokens == called.usage.input_tokens + called.usage.output_tokens


def test_llm_output_schema_parses_json(store: SQLiteStore) -> None:
    g = Graph(
        nodes=[
            Node(
                id="ask",
                config=LlmConfig(model="mock:m", prompt="x", output_schema={"type": "object"}),
            )
        ],
        output="ask",
    )
    res = run(g, store=store, model=MockModel(['{"a": [1, 2]}']))
    assert res.output == {"a": [1, 2]}


def test_router_by_expression_skips_the_untaken_branch(store: SQLiteStore) -> None:
    g = Graph(
        nodes=[
            hi_lo_router(),
            code("hi", "inc", {"x": "$input.x"}),
            code("lo", "double", {"x": "$input.x"}),
            code("after_lo", "inc", {"x": "lo"}),
            code("join", "join", {"hi": "hi", "lo": "after_lo"}),
        ],
        edges=[
            Edge("r", "hi", when="hi"),
            Edge("r", "lo", when="lo"),
            Edge("lo", "after_lo"),
            Edge("hi", "join"),
            Edge("after_lo", "join"),
        ],
        output="join",
    )
    res = run(g, {"x": 9}, store=store)
    assert res.output == {"hi": 10, "lo": None}
    log = kinds(store, res.run_id)
    assert ("node.skipped", "lo") in log
    assert ("node.skipped", "after_lo") in log  # skips propagate
    assert ("node.started", "lo") not in log


def test_router_by_model(store: SQLiteStore) -> None:
    g = Graph(
        nodes=[
            Node(
                id="r",
                config=RouterConfig(labels=["yes", "no"], model="mock:m", prompt="ok? {q}"),
                inputs={"q": "$input.q"},
            ),
            code("y", "noop"),
            code("n", "noop"),
        ],
        edges=[Edge("r", "y", when="yes"), Edge("r", "n", when="no")],
    )
    res = run(g, {"q": "?"}, store=store, model=MockModel([" no\n"]))
    log = kinds(store, res.run_id)
    assert ("node.skipped", "y") in log
    assert ("node.completed", "n") in log


def test_map_returns_results_in_index_order_whatever_the_completion_order(
    store: SQLiteStore,
) -> None:
    items = list(range(8))
    g = Graph(
        nodes=[
            Node(
                id="m",
                config=MapConfig(
                    over="$input.items",
                    node=Node(
                        id="ask",
                        config=LlmConfig(model="mock:m", prompt="{i}"),
                        inputs={"i": "$item"},
                    ),
                    max_concurrency=8,
                ),
            )
        ],
        output="m",
    )
    # Later items answer first: completion order is the reverse of index order.
    model = MockModel(
        lambda req, key: f"r{req.messages[-1].content}",
        latency=lambda k: 0.002 * (10 - int(k.node.split("[")[1].split("]")[0])),
    )
    res = run(g, {"items": items}, store=store, model=model)
    assert res.output == [f"r{i}" for i in items]
    completed = [e.node for e in store.read(res.run_id) if e.kind == "node.completed"]
    assert completed[:-1] != sorted(completed[:-1])  # they really finished out of order


def test_map_respects_max_concurrency(store: SQLiteStore) -> None:
    g = Graph(
        nodes=[item_map(code("d", "adouble", {"x": "$item"}), max_concurrency=2)],
        output="m",
    )
    res = run(g, {"items": [1, 2, 3, 4, 5]}, store=store)
    assert res.output == [2, 4, 6, 8, 10]
    active, peak = 0, 0
    for e in store.read(res.run_id):
        if e.node and e.node.startswith("m["):
            active += {"node.started": 1, "node.completed": -1}.get(e.kind, 0)
            peak = max(peak, active)
    assert peak == 2


def test_empty_map(store: SQLiteStore) -> None:
    g = Graph(
        nodes=[
            Node(
                id="m",
                config=MapConfig(over="$input.items", node=code("d", "double", {"x": "$item"})),
            )
        ],
        output="m",
    )
    assert run(g, {"items": []}, store=store).output == []


def test_map_over_a_non_list_fails_with_a_clear_error(store: SQLiteStore) -> None:
    g = Graph(
        nodes=[
            Node(
                id="m",
                config=MapConfig(over="$input.items", node=code("d", "double", {"x": "$item"})),
            )
        ],
        output="m",
    )
    res = run(g, {"items": 5}, store=store)
    assert res.status == "failed"
    assert res.error == "NodeError: map 'm': 'over' ($input.items) must be a list, got int (node m)"


def _map_reading(inputs: dict[str, str], fn: str = "join") -> Graph:
    """``base -> m``: a map over ``$input.items`` whose inline ``fn`` body binds ``inputs``."""
    return Graph(
        nodes=[
            code("base", "inc", {"x": "$input.x"}),
            Node(
                id="m",
                config=MapConfig(
                    over="$input.items", node=code("j", fn, inputs), max_concurrency=2
                ),
            ),
        ],
        edges=[Edge("base", "m")],
        output="m",
    )


# ctx_join takes a context, so it runs through the full code handler; join does not.
@pytest.mark.parametrize("fn", ["join", "ctx_join"])
def test_a_map_body_reads_its_item_index_input_and_the_enclosing_scope(
    store: SQLiteStore, fn: str
) -> None:
    inputs = {"v": "$item.v", "i": "$index", "x": "$input.x", "b": "base", "whole": "$item"}
    g = _map_reading(inputs, fn)
    items = [{"v": "a"}, {"v": "b"}, {"v": "c"}]
    res = run(g, {"x": 4, "items": items}, store=store)
    assert res.status == "completed", res.error
    assert res.output == [
        {"b": 5, "i": i, "v": item["v"], "whole": item, "x": 4} for i, item in enumerate(items)
    ]
    assert replay(store, res.run_id).events == res.events


def test_a_map_body_reading_a_missing_field_of_its_item_fails_naming_it(
    store: SQLiteStore,
) -> None:
    res = run(_map_reading({"v": "$item.nope"}), {"x": 0, "items": [{"v": 1}]}, store=store)
    assert res.status == "failed"
    assert res.error is not None
    assert "node 'm[0]/j' input 'v' ($item.nope)" in res.error, res.error


def _inner() -> Graph:
    return Graph(
        id="inner",
        nodes=[code("x2", "double", {"x": "$input.v"}), code("plus", "inc", {"x": "x2"})],
        edges=[Edge("x2", "plus")],
        output="plus",
    )


def test_subgraph_runs_inside_the_same_log_with_prefixed_keys(store: SQLiteStore) -> None:
    g = Graph(
        nodes=[
            code("a", "inc", {"x": "$input.x"}),
            Node(id="sub", config=SubgraphConfig(graph="inner"), inputs={"v": "a"}),
            code("after", "inc", {"x": "sub"}),
        ],
        edges=[Edge("a", "sub"), Edge("sub", "after")],
        subgraphs=[_inner()],
        output="after",
    )
    res = run(g, {"x": 1}, store=store)
    assert res.output == (2 * 2 + 1) + 1
    nodes = [e.node for e in store.read(res.run_id) if e.kind == "node.completed"]
    assert nodes == ["a", "sub/x2", "sub/plus", "sub", "after"]


def test_map_over_a_subgraph_body(store: SQLiteStore) -> None:
    body = Graph(
        id="body",
        nodes=[code("d", "double", {"x": "$input.item"}), code("i", "inc", {"x": "d"})],
        edges=[Edge("d", "i")],
        output="i",
    )
    g = Graph(
        nodes=[Node(id="m", config=MapConfig(over="$input.items", graph="body"))],
        subgraphs=[body],
        output="m",
    )
    res = run(g, {"items": [1, 2, 3]}, store=store)
    assert res.output == [3, 5, 7]
    assert "m[2]/i" in [e.node for e in store.read(res.run_id)]


def test_tool_node_and_idempotency_key(store: SQLiteStore) -> None:
    keys: list[str] = []

    def charge(amount: int, idempotency_key: str) -> str:
        keys.append(idempotency_key)
        return f"charged {amount}"

    g = Graph(
        nodes=[
            Node(
                id="pay",
                config=ToolConfig(tool="charge", args={"amount": "{a}"}),
                inputs={"a": "$input.a"},
            )
        ],
        tools=[ToolSpec(name="charge")],
        output="pay",
    )
    res = run(g, {"a": 5}, store=store, tools={"charge": charge})
    assert res.status == "completed"
    (req,) = [e.data for e in store.read(res.run_id) if isinstance(e.data, ToolRequested)]
    assert keys == [req.idempotency_key]
    # hash(run, node instance, call index): another run gets another key for the same call.
    assert req.idempotency_key == hash_value([res.run_id, "pay", 0])
    again = run(g, {"a": 5}, store=store, tools={"charge": charge})
    assert keys == [req.idempotency_key, hash_value([again.run_id, "pay", 0])]
    assert again.run_id != res.run_id
    assert len(set(keys)) == 2


def test_tool_failure_fails_the_node(store: SQLiteStore) -> None:
    def broken() -> None:
        raise RuntimeError("db down")

    g = Graph(
        nodes=[Node(id="t", config=ToolConfig(tool="broken"))],
        tools=[ToolSpec(name="broken")],
    )
    res = run(g, store=store, tools={"broken": broken})
    assert res.status == "failed"
    assert res.error == "NodeError: node 't': tool 'broken' failed: RuntimeError: db down (node t)"


def _agent_graph(approval: bool = False) -> Graph:
    return Graph(
        nodes=[
            Node(
                id="ops",
                config=AgentConfig(
                    model="mock:m",
                    instructions="Keep the cluster healthy. Goal: {goal}",
                    tools=["get_state", "apply_manifest"],
                    max_turns=5,
                ),
                inputs={"goal": "$input.goal"},
            )
        ],
        tools=[
            ToolSpec(name="get_state", idempotent=True, description="Read cluster state"),
            ToolSpec(name="apply_manifest", requires_approval=approval, description="Apply"),
        ],
        output="ops",
    )


def _agent_script() -> list[MockReply | str]:
    return [
        MockReply(tool_calls=[("get_state", {})]),
        MockReply(tool_calls=[("apply_manifest", {"replicas": 3})]),
        "scaled to 3",
    ]


def test_agent_loop_journals_every_model_and_tool_call(store: SQLiteStore) -> None:
    applied: list[dict[str, Any]] = []
    tools = {
        "get_state": lambda: {"replicas": 1},
        "apply_manifest": lambda replicas: applied.append({"replicas": replicas}) or "ok",
    }
    res = run(
        _agent_graph(),
        {"goal": "3 replicas"},
        store=store,
        model=MockModel(_agent_script()),
        tools=tools,
    )
    assert res.status == "completed"
    assert res.output == "scaled to 3"
    assert applied == [{"replicas": 3}]
    calls = [
        (e.kind, getattr(e.data, "call", None))
        for e in store.read(res.run_id)
        if e.kind in ("model.called", "tool.returned")
    ]
    assert calls == [
        ("model.called", 0),
        ("tool.returned", 1),
        ("model.called", 2),
        ("tool.returned", 3),
        ("model.called", 4),
    ]


def test_agent_gated_tool_waits_then_runs_once_approved(store: SQLiteStore) -> None:
    applied: list[int] = []
    tools = {
        "get_state": lambda: {"replicas": 1},
        "apply_manifest": lambda replicas: applied.append(replicas) or "ok",
    }
    first = run(
        _agent_graph(approval=True),
        {"goal": "3"},
        store=store,
        model=MockModel(_agent_script()),
        tools=tools,
    )
    assert first.status == "waiting"
    assert applied == []
    (gate,) = first.gates
    assert (gate.tool, gate.args, gate.reason) == ("apply_manifest", {"replicas": 3}, "approval")
    approve(store, first.run_id, gate.id, by="alice", args={"replicas": 3})
    done = resume(first.run_id, store=store, model=MockModel(_agent_script()[2:]), tools=tools)
    assert done.status == "completed"
    assert applied == [3]


def test_agent_rejected_tool_call_goes_back_to_the_agent(store: SQLiteStore) -> None:
    applied: list[int] = []
    tools = {"get_state": lambda: {}, "apply_manifest": lambda replicas: applied.append(replicas)}
    script = _agent_script()
    first = run(
        _agent_graph(approval=True),
        {"goal": "3"},
        store=store,
        model=MockModel(script),
        tools=tools,
    )
    reject(store, first.run_id, first.gates[0].id, by="bob", note="not today")
    seen: list[str] = []

    def final(req: Any, key: Any) -> str:
        seen.append(req.messages[-1].content)
        return "ok, left as is"

    done = resume(first.run_id, store=store, model=MockModel(final), tools=tools)
    assert done.output == "ok, left as is"
    assert applied == []
    assert seen == ['{"error":"Rejected: the call was rejected by bob: not today"}']


def test_gate_node_routes_by_the_decision(store: SQLiteStore) -> None:
    g = Graph(
        nodes=[
            Node(id="review", config=GateConfig(question="Ship {v}?"), inputs={"v": "$input.v"}),
            code("ship", "noop"),
            code("discard", "noop"),
        ],
        edges=[Edge("review", "ship", when="approve"), Edge("review", "discard", when="reject")],
    )
    first = run(g, {"v": 1}, store=store)
    assert first.status == "waiting"
    (gate,) = first.gates
    assert gate.question == "Ship 1?"
    reject(store, first.run_id, gate.id, by="carol")
    done = resume(first.run_id, store=store)
    log = kinds(store, done.run_id)
    assert done.status == "completed"
    assert ("node.skipped", "ship") in log
    assert ("node.completed", "discard") in log


def test_retries_with_backoff_then_fail(store: SQLiteStore) -> None:
    g = Graph(
        nodes=[code("b", "boom", retry=RetryPolicy(max_attempts=3, initial_delay_s=0.0))],
    )
    res = run(g, store=store)
    assert res.status == "failed"
    failed = [e.data for e in store.read(res.run_id) if e.kind == "node.failed"]
    assert [f.attempt for f in failed] == [1, 2, 3]  # type: ignore[attr-defined]
    assert [f.retry_at is not None for f in failed] == [True, True, False]  # type: ignore[attr-defined]
    started = [e.data.attempt for e in store.read(res.run_id) if isinstance(e.data, NodeStarted)]
    assert started == [1, 2, 3]


def test_exponential_backoff_waits_durably_between_attempts(store: SQLiteStore) -> None:
    """Each retry waits ``initial * multiplier ** (n - 1)`` (capped) on a durable timer:
    the run is ``waiting`` in between, a process that resumes it early runs nothing, and
    one that resumes it once the timer is due runs the next attempt. It replays."""
    policy = RetryPolicy(max_attempts=4, initial_delay_s=3600, multiplier=2, max_delay_s=10_000)
    g = Graph(nodes=[code("b", "boom", retry=policy)])
    res = run(g, store=store, run_id="r", clock=StepClock(step=1))

    def attempts() -> list[int]:
        return [e.data.attempt for e in store.read("r") if isinstance(e.data, NodeStarted)]

    for n, delay_s in enumerate((3600, 7200, 10_000), start=1):  # the third is capped
        assert (res.status, res.waiting_on) == ("waiting", ["backoff"])
        failed = [e for e in store.read("r") if isinstance(e.data, NodeFailed)][-1]
        assert (failed.data.attempt, failed.data.retry_at) == (n, failed.at + delay_s * 10**6)
        early = resume("r", store=store, clock=StepClock(start=failed.at + 10**6, step=1))
        assert (early.status, attempts()) == ("waiting", list(range(1, n + 1)))
        res = resume("r", store=store, clock=StepClock(start=failed.data.retry_at, step=1))
    assert res.status == "failed"
    assert attempts() == [1, 2, 3, 4]
    last = [e.data for e in store.read("r") if isinstance(e.data, NodeFailed)][-1]
    assert (last.attempt, last.retry_at) == (4, None)
    assert replay(store, "r").events == len(store.read("r"))


def test_long_backoff_leaves_the_run_waiting(store: SQLiteStore) -> None:
    g = Graph(nodes=[code("b", "boom", retry=RetryPolicy(max_attempts=2, initial_delay_s=3600))])
    res = run(g, store=store)
    assert res.status == "waiting"
    assert res.waiting_on == ["backoff"]


def test_a_wait_for_a_signal_suspends_rather_than_timing_out(store: SQLiteStore) -> None:
    g = Graph(nodes=[Node(id="w", config=WaitConfig(signal="never"), timeout_s=0.05)])
    res = run(g, store=store, options=EngineOptions(poll_interval_s=0.01))
    # A wait for a signal suspends rather than blocks, so the timeout does not fire:
    assert res.status == "waiting"
    assert res.waiting_on == ["signal:never"]


def test_durable_timer_waits_without_a_process(store: SQLiteStore) -> None:
    g = Graph(nodes=[Node(id="w", config=WaitConfig(seconds=3600))], output="w")
    clock = StepClock(start=1_000_000, step=1)
    first = run(g, store=store, clock=clock)
    assert first.status == "waiting"
    assert first.waiting_on == ["timer:w"]
    early = resume(first.run_id, store=store, clock=StepClock(start=2_000_000, step=1))
    assert early.status == "waiting"
    done = resume(
        first.run_id, store=store, clock=StepClock(start=1_000_000 + 3_600_000_001, step=1)
    )
    assert done.status == "completed"
    assert done.output["fired"] >= done.output["started"] + 3_600_000_000


def test_signal_wakes_a_waiting_run(store: SQLiteStore) -> None:
    g = Graph(nodes=[Node(id="w", config=WaitConfig(signal="go"))], output="w")
    first = run(g, store=store)
    assert first.status == "waiting"
    signal(store, first.run_id, "go", {"payload": 1})
    done = resume(first.run_id, store=store)
    assert done.output == {"payload": 1}


def test_budget_refuses_the_call_that_could_exceed_the_cap(store: SQLiteStore) -> None:
    g = Graph(
        nodes=[
            Node(
                id="m",
                config=MapConfig(
                    over="$input.items",
                    node=Node(
                        id="ask",
                        config=LlmConfig(
                            model="mock:m", prompt="x" * 396 + "{i}", params={"max_tokens": 100}
                        ),
                        inputs={"i": "$item"},
                    ),
                    max_concurrency=1,
                ),
            )
        ],
        output="m",
    )
    # Each call: 100 prompt tokens, worst case 100 + 100 = 200, actually 101 (1 token out).
    # Cap 350: call 1 (0 + 200) and call 2 (101 + 200) fit; call 3 (202 + 200) could not.
    model = MockModel(["a", "b", "c", "d"])
    res = run(g, {"items": [1, 2, 3, 4]}, store=store, model=model, budget=Budget(tokens=350))
    assert res.status == "waiting"
    assert res.waiting_on == ["budget"]
    assert model.calls == 2
    exceeded = [e.data for e in store.read(res.run_id) if e.kind == "budget.exceeded"]
    assert len(exceeded) == 1
    assert exceeded[0].spent == 202  # type: ignore[attr-defined]
    assert exceeded[0].requested == 200  # type: ignore[attr-defined]
    assert res.tokens == 202 <= 350


def test_budget_fail_mode_fails_the_run_without_the_call(store: SQLiteStore) -> None:
    g = Graph(nodes=[Node(id="ask", config=LlmConfig(model="mock:m", prompt="hello"))])
    model = MockModel(["x"], price_in=1e6, price_out=1e6)
    res = run(g, store=store, model=model, budget=Budget(usd=0.5, on_exceed="fail"))
    assert res.status == "failed"
    assert model.calls == 0
    assert res.error is not None
    assert res.error.startswith("BudgetStop:")


def test_timeout_fails_an_attempt_and_retries(store: SQLiteStore) -> None:
    g = Graph(
        nodes=[
            code("s", "slow", timeout_s=0.05, retry=RetryPolicy(max_attempts=2, initial_delay_s=0))
        ]
    )
    res = run(g, store=store)
    assert res.status == "failed"
    failed = [e.data for e in store.read(res.run_id) if e.kind == "node.failed"]
    assert [f.error.type for f in failed] == ["NodeTimeout", "NodeTimeout"]  # type: ignore[attr-defined]
    assert "timed out after 0.05s (attempt 2)" in failed[-1].error.message  # type: ignore[attr-defined]


def test_large_values_read_back_before_their_commit(store: SQLiteStore) -> None:
    # Inputs, outputs and the run output above the 4 KiB blob threshold, each read in
    # the same step it was produced (before its blob was committed).
    big = ["x" * 100] * 60
    g = Graph(
        nodes=[
            Node(
                id="m",
                config=MapConfig(
                    over="$input.items", node=code("d", "length", {"items": "$input.items"})
                ),
            ),
            code("again", "join", {"m": "m", "items": "$input.items"}),
        ],
        edges=[Edge("m", "again")],
        output="again",
    )
    res = run(g, {"items": big}, store=store)
    assert res.status == "completed", res.error
    assert res.output == {"m": [60] * 60, "items": big}


def test_map_items_outputs_in_the_blob_store_are_read_back(store: SQLiteStore) -> None:
    # A one-node map whose items return values kept in the blob store: the map's output
    # lists them in index order, live, in a replay, and from the log alone (a new engine
    # over the folded state, as in a process that resumes the run).
    from executor.api import fold_log, load_graph
    from executor.schedule import Engine
    from substrate.live import PythonTools

    g = Graph(
        nodes=[
            item_map(code("b", "arepeat", {"item": "$item"}), max_concurrency=2),
            code("j", "join", {"m": "m"}),
        ],
        edges=[Edge("m", "j")],
        output="j",
    )
    want = [f"{i}:" + "x" * 5000 for i in (3, 1, 2)]
    res = run(g, {"items": [3, 1, 2]}, store=store, run_id="r")
    assert res.status == "completed", res.error
    assert res.output == {"m": want}
    graph, log = load_graph(store, "r")
    assert replay(store, "r").events == len(log)

    engine = Engine(
        store,
        fold_log(graph, "r", log),
        model=MockModel(),
        tools=PythonTools({}),
        clock=StepClock(),
    )
    assert engine.value_of("m[1]/b") == want[1]
    assert engine.value_of("m") == want
    assert engine._composite_output("m") == want
    assert engine.value_of("m[9]/b") is None  # no such item


def test_each_call_is_committed_before_it_goes_out(tmp_path: Path) -> None:
    """When the provider is asked, ``model.requested`` is on disk (another handle reads
    it); when a tool runs, ``tool.requested`` is, written with an fsync (``durable``)."""
    store = SQLiteStore(tmp_path / "runs.db")
    seen: list[tuple[str, str | None]] = []

    def last_committed() -> tuple[str, str | None]:
        with SQLiteStore(store.path) as other:
            last = other.read("r")[-1]
        return last.kind, last.node

    class Watching(MockModel):
        async def complete(self, request: ModelRequest, key: CallKey) -> Any:
            seen.append(last_committed())
            return await super().complete(request, key)

    durable: list[tuple[list[str], bool]] = []
    append = store.append

    def watched_append(*args: Any, **kwargs: Any) -> Any:
        durable.append(([e.kind for e in args[2]], kwargs.get("durable", False)))
        return append(*args, **kwargs)

    store.append = watched_append  # type: ignore[method-assign]

    def apply(replicas: int) -> str:
        seen.append(last_committed())
        return "applied"

    g = Graph(
        nodes=[
            Node(id="ask", config=LlmConfig(model="mock:m", prompt="how many?")),
            Node(
                id="act", config=ToolConfig(tool="apply", args={"replicas": 3}), inputs={"a": "ask"}
            ),
        ],
        edges=[Edge("ask", "act")],
        tools=[ToolSpec(name="apply")],
        output="act",
    )
    try:
        res = run(g, store=store, run_id="r", model=Watching(["3"]), tools={"apply": apply})
    finally:
        store.close()
    assert res.status == "completed", res.error
    assert seen == [("model.requested", "ask"), ("tool.requested", "act")]
    (with_request,) = [d for kinds, d in durable if "tool.requested" in kinds]
    assert with_request is True
