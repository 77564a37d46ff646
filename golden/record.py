"""Record the golden corpus: every case below, driven by scripted ports, exported as a bundle.

Usage (from the repository root)::

    python golden/record.py --regen              # rewrite golden/<case>/ for every case
    python golden/record.py --out /tmp/g         # record elsewhere (no flag needed)
    python golden/record.py --regen --only gate-approve

Recording is deterministic, so re-recording produces no diff (a test checks this):
run ids and seeds are fixed, the clock is a step clock, the model is scripted, and
"latency" is a number of event-loop turns rather than time. Crashes are simulated by
a store that raises at a chosen append (what was not committed is lost, exactly as
when the process is killed); the next "process" is a fresh engine on the same store.
Other processes' inputs (approvals, signals, cancels, raised budgets) are appended
with the same API the CLI uses, between processes or from inside a tool while the
run is live.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `golden.fixtures` importable
    sys.path.insert(0, str(ROOT))


from executor import api, schedule  # noqa: E402
from executor.bundle import export_run  # noqa: E402
from executor.schedule import EngineOptions  # noqa: E402
from golden import fixtures  # noqa: E402
from kir import Edge, Graph, Node, ToolSpec  # noqa: E402
from kir.schema import (  # noqa: E402
    AgentConfig,
    CodeConfig,
    GateConfig,
    LlmConfig,
    MapConfig,
    RetryPolicy,
    RouterConfig,
    SubgraphConfig,
    ToolConfig,
    WaitConfig,
)
from substrate.codec import digest  # noqa: E402
from substrate.mock import MockModel, MockReply, StepClock  # noqa: E402
from substrate.ports import CallKey, ModelRequest, ModelResponse  # noqa: E402
from substrate.stores.memory import MemoryStore  # noqa: E402
from substrate.upcast import downcast_to_v0  # noqa: E402

GOLDEN = Path(__file__).resolve().parent
START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


class Crash(BaseException):
    """The simulated process died (raised instead of an append)."""


class CrashingStore(MemoryStore):
    """A memory store that can refuse the n-th append containing a kind, like a kill."""

    def __init__(self) -> None:
        super().__init__()
        self.crash: tuple[str, int] | None = None

    def append(self, run_id: str, expected_seq: int, events: Sequence[Any], **kw: Any) -> Any:
        if self.crash is not None and any(e.kind == self.crash[0] for e in events):
            kind, left = self.crash
            if left <= 1:
                self.crash = None
                raise Crash(f"killed before committing {kind}")
            self.crash = (kind, left - 1)
        return super().append(run_id, expected_seq, events, **kw)


class TurnModel(MockModel):
    """The scripted model, answering after a scripted number of event-loop turns."""

    def __init__(self, script: Any = None, turns: Callable[[CallKey], int] | None = None) -> None:
        super().__init__(script)
        self.turns = turns

    async def complete(self, request: ModelRequest, key: CallKey) -> ModelResponse:
        for _ in range(self.turns(key) if self.turns else 0):
            await asyncio.sleep(0)
        return await super().complete(request, key)


@dataclass
class Rec:
    """One case's world: a store, a step clock, and the run it records."""

    name: str
    store: CrashingStore = field(default_factory=CrashingStore)
    clock: StepClock = field(default_factory=lambda: StepClock(START_US, 1000))
    run_id: str = ""
    processes: int = 0

    def __post_init__(self) -> None:
        self.run_id = f"golden-{self.name}"

    def start(
        self,
        graph: Graph,
        inputs: Any = None,
        *,
        model: MockModel | None = None,
        tools: Mapping[str, Callable[..., Any]] | None = None,
        budget: api.Budget | None = None,
        crash: tuple[str, int] | None = None,
        concurrency: int = 4,
    ) -> None:
        self.processes += 1
        self.store.crash = crash
        with contextlib.suppress(Crash):
            api.run(
                graph,
                inputs,
                store=self.store,
                model=model or MockModel(),
                tools=tools,
                clock=self.clock,
                run_id=self.run_id,
                seed=digest(self.name.encode())[:32],
                budget=budget,
                options=EngineOptions(max_concurrency=concurrency, worker="recorder-1"),
            )
        self.store.crash = None

    def resume(
        self,
        *,
        model: MockModel | None = None,
        tools: Mapping[str, Callable[..., Any]] | None = None,
        crash: tuple[str, int] | None = None,
    ) -> None:
        self.processes += 1
        self.store.crash = crash
        with contextlib.suppress(Crash):
            api.resume(
                self.run_id,
                store=self.store,
                model=model or MockModel(),
                tools=tools,
                clock=self.clock,
                options=EngineOptions(worker=f"recorder-{self.processes}"),
            )
        self.store.crash = None

    def state(self) -> api.RunResult:
        graph, log = api.load_graph(self.store, self.run_id)
        return api.result_of(api.fold_log(graph, self.run_id, log), self.store)

    def gate(self) -> api.GateInfo:
        gates = self.state().gates
        assert len(gates) == 1, gates
        return gates[0]

    def approve(self, by: str = "alice") -> None:
        g = self.gate()
        api.approve(self.store, self.run_id, g.id, by=by, args=g.args, clock=self.clock)

    def reject(self, by: str = "bob", note: str = "", answer: Any = None) -> None:
        g = self.gate()
        api.reject(self.store, self.run_id, g.id, by=by, note=note, answer=answer, clock=self.clock)


# -- graph builders ------------------------------------------------------------------


def code(node_id: str, fn: str, inputs: dict[str, str] | None = None, **kw: Any) -> Node:
    return Node(
        id=node_id,
        config=CodeConfig(function=f"golden.fixtures:{fn}"),
        inputs=inputs or {},
        **kw,
    )


def llm(node_id: str, prompt: str, inputs: dict[str, str] | None = None, **kw: Any) -> Node:
    return Node(
        id=node_id, config=LlmConfig(model="mock:writer", prompt=prompt, **kw), inputs=inputs or {}
    )


def edges(*pairs: str) -> list[Edge]:
    out = []
    for pair in pairs:
        src, _, rest = pair.partition(">")
        dst, _, when = rest.partition(":")
        out.append(Edge(src.strip(), dst.strip(), when=when.strip() or None))
    return out


def tool_spec(name: str, **kw: Any) -> ToolSpec:
    return ToolSpec(name=name, description=f"{name} (golden fixture)", **kw)


def jitter(key: CallKey) -> int:
    """A scripted latency in loop turns, from the call key (stable across runs)."""
    return int(digest(f"{key.node}#{key.index}".encode())[:2], 16) % 7


OPS_TOOLS = {"read_cluster": fixtures.read_cluster, "apply_manifest": fixtures.apply_manifest}


def ops_graph() -> Graph:
    return Graph(
        nodes=[
            Node(
                id="ops",
                config=AgentConfig(
                    model="mock:ops",
                    instructions="Keep {app} at {replicas} replicas.",
                    tools=["read_cluster", "apply_manifest"],
                    max_turns=6,
                ),
                inputs={"app": "$input.app", "replicas": "$input.replicas"},
            )
        ],
        tools=[
            tool_spec("read_cluster", idempotent=True),
            tool_spec("apply_manifest", requires_approval=True),
        ],
        output="ops",
    )


def ops_model() -> MockModel:
    return MockModel(
        [
            MockReply(tool_calls=[("read_cluster", {"name": "web"})]),
            MockReply(tool_calls=[("apply_manifest", {"replicas": 3})]),
            "web is at 3 replicas",
        ],
        by_turn=True,
    )


# -- the cases -------------------------------------------------------------------------


def case_chain_code(r: Rec) -> None:
    nodes = [code("n0", "inc", {"x": "$input.x"})]
    nodes += [code(f"n{i}", "double" if i % 2 else "inc", {"x": f"n{i - 1}"}) for i in range(1, 6)]
    g = Graph(nodes=nodes, edges=edges(*(f"n{i - 1}>n{i}" for i in range(1, 6))), output="n5")
    r.start(g, {"x": 1})


def case_ports(r: Rec) -> None:
    r.start(Graph(nodes=[code("stamp", "stamp")], output="stamp"))


def case_llm_prompt(r: Rec) -> None:
    g = Graph(
        nodes=[
            llm(
                "brief",
                "Summarise {topic} in one line.",
                {"topic": "$input.topic"},
                system="You are terse.",
            )
        ],
        output="brief",
    )
    r.start(g, {"topic": "tides"}, model=MockModel(["Tides follow the moon."]))


def case_llm_blob(r: Rec) -> None:
    g = Graph(
        nodes=[
            llm("a", "Read this: {doc}", {"doc": "$input.doc"}),
            llm("b", "Again: {doc}", {"doc": "$input.doc"}),
        ],
    )
    doc = "".join(f"line {i}: the quick brown fox. " for i in range(250))
    r.start(g, {"doc": doc}, model=MockModel(["noted " * 900, "noted again"]))


def case_llm_schema(r: Rec) -> None:
    g = Graph(
        nodes=[
            Node(
                id="extract",
                config=LlmConfig(
                    model="mock:extract",
                    prompt="Extract the city from: {text}",
                    output_schema={
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                ),
                inputs={"text": "$input.text"},
            )
        ],
        output="extract",
    )
    r.start(g, {"text": "I live in Lyon."}, model=MockModel(['{"city": "Lyon"}']))


def case_tool_node(r: Rec) -> None:
    g = Graph(
        nodes=[
            Node(
                id="loud",
                config=ToolConfig(tool="shout", args={"text": "{word}"}),
                inputs={"word": "$input.word"},
            )
        ],
        tools=[tool_spec("shout", idempotent=True)],
        output="loud",
    )
    r.start(g, {"word": "hello"}, tools={"shout": fixtures.shout})


def case_router_expr(r: Rec) -> None:
    g = Graph(
        nodes=[
            Node(
                id="big",
                config=RouterConfig(labels=["true", "false"], condition="x > 2"),
                inputs={"x": "$input.x"},
            ),
            code("yes", "double", {"x": "$input.x"}),
            code("no", "inc", {"x": "$input.x"}),
            code("after_no", "inc", {"x": "no"}),
        ],
        edges=edges("big>yes:true", "big>no:false", "no>after_no"),
    )
    r.start(g, {"x": 5})


def case_router_model(r: Rec) -> None:
    g = Graph(
        nodes=[
            Node(
                id="triage",
                config=RouterConfig(
                    labels=["billing", "tech"], model="mock:triage", prompt="Ticket: {text}"
                ),
                inputs={"text": "$input.text"},
            ),
            llm("billing", "Answer the billing question: {text}", {"text": "$input.text"}),
            llm("tech", "Answer the tech question: {text}", {"text": "$input.text"}),
        ],
        edges=edges("triage>billing:billing", "triage>tech:tech"),
    )
    model = MockModel({"triage": ["tech"], "tech": ["Restart the router."]})
    r.start(g, {"text": "My wifi drops"}, model=model)


def _map_graph() -> Graph:
    return Graph(
        nodes=[
            Node(
                id="each",
                config=MapConfig(
                    over="$input.items",
                    node=Node(
                        id="body",
                        config=CodeConfig(function="golden.fixtures:work"),
                        inputs={"item": "$item", "index": "$index"},
                    ),
                    max_concurrency=3,
                ),
            ),
            code("sum", "total", {"parts": "each"}),
        ],
        edges=edges("each>sum"),
        output="sum",
    )


def case_map_jitter(r: Rec) -> None:
    r.start(_map_graph(), {"items": [4, 1, 3, 5, 2, 6, 9]})


def _poems(prompt: str, concurrency: int) -> Node:
    """A map of llm bodies over ``$input.topics``."""
    body = Node(
        id="poem", config=LlmConfig(model="mock:poet", prompt=prompt), inputs={"t": "$item"}
    )
    return Node(
        id="poems", config=MapConfig(over="$input.topics", node=body, max_concurrency=concurrency)
    )


def case_map_llm_jitter(r: Rec) -> None:
    g = Graph(
        nodes=[_poems("A haiku about {t}", 4)],
        output="poems",
    )
    r.start(
        g,
        {"topics": ["rain", "salt", "iron", "moss", "ash"]},
        model=TurnModel(None, jitter),
        concurrency=8,
    )


CHILD = Graph(
    id="child",
    nodes=[code("first", "inc", {"x": "$input.x"}), code("second", "double", {"x": "first"})],
    edges=edges("first>second"),
    output="second",
)


def case_subgraph(r: Rec) -> None:
    g = Graph(
        nodes=[
            code("pre", "inc", {"x": "$input.x"}),
            Node(id="sub", config=SubgraphConfig(graph="child"), inputs={"x": "pre"}),
            code("post", "inc", {"x": "sub"}),
        ],
        edges=edges("pre>sub", "sub>post"),
        subgraphs=[CHILD],
        output="post",
    )
    r.start(g, {"x": 2})


def case_map_subgraph(r: Rec) -> None:
    per_item = Graph(
        id="per_item",
        nodes=[
            code("first", "ainc", {"x": "$input.item"}),
            code("second", "adouble", {"x": "first"}),
        ],
        edges=edges("first>second"),
        output="second",
    )
    g = Graph(
        nodes=[
            Node(id="each", config=MapConfig(over="$input.xs", graph="per_item", max_concurrency=2))
        ],
        subgraphs=[per_item],
        output="each",
    )
    r.start(g, {"xs": [1, 2, 3]})


def case_agent_tools(r: Rec) -> None:
    g = Graph(
        nodes=[
            Node(
                id="researcher",
                config=AgentConfig(
                    model="mock:research", instructions="Research {q}", tools=["search"]
                ),
                inputs={"q": "$input.q"},
            )
        ],
        tools=[tool_spec("search", idempotent=True)],
        output="researcher",
    )
    model = MockModel(
        [
            MockReply(tool_calls=[("search", {"query": "tide tables"})]),
            MockReply(tool_calls=[("search", {"query": "moon"}), ("search", {"query": "sun"})]),
            "Tides come from the moon and the sun.",
        ]
    )
    r.start(g, {"q": "tides"}, model=model, tools={"search": fixtures.search})


def case_agent_approved(r: Rec) -> None:
    r.start(ops_graph(), {"app": "web", "replicas": 3}, model=ops_model(), tools=OPS_TOOLS)
    r.approve("alice")
    r.resume(model=ops_model(), tools=OPS_TOOLS)


def case_agent_rejected(r: Rec) -> None:
    model = MockModel(
        [
            MockReply(tool_calls=[("read_cluster", {"name": "web"})]),
            MockReply(tool_calls=[("apply_manifest", {"replicas": 3})]),
            "Not applied: the change was rejected.",
        ],
        by_turn=True,
    )
    r.start(ops_graph(), {"app": "web", "replicas": 3}, model=model, tools=OPS_TOOLS)
    r.reject("bob", note="freeze until Monday")
    r.resume(model=model, tools=OPS_TOOLS)


def _gate_graph(answer_schema: dict[str, Any] | None = None) -> Graph:
    return Graph(
        nodes=[
            code("draft", "inc", {"x": "$input.x"}),
            Node(
                id="review",
                config=GateConfig(question="Ship {x}?", answer_schema=answer_schema),
                inputs={"x": "draft"},
            ),
            code("ship", "double", {"x": "draft"}),
            code("discard", "inc", {"x": "draft"}),
        ],
        edges=edges("draft>review", "review>ship:approve", "review>discard:reject")
        if answer_schema is None
        else edges("draft>review", "review>ship:answer", "review>discard:reject"),
    )


def case_gate_approve(r: Rec) -> None:
    r.start(_gate_graph(), {"x": 1})
    r.approve("carol")
    r.resume()


def case_gate_reject(r: Rec) -> None:
    r.start(_gate_graph(), {"x": 1})
    r.reject("dave", note="not yet")
    r.resume()


def case_gate_answer(r: Rec) -> None:
    r.start(_gate_graph({"type": "object", "properties": {"n": {"type": "integer"}}}), {"x": 1})
    g = r.gate()
    api.answer(r.store, r.run_id, g.id, {"n": 7}, by="erin", clock=r.clock)
    r.resume()


def _charge_graph() -> Graph:
    return Graph(
        nodes=[Node(id="pay", config=ToolConfig(tool="charge", args={"amount": 5}))],
        tools=[tool_spec("charge")],
        output="pay",
    )


def case_unknown_outcome_happened(r: Rec) -> None:
    tools = {"charge": fixtures.charge}
    r.start(_charge_graph(), tools=tools, crash=("tool.returned", 1))
    r.resume(tools=tools)  # opens the unknown-outcome gate
    r.reject("ops", note="the charge went through", answer="charged 5 (confirmed)")
    r.resume(tools=tools)


def case_unknown_outcome_rerun(r: Rec) -> None:
    tools = {"charge": fixtures.charge}
    r.start(_charge_graph(), tools=tools, crash=("tool.returned", 1))
    r.resume(tools=tools)
    r.approve("ops")
    r.resume(tools=tools)


def case_unknown_outcome_rerun_crash(r: Rec) -> None:
    # The approved re-run dies too: the next process asks again (pay#0.outcome.2)
    # rather than charging a third time under the first approval.
    tools = {"charge": fixtures.charge}
    r.start(_charge_graph(), tools=tools, crash=("tool.returned", 1))
    r.resume(tools=tools)
    r.approve("ops")
    r.resume(tools=tools, crash=("tool.returned", 1))
    r.resume(tools=tools)
    assert r.gate().id == "pay#0.outcome.2"
    r.reject("ops", note="the second charge went through", answer="charged 5 (confirmed)")
    r.resume(tools=tools)


def case_engine_1_unknown_outcome_rerun(r: Rec) -> None:
    # Recorded under engine behaviour 1, which ran an approved call again without
    # requesting it again: a log of it must keep replaying with that behaviour.
    with _recording_flags({"engine": 1}):
        case_unknown_outcome_rerun(r)


@contextlib.contextmanager
def _recording_flags(flags: dict[str, Any]) -> Iterator[None]:
    """New runs record ``flags`` in their header (an older engine's behaviour)."""
    saved = dict(schedule.EXECUTOR_FLAGS)
    schedule.EXECUTOR_FLAGS.clear()
    schedule.EXECUTOR_FLAGS.update(flags)
    try:
        yield
    finally:
        schedule.EXECUTOR_FLAGS.clear()
        schedule.EXECUTOR_FLAGS.update(saved)


def _pipeline() -> Graph:
    return Graph(
        nodes=[
            llm("outline", "Outline an essay on {topic}", {"topic": "$input.topic"}),
            code("shouted", "shout", {"text": "outline"}),
            llm("essay", "Write from this outline: {o}", {"o": "shouted"}),
        ],
        edges=edges("outline>shouted", "shouted>essay"),
        output="essay",
    )


def _pipeline_model() -> MockModel:
    return MockModel({"outline": ["1. waves 2. moon"], "essay": ["An essay about tides."]})


def case_crash_resume(r: Rec) -> None:
    # Killed after the model answered, before the answer was committed: the call is
    # asked again by the next process (the log bills it once).
    r.start(_pipeline(), {"topic": "tides"}, model=_pipeline_model(), crash=("model.called", 1))
    r.resume(model=_pipeline_model())


def case_crash_resume_many(r: Rec) -> None:
    g = Graph(
        nodes=[
            _poems("A line on {t}", 3),
            code("count", "shout", {"text": "$input.label"}),
        ],
        edges=edges("poems>count"),
    )
    inputs = {"topics": ["a", "b", "c", "d", "e", "f"], "label": "done"}
    r.start(g, inputs, model=TurnModel(None, jitter), crash=("model.called", 2), concurrency=6)
    r.resume(model=TurnModel(None, jitter), crash=("model.called", 2))
    r.resume(model=TurnModel(None, jitter), crash=("node.completed", 2))
    r.resume(model=TurnModel(None, jitter))


def case_retry_backoff(r: Rec) -> None:
    g = Graph(
        nodes=[
            code(
                "try",
                "flaky",
                {"x": "$input.x"},
                retry=RetryPolicy(max_attempts=3, initial_delay_s=0.001),
            )
        ],
        output="try",
    )
    r.start(g, {"x": 4})


def _timer_graph(seconds: float) -> Graph:
    return Graph(
        nodes=[
            Node(id="pause", config=WaitConfig(seconds=seconds)),
            code("then", "inc", {"x": "$input.x"}),
        ],
        edges=edges("pause>then"),
        output="then",
    )


def case_timer_inline(r: Rec) -> None:
    r.start(_timer_graph(0.002), {"x": 1})


def case_timer_waiting(r: Rec) -> None:
    r.start(_timer_graph(3600), {"x": 1})
    r.clock._t += 3600 * 1_000_000  # an hour later, a scheduler resumes it
    r.resume()


def _signal_graph(before: list[Node], first: str | None) -> Graph:
    nodes = [
        *before,
        Node(id="hold", config=WaitConfig(signal="go")),
        code("then", "shout", {"text": "hold.word"}),
    ]
    pairs = ["hold>then"] + ([f"{first}>hold"] if first else [])
    return Graph(nodes=nodes, edges=edges(*pairs), tools=[tool_spec("notify")], output="then")


def case_signal_waiting(r: Rec) -> None:
    r.start(_signal_graph([], None))
    api.signal(r.store, r.run_id, "go", {"word": "onward"}, clock=r.clock)
    r.resume()


def case_signal_live(r: Rec) -> None:
    async def notify() -> str:  # another process signals while the run is live
        api.signal(r.store, r.run_id, "go", {"word": "live"}, clock=r.clock)
        return "sent"

    before = [Node(id="ping", config=ToolConfig(tool="notify"))]
    r.start(_signal_graph(before, "ping"), tools={"notify": notify})


def case_cancel_live(r: Rec) -> None:
    async def stop() -> str:
        api.cancel(r.store, r.run_id, by="oncall", reason="wrong input", clock=r.clock)
        return "asked"

    g = Graph(
        nodes=[
            Node(id="ask", config=ToolConfig(tool="stop")),
            code("never", "inc", {"x": "$input.x"}),
        ],
        edges=edges("ask>never"),
        tools=[tool_spec("stop")],
    )
    r.start(g, {"x": 1}, tools={"stop": stop})


def case_cancel_waiting(r: Rec) -> None:
    r.start(_gate_graph(), {"x": 1})
    api.cancel(r.store, r.run_id, by="oncall", reason="superseded", clock=r.clock)
    r.resume()


def _two_calls() -> Graph:
    return Graph(
        nodes=[
            llm("first", "One: {t}", {"t": "$input.t"}, params={"max_tokens": 50}),
            llm("second", "Two: {f}", {"f": "first"}, params={"max_tokens": 50}),
        ],
        edges=edges("first>second"),
        output="second",
    )


def case_budget_raised(r: Rec) -> None:
    model = MockModel({"first": ["one"], "second": ["two"]})
    r.start(_two_calls(), {"t": "x"}, model=model, budget=api.Budget(calls=1))
    api.raise_budget(r.store, r.run_id, calls=2, by="finance", clock=r.clock)
    r.resume(model=MockModel({"second": ["two"]}))


def case_budget_fail(r: Rec) -> None:
    model = MockModel({"first": ["one"]})
    r.start(_two_calls(), {"t": "x"}, model=model, budget=api.Budget(calls=1, on_exceed="fail"))


def case_node_timeout(r: Rec) -> None:
    g = Graph(
        nodes=[
            code(
                "slow",
                "linger",
                {"x": "$input.x"},
                timeout_s=0.01,
                retry=RetryPolicy(max_attempts=2, initial_delay_s=0),
            )
        ],
        output="slow",
    )
    r.start(g, {"x": 1})


def case_run_failed(r: Rec) -> None:
    g = Graph(
        nodes=[code("ok", "inc", {"x": "$input.x"}), code("bad", "explode", {"x": "ok"})],
        edges=edges("ok>bad"),
    )
    r.start(g, {"x": 1})


def case_fan_in(r: Rec) -> None:
    g = Graph(
        nodes=[
            llm("left", "Left on {t}", {"t": "$input.t"}),
            llm("right", "Right on {t}", {"t": "$input.t"}),
            Node(
                id="loud",
                config=ToolConfig(tool="shout", args={"text": "{t}"}),
                inputs={"t": "$input.t"},
            ),
            code("mid", "ainc", {"x": "$input.n"}),
            llm(
                "join",
                "Join {l} / {r} / {s} / {m}",
                {"l": "left", "r": "right", "s": "loud", "m": "mid"},
            ),
        ],
        edges=edges("left>join", "right>join", "loud>join", "mid>join"),
        tools=[tool_spec("shout", idempotent=True)],
        output="join",
    )
    r.start(
        g, {"t": "tides", "n": 1}, model=TurnModel(None, jitter), tools={"shout": fixtures.shout}
    )


def case_agent_approval_crash(r: Rec) -> None:
    # An agent loop with an approval, killed after the approved tool ran.
    r.start(ops_graph(), {"app": "web", "replicas": 3}, model=ops_model(), tools=OPS_TOOLS)
    r.approve("alice")
    r.resume(model=ops_model(), tools=OPS_TOOLS, crash=("model.called", 1))
    r.resume(model=ops_model(), tools=OPS_TOOLS)


def case_drift(r: Rec) -> None:
    g = Graph(
        nodes=[
            code("a", "inc", {"x": "$input.x"}),
            code("b", "drifted", {"x": "a"}),
            code("c", "inc", {"x": "b"}),
        ],
        edges=edges("a>b", "b>c"),
        output="c",
    )
    fixtures.DRIFT = 1  # the code as it was when the run was recorded
    try:
        r.start(g, {"x": 1})
    finally:
        fixtures.DRIFT = 2


def case_dsl_crew(r: Rec) -> None:
    """A DSL crew: a researcher with an approval-gated tool, a reviewed draft, an editor."""
    from dsl import Agent, Crew, Task, tool

    @tool(requires_approval=True)
    async def publish_note(title: str) -> str:
        """Publish a short note.

        Args:
            title: the note's title.
        """
        return await fixtures.apply_manifest(len(title))

    researcher = Agent(
        "Researcher", "Find facts about {topic}", model="mock:research", tools=[publish_note]
    )
    writer = Agent("Writer", "Explain {topic} simply", model="mock:writer")
    crew = Crew(
        [researcher, writer],
        [
            Task(
                "Collect three facts about {topic} and publish a note.",
                "Three facts",
                agent=researcher,
                name="facts",
            ),
            Task(
                "Write a short post about {topic}.",
                "Two paragraphs",
                agent=writer,
                name="draft",
                human_review=True,
            ),
        ],
        name="reviewed_research",
    )
    script = {
        "facts": [
            MockReply(tool_calls=[("publish_note", {"title": "Tides"})]),
            "1. the moon 2. the sun 3. twice a day",
        ],
        "draft": ["Tides rise and fall twice a day, pulled by the moon."],
    }
    graph, tools = crew.compile(), crew.tools()
    r.start(graph, {"topic": "tides"}, model=MockModel(script, by_turn=True), tools=tools)
    r.approve("alice")  # the tool call
    r.resume(model=MockModel(script, by_turn=True), tools=tools)
    r.approve("bob")  # the human review of the draft
    r.resume(model=MockModel(script, by_turn=True), tools=tools)
    assert r.state().status == "completed", r.state()


@dataclass(frozen=True)
class Case:
    name: str
    record: Callable[[Rec], None]
    description: str
    extra: dict[str, Any] = field(default_factory=dict)


CASES: list[Case] = [
    Case("chain-code", case_chain_code, "a chain of sync code nodes"),
    Case("ports", case_ports, "a code node reading the clock, an id and a random draw via ctx"),
    Case("llm-prompt", case_llm_prompt, "one llm call with a system prompt and a template"),
    Case("llm-blob", case_llm_blob, "prompts and an answer over 4 KiB, stored as blobs"),
    Case("llm-schema", case_llm_schema, "an llm node with an output schema"),
    Case("tool-node", case_tool_node, "a tool node with templated args"),
    Case("router-expr", case_router_expr, "router by expression; skips propagate"),
    Case("router-model", case_router_model, "router by a model's choice"),
    Case("map-jitter", case_map_jitter, "map of async code bodies finishing out of order"),
    Case("map-llm-jitter", case_map_llm_jitter, "map of llm bodies with jittered latency"),
    Case("subgraph", case_subgraph, "a subgraph node inside the same log"),
    Case("map-subgraph", case_map_subgraph, "a map whose body is a subgraph"),
    Case("fan-in", case_fan_in, "concurrent llm, tool and code branches joined"),
    Case("agent-tools", case_agent_tools, "an agent loop with parallel tool calls"),
    Case("agent-approved", case_agent_approved, "agent tool approval, approved, resumed"),
    Case("agent-rejected", case_agent_rejected, "agent tool approval, rejected, resumed"),
    Case(
        "agent-approval-crash", case_agent_approval_crash, "approved agent killed mid-loop, resumed"
    ),
    Case("gate-approve", case_gate_approve, "gate node approved; routes by decision"),
    Case("gate-reject", case_gate_reject, "gate node rejected; routes by decision"),
    Case("gate-answer", case_gate_answer, "gate with an answer schema, answered"),
    Case(
        "unknown-outcome-happened",
        case_unknown_outcome_happened,
        "killed during a non-idempotent tool; human says it happened",
    ),
    Case(
        "unknown-outcome-rerun",
        case_unknown_outcome_rerun,
        "killed during a non-idempotent tool; human says run it again",
    ),
    Case(
        "unknown-outcome-rerun-crash",
        case_unknown_outcome_rerun_crash,
        "the approved re-run of a non-idempotent tool killed too; asked again; it happened",
    ),
    Case(
        "engine-1-unknown-outcome-rerun",
        case_engine_1_unknown_outcome_rerun,
        "unknown-outcome-rerun recorded under engine behaviour 1 (no second request)",
    ),
    Case("crash-resume", case_crash_resume, "killed after a model answered; resumed"),
    Case("crash-resume-many", case_crash_resume_many, "fan-out killed three times; resumed"),
    Case("retry-backoff", case_retry_backoff, "a failing attempt retried after a durable backoff"),
    Case("timer-inline", case_timer_inline, "a short durable timer slept through"),
    Case("timer-waiting", case_timer_waiting, "a long timer: waiting, resumed an hour later"),
    Case("signal-waiting", case_signal_waiting, "waits for a signal; signalled; resumed"),
    Case("signal-live", case_signal_live, "a signal arrives from another process mid-run"),
    Case("cancel-live", case_cancel_live, "cancel requested by another process mid-run"),
    Case("cancel-waiting", case_cancel_waiting, "a waiting run cancelled, then resumed"),
    Case("budget-raised", case_budget_raised, "budget exceeded (wait), raised, resumed"),
    Case("budget-fail", case_budget_fail, "budget exceeded with on_exceed=fail"),
    Case("node-timeout", case_node_timeout, "a node times out twice; the run fails"),
    Case("run-failed", case_run_failed, "a code node raises; the run fails"),
    Case("dsl-crew", case_dsl_crew, "a DSL crew: approval-gated tool, human review, approved"),
    Case(
        "drift-must-fail",
        case_drift,
        "code changed after recording: replay must fail at node b's output",
        {"expect": "nondeterminism", "fail_node": "b", "fail_path": "$.data.output.value"},
    ),
]


def record_case(case: Case, out: Path) -> Path:
    r = Rec(case.name)
    case.record(r)
    meta: dict[str, Any] = {
        "name": case.name,
        "description": case.description,
        "expect": "identical",
        "processes": r.processes,
    }
    meta.update(case.extra)
    if meta.get("expect") == "nondeterminism":
        log = r.store.read(r.run_id)
        seq = next(e.seq for e in log if e.node == meta["fail_node"] and e.kind == "node.completed")
        meta["fail_seq"] = seq
    return export_run(r.store, r.run_id, out / case.name, case=meta, overwrite=True)


def record_v0(out: Path) -> Path:
    """The synthetic old-schema case: ``llm-prompt`` as schema 0 wrote it."""
    r = Rec("schema-v0")
    case_llm_prompt(r)
    path = export_run(
        r.store,
        r.run_id,
        out / "schema-v0",
        case={
            "name": "schema-v0",
            "description": "recorded under event schema 0 (upcast on import)",
            "expect": "identical",
            "schema_version": 0,
            "processes": r.processes,
        },
        overwrite=True,
    )
    events = path / "events.jsonl"
    lines = events.read_bytes().splitlines()
    events.write_bytes(b"".join(line + b"\n" for line in downcast_to_v0(lines)))
    return path


def record(out: Path, only: Sequence[str] = ()) -> list[Path]:
    paths = []
    for case in CASES:
        if not only or case.name in only:
            paths.append(record_case(case, out))
    if not only or "schema-v0" in only:
        paths.append(record_v0(out))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--regen",
        action="store_true",
        help="rewrite the corpus in golden/ (review the diff afterwards)",
    )
    parser.add_argument("--out", type=Path, default=GOLDEN, help="where to write the cases")
    parser.add_argument("--only", nargs="*", default=[], help="record only these cases")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    if out == GOLDEN and not args.regen:
        print(
            "error: rewriting golden/ needs --regen (or record elsewhere with --out DIR)",
            file=sys.stderr,
        )
        return 2
    known = {c.name for c in CASES} | {"schema-v0"}
    unknown = sorted(set(args.only) - known)
    if unknown:
        print(f"error: unknown case(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    for path in record(out, args.only):
        print(f"recorded {path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
