"""The schema: Python authoring, JSON round trips, and pydantic errors turned into KirErrors."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from kir import (
    KIR_VERSION,
    Edge,
    Graph,
    GraphInvalid,
    LlmConfig,
    Node,
    RetryPolicy,
    RouterConfig,
    SchemaError,
    ToolSpec,
    WaitConfig,
    parse_graph,
    parse_node,
)


def test_python_authoring_reads_well() -> None:
    g = Graph(
        nodes=[
            Node(id="a", config=LlmConfig(model="openai:gpt-4o", prompt="hi")),
            Node(id="b", config=WaitConfig(seconds=2), retry=RetryPolicy(max_attempts=3)),
        ],
        edges=[Edge("a", "b")],
        tools=[ToolSpec(name="search", requires_approval=True)],
    )
    assert g.version == KIR_VERSION
    assert g.id == "main"
    assert [n.kind for n in g.nodes] == ["llm", "wait"]
    assert g.edges[0].source == "a"
    assert g.edges[0] == Edge(source="a", target="b")


def test_json_round_trip(data: dict[str, Any]) -> None:
    g = parse_graph(data)
    text = g.to_json()
    assert Graph.from_json(text) == g
    assert Graph.from_json(text.encode()) == g
    # The file form writes kind on the node and from/to on edges.
    out = g.to_data()
    assert out["nodes"][0]["kind"] == "tool"
    assert "kind" not in out["nodes"][0]["config"]
    assert out["nodes"][4]["config"]["node"]["kind"] == "llm"
    assert out["edges"][0]["from"] == "research"


def test_config_may_carry_its_kind_too(data: dict[str, Any]) -> None:
    data["nodes"][1]["config"]["kind"] = "llm"
    assert parse_graph(data).nodes[1].kind == "llm"
    del data["nodes"][1]["kind"]
    assert parse_graph(data).nodes[1].kind == "llm"


def test_kind_and_config_must_agree(data: dict[str, Any]) -> None:
    data["nodes"][1]["config"]["kind"] = "agent"
    with pytest.raises(GraphInvalid) as info:
        parse_graph(data)
    assert str(info.value.errors[0]) == (
        "node 'summarize' at $.nodes[1]: node kind 'llm' disagrees with config kind 'agent'"
    )


def test_models_are_frozen() -> None:
    n = Node(id="a", config=LlmConfig(model="openai:x", prompt="p"))
    with pytest.raises(Exception, match="frozen"):
        n.id = "b"  # type: ignore[misc]


def test_python_construction_errors_are_kir_errors() -> None:
    with pytest.raises(GraphInvalid) as info:
        Graph(nodes=[{"id": "a", "kind": "llm", "config": {"model": "openai:x"}}])  # type: ignore[list-item]
    assert str(info.value) == (
        "graph is invalid (1 error):\n"
        "  - node 'a' at $.nodes[0].config.prompt: required field is missing"
    )
    (e,) = info.value.errors
    assert isinstance(e, SchemaError)
    assert (e.path, e.node) == ("$.nodes[0].config.prompt", "a")


def test_standalone_model_errors_name_the_model() -> None:
    with pytest.raises(GraphInvalid) as info:
        RouterConfig(labels=["a"], condition="'a'", default="b")
    assert str(info.value) == (
        "RouterConfig is invalid (1 error):\n  - at $: default 'b' is not one of the labels (a)"
    )
    with pytest.raises(GraphInvalid) as node_info:
        Node(id="x y", config=LlmConfig(model="openai:x", prompt="p"))
    assert str(node_info.value.errors[0]) == (
        "node 'x y' at $.id: expected an id (letters, digits, _ and -, not starting with a "
        "digit or -), got 'x y'"
    )


def test_parse_node_paths_are_relative() -> None:
    with pytest.raises(GraphInvalid) as info:
        parse_node({"id": "n", "kind": "wait", "config": {}})
    assert (
        str(info.value.errors[0])
        == "node 'n' at $.config: set exactly one of 'seconds' or 'signal'"
    )


def test_bad_json_is_a_kir_error() -> None:
    with pytest.raises(GraphInvalid) as info:
        Graph.from_json("{nodes: []")
    assert info.value.path == "$"
    assert str(info.value.errors[0]).startswith("at $: invalid JSON: ")


def test_not_an_object() -> None:
    with pytest.raises(GraphInvalid) as info:
        parse_graph([1, 2])
    assert str(info.value.errors[0]) == "at $: expected an object, got an array"


def test_unknown_node_kind_is_reported_once(data: dict[str, Any]) -> None:
    data["nodes"][0]["kind"] = "tooling"
    with pytest.raises(GraphInvalid) as info:
        parse_graph(data)
    assert len(info.value.errors) == 1


def test_errors_pickle() -> None:
    with pytest.raises(GraphInvalid) as info:
        parse_graph({"nodes": 3})
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value)
    assert again.errors[0].path == "$.nodes"


def test_defaults_are_filled() -> None:
    n = parse_node({"id": "a", "kind": "agent", "config": {"model": "a:b", "instructions": "x"}})
    assert n.retry == RetryPolicy()
    assert n.config.max_turns == 10  # type: ignore[union-attr]


def test_parsing_a_graph_collects_no_more_often_for_a_larger_graph() -> None:
    """A graph's JSON and its models are many small objects and no garbage cycles: the
    cycle collector is paused while they are made (it was a third of a 10k-node parse).
    What remains is its pass over the new objects once the pause ends: the number of
    collections does not grow with the graph, and the collector is back on after."""
    import gc

    from kir.compile import compile_graph

    def collections(n: int, canonical: bool) -> int:
        nodes = [
            Node(id=f"n{i}", config=LlmConfig(model="openai:gpt-4o", prompt="hi")) for i in range(n)
        ]
        g = Graph(nodes=nodes, edges=[Edge(f"n{i}", f"n{i + 1}") for i in range(n - 1)])
        text = compile_graph(g).canonical if canonical else g.to_json().encode()
        runs: list[int] = []

        def count(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                runs.append(info["generation"])

        gc.collect()
        gc.callbacks.append(count)
        try:
            parsed = Graph.from_json(text)
        finally:
            gc.callbacks.remove(count)
        assert len(parsed.nodes) == n
        return len(runs)

    for canonical in (False, True):
        small, large = collections(500, canonical), collections(4000, canonical)
        assert small == large <= 1, (canonical, small, large)
    assert gc.isenabled()
