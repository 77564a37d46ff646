"""GraphBuilder: nodes from calls, edges from data use, and graphs that run."""

from __future__ import annotations

from pydantic import BaseModel

from dsl import GraphBuilder
from executor import approve, resume, run
from kir import CodeConfig, Graph, ToolConfig
from substrate import MemoryStore, MockModel
from tests.dsl import crews


def edges(graph: Graph) -> list[tuple[str, str, str | None]]:
    return [(e.source, e.target, e.when) for e in graph.edges]


def test_edges_follow_data_use() -> None:
    graph = crews.builder_graph()
    assert edges(graph) == [
        ("search_web", "summarize", None),
        ("summarize", "count_words", None),
        ("count_words", "size", None),
        # shorten reads summarize too, but only its branch edge leads in: a direct edge
        # from summarize would always be taken and run it on either branch.
        ("size", "shorten", "long"),
    ]
    assert graph.output == "summarize"
    assert graph.inputs_schema == {
        "type": "object",
        "properties": {"topic": {}},
        "required": ["topic"],
    }


def test_tool_args_may_hold_refs() -> None:
    graph = crews.builder_graph()
    search = graph.nodes[0]
    assert search.config == ToolConfig(tool="search_web", args={"query": "{query}", "limit": 2})
    assert search.inputs == {"query": "$input.topic"}
    assert [t.name for t in graph.tools] == ["search_web"]


def test_code_nodes_name_their_function_by_import_path() -> None:
    graph = crews.builder_graph()
    assert graph.nodes[2].config == CodeConfig(function="tests.dsl.crews:count_words")


def test_derived_names_take_suffixes_in_call_order() -> None:
    b = GraphBuilder()
    text = b.input("text")
    first = b.code(crews.count_words, inputs={"text": text})
    second = b.code(crews.count_words, inputs={"text": text})
    assert (first.node, second.node) == ("count_words", "count_words_2")


def test_fields_of_refs_and_redundant_edges() -> None:
    b = GraphBuilder()
    a = b.llm("a", model="mock:m", prompt="Go", output_schema={"type": "object"})
    mid = b.llm("mid", model="mock:m", prompt="{x}", inputs={"x": a["title"]})
    b.llm("last", model="mock:m", prompt="{x} {y}", inputs={"x": a["body"][0], "y": mid})
    graph = b.build()
    assert edges(graph) == [("a", "mid", None), ("mid", "last", None)]
    assert graph.nodes[2].inputs == {"x": "a.body.0", "y": "mid"}
    assert graph.output is None
    assert graph.inputs_schema is None


class Brief(BaseModel):
    topic: str


def test_gate_branches_and_explicit_schema() -> None:
    b = GraphBuilder("approve_then_send", inputs_schema=Brief)
    draft = b.llm("draft", model="mock:m", prompt="Draft on {t}", inputs={"t": b.input("topic")})
    review = b.gate("review", question="Send this? {d}", inputs={"d": draft})
    sent = b.tool(
        crews.send_email,
        args={"to": "a@b.test", "subject": "s", "body": draft},
        after=review.when("approve"),
    )
    graph = b.build(output=sent)
    assert graph.inputs_schema == Brief.model_json_schema()
    assert edges(graph) == [
        ("draft", "review", None),
        ("review", "send_email", "approve"),
    ]


def test_builder_graph_runs() -> None:
    b = GraphBuilder("brief")
    topic = b.input("topic")
    hits = b.tool(crews.search_web, args={"query": topic, "limit": 2})
    words = b.code(crews.count_words, inputs={"text": topic})
    b.llm(
        "summarize", model="mock:m", prompt="{n} words: {hits}", inputs={"hits": hits, "n": words}
    )
    result = run(
        b.build(), {"topic": "neap tides"}, store=MemoryStore(), model=MockModel(), tools=b.tools()
    )
    assert result.status == "completed"
    assert result.output == {
        "summarize": '2 words: [{"title":"neap tides #0","url":"https://example.test/0"},'
        '{"title":"neap tides #1","url":"https://example.test/1"}]'
    }


def test_golden_builder_graph_runs_the_short_branch() -> None:
    store = MemoryStore()
    result = run(
        crews.builder_graph(),
        {"topic": "tides"},
        store=store,
        model=MockModel(["Tides: short."]),
        tools={"search_web": crews.search_web.bound()},
    )
    assert (result.status, result.output) == ("completed", "Tides: short.")


def test_gate_waits_then_sends() -> None:
    b = GraphBuilder()
    draft = b.llm("draft", model="mock:m", prompt="Draft")
    review = b.gate("review", question="Send? {d}", inputs={"d": draft})
    b.tool(
        crews.send_email,
        args={"to": "a@b.test", "subject": "s", "body": draft},
        after=review.when("approve"),
    )
    graph, store = b.build(), MemoryStore()
    first = run(graph, store=store, model=MockModel(["Hello"]), tools=b.tools())
    assert [g.id for g in first.gates] == ["review#0"]
    approve(store, first.run_id, "review#0", by="alice")
    second = resume(first.run_id, store=store, tools=b.tools())
    # send_email requires approval of its exact args: a second gate.
    (gate,) = second.gates
    assert (gate.tool, gate.args) == (
        "send_email",
        {"to": "a@b.test", "subject": "s", "body": "Hello"},
    )
    approve(store, first.run_id, gate.id, by="alice", args=gate.args)
    done = resume(first.run_id, store=store, tools=b.tools())
    assert (done.status, done.output) == ("completed", {"send_email": "sent 's' to a@b.test"})
