"""One test per validation rule: break one field of a valid graph, assert the exact message."""

from __future__ import annotations

from typing import Any

import pytest

from kir import (
    BindingError,
    CycleError,
    DuplicateId,
    ExpressionError,
    GraphInvalid,
    KirError,
    MapOverError,
    RouterLabelError,
    SchemaError,
    TemplateError,
    UnknownReference,
    UnknownSubgraph,
    UnknownTool,
    UnreachableNode,
    UnsupportedVersion,
    check_graph,
    compile_graph,
    parse_graph,
)

Data = dict[str, Any]


def errors_of(data: Data) -> list[KirError]:
    """Schema errors if the data does not parse, else the checker's errors."""
    try:
        graph = parse_graph(data)
    except GraphInvalid as exc:
        return list(exc.errors)
    return check_graph(graph)


def only(data: Data) -> KirError:
    errs = errors_of(data)
    assert len(errs) == 1, [str(e) for e in errs]
    return errs[0]


def test_valid_graph_has_no_errors(data: Data) -> None:
    assert errors_of(data) == []


def test_unsupported_version(data: Data) -> None:
    data["version"] = 2
    e = only(data)
    assert isinstance(e, UnsupportedVersion)
    assert str(e) == "at $.version: unsupported KIR version 2; this Foldline reads version 1"


def test_graph_needs_a_node(data: Data) -> None:
    data["subgraphs"][0]["nodes"] = []
    errs = errors_of(data)
    assert str(errs[0]) == "at $.subgraphs[0].nodes: a graph needs at least one node"


def test_duplicate_node_id(data: Data) -> None:
    data["nodes"][7]["id"] = "each"
    e = only(data)
    assert isinstance(e, DuplicateId)
    assert str(e) == "node 'each' at $.nodes[7].id: duplicate node id 'each' (first at $.nodes[4])"


def test_duplicate_tool(data: Data) -> None:
    data["tools"].append({"name": "search"})
    e = only(data)
    assert isinstance(e, DuplicateId)
    assert str(e) == "at $.tools[1].name: duplicate tool name 'search' (first at $.tools[0])"


def test_duplicate_edge(data: Data) -> None:
    data["edges"].append({"from": "summarize", "to": "fmt"})
    e = only(data)
    assert isinstance(e, DuplicateId)
    assert str(e) == "at $.edges[6]: duplicate edge summarize -> fmt (first at $.edges[5])"


def test_edge_to_unknown_node(data: Data) -> None:
    data["edges"][0]["to"] = "sumarize"
    errs = errors_of(data)
    assert isinstance(errs[0], UnknownReference)
    assert str(errs[0]) == (
        "at $.edges[0].to: edge to 'sumarize' is not a node of graph 'brief' "
        "(did you mean 'summarize'?)"
    )


def test_unreachable_node(data: Data) -> None:
    data["entry"] = ["research", "each"]
    e = only(data)
    assert isinstance(e, UnreachableNode)
    assert str(e) == (
        "node 'pause' at $.nodes[7]: unreachable: no path of edges leads here from the "
        "entry nodes (entry: research, each)"
    )


def test_entry_must_be_a_start(data: Data) -> None:
    data["entry"] = ["research", "each", "pause", "fmt"]
    e = only(data)
    assert str(e) == (
        "node 'fmt' at $.entry[3]: entry node 'fmt' has incoming edges; an entry must be "
        "where a run starts"
    )


def test_cycle_rejected(data: Data) -> None:
    data["edges"].append({"from": "fmt", "to": "research"})
    e = only(data)
    assert isinstance(e, CycleError)
    assert str(e) == (
        "node 'fmt' at $.edges[6]: cycle fmt -> research -> summarize -> fmt; KIR v1 rejects "
        "all cycles (loop inside an agent node, or use a map over a list)"
    )


def test_template_references_unbound_input(data: Data) -> None:
    data["nodes"][1]["config"]["prompt"] = "Summarize {hits} about {topic}"
    e = only(data)
    assert isinstance(e, TemplateError)
    assert str(e) == (
        "node 'summarize' at $.nodes[1].config.prompt: template references {topic}, which is "
        "not an input of the node (inputs: hits)"
    )


def test_template_syntax(data: Data) -> None:
    data["nodes"][3]["config"]["question"] = "Approve {text?"
    e = only(data)
    assert isinstance(e, TemplateError)
    assert str(e) == (
        "node 'review' at $.nodes[3].config.question: unmatched '{' at offset 8; "
        "write '{{' for a literal brace"
    )


def test_tool_args_are_templates(data: Data) -> None:
    data["nodes"][0]["config"]["args"] = {"q": ["{topic}", "{missing}"]}
    e = only(data)
    assert str(e) == (
        "node 'research' at $.nodes[0].config.args.q[1]: template references {missing}, "
        "which is not an input of the node (inputs: topic)"
    )


def test_when_not_a_router_label(data: Data) -> None:
    data["edges"][2]["when"] = "lnog"
    e = only(data)
    assert isinstance(e, RouterLabelError)
    assert str(e) == (
        "at $.edges[2].when: 'when' 'lnog' is not a label of router 'route' (labels: long, short)"
    )


def test_router_edge_needs_when(data: Data) -> None:
    del data["edges"][2]["when"]
    e = only(data)
    assert isinstance(e, RouterLabelError)
    assert str(e) == (
        "at $.edges[2]: edge leaving router 'route' needs a 'when' label (labels: long, short)"
    )


def test_when_only_on_router_and_gate_edges(data: Data) -> None:
    data["edges"][0]["when"] = "long"
    e = only(data)
    assert isinstance(e, RouterLabelError)
    assert str(e) == (
        "at $.edges[0].when: only edges leaving a router or a gate may have 'when'; "
        "'research' is a tool node"
    )


def _gated(answer_schema: dict[str, object] | None, when: str | None) -> list[str]:
    from kir import Edge, Graph, Node, check_graph
    from kir.schema import CodeConfig, GateConfig

    g = Graph(
        nodes=[
            Node(id="review", config=GateConfig(question="ok?", answer_schema=answer_schema)),
            Node(id="ship", config=CodeConfig(function="m:f")),
        ],
        edges=[Edge("review", "ship", when=when)],
    )
    return [str(e) for e in check_graph(g)]


def test_gate_edges_may_route_by_decision() -> None:
    assert _gated(None, "approve") == []
    assert _gated(None, "reject") == []
    assert _gated(None, None) == []  # taken whatever the decision
    assert _gated({"type": "object"}, "answer") == []


def test_gate_edge_when_must_be_a_decision() -> None:
    assert _gated(None, "answer") == [
        "at $.edges[0].when: 'when' 'answer' is not a decision of gate 'review' "
        "(decisions: approve, reject)"
    ]


def test_condition_reads_only_inputs(data: Data) -> None:
    data["nodes"][2]["config"]["condition"] = "'long' if len(txt) > 100 else 'short'"
    e = only(data)
    assert isinstance(e, ExpressionError)
    assert str(e) == (
        "node 'route' at $.nodes[2].config.condition: condition reads 'txt', which is not "
        "an input of the node (inputs: text)"
    )


def test_condition_is_safe(data: Data) -> None:
    data["nodes"][2]["config"]["condition"] = "__import__('os').system('true')"
    e = only(data)
    assert isinstance(e, ExpressionError)
    assert str(e) == "node 'route' at $.nodes[2].config.condition: only len(x) may be called"


def test_agent_tool_declared(data: Data) -> None:
    data["nodes"][5]["config"]["tools"] = ["search", "browse"]
    e = only(data)
    assert isinstance(e, UnknownTool)
    assert str(e) == (
        "node 'polish' at $.nodes[5].config.tools[1]: tool 'browse' is not declared in the "
        "graph or an enclosing one (declared: search)"
    )


def test_tool_node_tool_declared(data: Data) -> None:
    data["nodes"][0]["config"]["tool"] = "web_search"
    e = only(data)
    assert isinstance(e, UnknownTool)
    assert str(e) == (
        "node 'research' at $.nodes[0].config.tool: tool 'web_search' is not declared in the "
        "graph or an enclosing one (declared: search)"
    )


def test_subgraph_ref_resolves(data: Data) -> None:
    data["nodes"][6]["config"]["graph"] = "citation"
    e = only(data)
    assert isinstance(e, UnknownSubgraph)
    assert str(e) == (
        "node 'cite' at $.nodes[6].config.graph: subgraph 'citation' is not embedded in this "
        "graph or an enclosing one (embedded: citations)"
    )


def test_subgraph_required_inputs_bound(data: Data) -> None:
    data["nodes"][6]["inputs"] = {"body": "summarize"}
    e = only(data)
    assert isinstance(e, BindingError)
    assert str(e) == (
        "node 'cite' at $.nodes[6].inputs: subgraph 'citations' requires run input 'text'; "
        "bind it in inputs"
    )


def test_subgraph_recursion(data: Data) -> None:
    sub = data["subgraphs"][0]
    sub["nodes"].append(
        {
            "id": "again",
            "kind": "subgraph",
            "config": {"graph": "citations"},
            "inputs": {"text": "$input.text"},
        }
    )
    e = only(data)
    assert isinstance(e, CycleError)
    assert str(e) == (
        "at $.subgraphs[0].nodes[1].config.graph: subgraph recursion citations -> citations; "
        "a graph may not embed itself"
    )


def test_map_over_binds_a_list(data: Data) -> None:
    data["nodes"][4]["config"]["over"] = "$input.topic"
    e = only(data)
    assert isinstance(e, MapOverError)
    assert str(e) == (
        "node 'each' at $.nodes[4].config.over: over must bind a list, but '$input.topic' is "
        "declared as 'string'"
    )


def test_map_over_unknown_type_is_accepted(data: Data) -> None:
    # No output schema on 'summarize': the executor checks the type at run time.
    data["nodes"][4]["config"]["over"] = "summarize"
    data["edges"].append({"from": "summarize", "to": "each"})
    assert errors_of(data) == []


def test_binding_reads_an_ancestor(data: Data) -> None:
    data["nodes"][8]["inputs"] = {"s": "polish"}
    e = only(data)
    assert isinstance(e, BindingError)
    assert str(e) == (
        "node 'fmt' at $.nodes[8].inputs.s: binding reads node 'polish', which is not upstream "
        "of 'fmt': add edges so that a path leads from 'polish' to 'fmt'"
    )


def test_binding_to_unknown_node(data: Data) -> None:
    data["nodes"][8]["inputs"] = {"s": "sumarize.text"}
    e = only(data)
    assert isinstance(e, UnknownReference)
    assert str(e) == (
        "node 'fmt' at $.nodes[8].inputs.s: binding reads node 'sumarize', which is not in "
        "graph 'brief' (did you mean 'summarize'?)"
    )


def test_binding_syntax(data: Data) -> None:
    data["nodes"][8]["inputs"] = {"s": "summarize..text"}
    e = only(data)
    assert isinstance(e, BindingError)
    assert str(e) == (
        "node 'fmt' at $.nodes[8].inputs.s: bad binding 'summarize..text': expected '$input', "
        "'$input.field', 'node_id' or 'node_id.field' (fields: letters, digits, _)"
    )


def test_run_input_declared(data: Data) -> None:
    data["nodes"][0]["inputs"] = {"topic": "$input.subject"}
    e = only(data)
    assert isinstance(e, BindingError)
    assert str(e) == (
        "node 'research' at $.nodes[0].inputs.topic: run input 'subject' is not declared in "
        "the graph's inputs_schema (declared: docs, topic)"
    )


def test_item_only_in_map_body(data: Data) -> None:
    data["nodes"][0]["inputs"] = {"topic": "$item"}
    e = only(data)
    assert isinstance(e, BindingError)
    assert str(e) == (
        "node 'research' at $.nodes[0].inputs.topic: $item is only available to the inline "
        "body node of a map"
    )


def test_map_body_is_checked(data: Data) -> None:
    data["nodes"][4]["config"]["node"]["config"]["prompt"] = "Read {document}"
    e = only(data)
    assert str(e) == (
        "node 'read' at $.nodes[4].config.node.config.prompt: template references {document}, "
        "which is not an input of the node (inputs: doc)"
    )


def test_json_values_are_finite() -> None:
    from kir import Graph, LlmConfig, Node

    graph = Graph(
        nodes=[
            Node(
                id="a",
                config=LlmConfig(model="m:x", prompt="p", params={"t": [1.0, float("nan")]}),
            )
        ]
    )
    (e,) = check_graph(graph)
    assert isinstance(e, SchemaError)
    assert str(e) == "node 'a' at $.nodes[0].config.params.t[1]: expected a finite number, got nan"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("nodes", 1, "config", "prompt"),
            3,
            "node 'summarize' at $.nodes[1].config.prompt: expected a string, got 3",
        ),
        (
            ("nodes", 1, "config", "model"),
            "gpt-4o",
            "node 'summarize' at $.nodes[1].config.model: expected a model id 'provider:name', "
            "such as 'openai:gpt-4o-mini', got 'gpt-4o'",
        ),
        (
            ("nodes", 5, "config", "max_turns"),
            0,
            "node 'polish' at $.nodes[5].config.max_turns: expected a number greater than or "
            "equal to 1, got 0",
        ),
        (
            ("nodes", 1, "kind"),
            "lmm",
            "node 'summarize' at $.nodes[1]: unknown node kind 'lmm'; expected one of llm, "
            "agent, tool, code, gate, router, map, subgraph, wait",
        ),
        (
            ("nodes", 8, "config", "function"),
            "app.steps.fmt",
            "node 'fmt' at $.nodes[8].config.function: expected a callable "
            "'package.module:function', got 'app.steps.fmt'",
        ),
        (
            ("nodes", 7, "config", "signal"),
            "go",
            "node 'pause' at $.nodes[7].config: set exactly one of 'seconds' or 'signal'",
        ),
        (
            ("edges", 0, "from"),
            None,
            "at $.edges[0].from: expected a string, got null",
        ),
    ],
)
def test_schema_errors(data: Data, path: tuple[Any, ...], value: Any, message: str) -> None:
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    e = only(data)
    assert isinstance(e, SchemaError)
    assert str(e) == message


def test_missing_and_unexpected_fields(data: Data) -> None:
    del data["nodes"][1]["config"]["prompt"]
    data["nodes"][1]["config"]["promt"] = "x"
    assert [str(e) for e in errors_of(data)] == [
        "node 'summarize' at $.nodes[1].config.prompt: required field is missing",
        "node 'summarize' at $.nodes[1].config.promt: unexpected field 'promt' "
        "(allowed: kind, model, prompt, system, params, output_schema)",
    ]


def test_all_errors_reported_together(data: Data) -> None:
    data["nodes"][1]["config"]["prompt"] = "{nope}"
    data["edges"][2]["when"] = "lnog"
    data["nodes"][5]["config"]["tools"] = ["browse"]
    with pytest.raises(GraphInvalid) as info:
        compile_graph(parse_graph(data))
    assert str(info.value) == (
        "graph 'brief' is invalid (3 errors):\n"
        "  - at $.edges[2].when: 'when' 'lnog' is not a label of router 'route' "
        "(labels: long, short)\n"
        "  - node 'summarize' at $.nodes[1].config.prompt: template references {nope}, which "
        "is not an input of the node (inputs: hits)\n"
        "  - node 'polish' at $.nodes[5].config.tools[0]: tool 'browse' is not declared in "
        "the graph or an enclosing one (declared: search)"
    )
    assert info.value.path == "$.edges[2].when"
