"""Compilation: normalization passes, the graph hash, and the executor's lookups."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kir import (
    DEFAULT_PASSES,
    CompiledGraph,
    Edge,
    Graph,
    GraphInvalid,
    LlmConfig,
    Node,
    check_graph,
    compile_graph,
    load_compiled,
    normalize,
    parse_graph,
)
from substrate.codec import digest, encode


@pytest.fixture
def compiled(data: dict[str, Any]) -> CompiledGraph:
    return compile_graph(parse_graph(data))


def test_order_is_topological_with_ties_by_id(compiled: CompiledGraph) -> None:
    assert compiled.order == (
        "each", "pause", "research", "summarize", "fmt", "route", "cite", "polish", "review",
    )  # fmt: skip
    assert compiled.index["route"] == 5
    assert compiled.entry == ("each", "pause", "research")


def test_neighbours_and_edges(compiled: CompiledGraph) -> None:
    assert compiled.successors["summarize"] == ("fmt", "route")
    assert compiled.successors["route"] == ("cite", "polish", "review")
    assert compiled.predecessors["summarize"] == ("research",)
    assert compiled.predecessors["research"] == ()
    assert [(e.target, e.when) for e in compiled.out_edges["route"]] == [
        ("cite", "short"),
        ("polish", "short"),
        ("review", "long"),
    ]
    assert compiled.in_edges["review"][0].when == "long"
    assert compiled.node("fmt").kind == "code"
    assert compiled.bindings["review"]["text"].node == "summarize"


def test_tools_and_subgraphs(compiled: CompiledGraph) -> None:
    assert list(compiled.tools) == ["search"]
    sub = compiled.subgraphs["citations"]
    assert sub.order == ("find",)
    assert sub.graph_hash != compiled.graph_hash


def test_compiled_graph_is_immutable(compiled: CompiledGraph) -> None:
    with pytest.raises(AttributeError):
        compiled.order = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        compiled.index["x"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        compiled.successors["route"] = ()  # type: ignore[index]


def test_hash_ignores_list_and_key_order(data: dict[str, Any]) -> None:
    h = compile_graph(parse_graph(data)).graph_hash
    other = copy.deepcopy(data)
    other["nodes"].reverse()
    other["edges"].reverse()
    other["nodes"][0] = dict(reversed(list(other["nodes"][0].items())))
    other["nodes"][6]["config"]["labels"] = ["short", "long"]  # route, now at index 6
    assert compile_graph(parse_graph(other)).graph_hash == h


def test_hash_ignores_spelled_out_defaults(data: dict[str, Any]) -> None:
    h = compile_graph(parse_graph(data)).graph_hash
    data["version"] = 1
    data["nodes"][1]["retry"] = {"max_attempts": 1}
    data["nodes"][1]["config"]["system"] = None
    data["entry"] = ["research", "pause", "each"]
    assert compile_graph(parse_graph(data)).graph_hash == h


def test_hash_changes_with_meaning(data: dict[str, Any]) -> None:
    h = compile_graph(parse_graph(data)).graph_hash
    data["nodes"][1]["config"]["prompt"] = "Summarize {hits}!"
    assert compile_graph(parse_graph(data)).graph_hash != h


def test_hash_is_stable_across_releases(data: dict[str, Any]) -> None:
    # A change here means every recorded run's graph hash changes: bump KIR_VERSION.
    assert compile_graph(parse_graph(data)).graph_hash == GOLDEN_HASH


GOLDEN_HASH = "df813f7b132f3dd4f8f812cc3a37e0d35f08f0b0f5017baa481b68f27e421df9"


def test_invalid_graph_is_refused(data: dict[str, Any]) -> None:
    data["edges"][0]["to"] = "nowhere"
    with pytest.raises(GraphInvalid) as info:
        compile_graph(parse_graph(data))
    assert info.value.errors[0].path == "$.edges[0].to"


def test_passes_keep_graphs_valid_and_are_idempotent(data: dict[str, Any]) -> None:
    g = parse_graph(data)
    once = normalize(g)
    assert check_graph(once) == []
    assert normalize(once) == once
    for p in DEFAULT_PASSES:
        assert check_graph(p(g)) == []
        assert p.name


def test_diamond_with_two_router_labels_to_one_target() -> None:
    from kir import RouterConfig

    g = Graph(
        nodes=[
            Node(id="r", config=RouterConfig(labels=["a", "b"], condition="'a'")),
            Node(id="x", config=LlmConfig(model="openai:x", prompt="p")),
        ],
        edges=[Edge("r", "x", when="a"), Edge("r", "x", when="b")],
    )
    c = compile_graph(g)
    assert c.successors["r"] == ("x",)
    assert len(c.out_edges["r"]) == 2
    assert c.predecessors["x"] == ("r",)


def test_compile_restores_the_garbage_collector(data: dict[str, Any]) -> None:
    import gc

    assert gc.isenabled()
    compile_graph(parse_graph(data))
    assert gc.isenabled()
    data["edges"][0]["to"] = "nowhere"
    with pytest.raises(GraphInvalid):
        compile_graph(parse_graph(data))
    assert gc.isenabled()
    gc.disable()
    try:
        compile_graph(
            parse_graph({"nodes": [{"id": "a", "kind": "wait", "config": {"seconds": 1}}]})
        )
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_gc_pause_is_safe_across_threads() -> None:
    import gc
    import threading

    from substrate.gcpause import gc_paused

    assert gc.isenabled()
    inside = threading.Event()
    release = threading.Event()

    def other() -> None:
        with gc_paused():
            inside.set()
            release.wait(5)

    t = threading.Thread(target=other)
    with gc_paused():
        t.start()
        inside.wait(5)
    # The first pause ended while the other thread's is still running: still paused.
    assert not gc.isenabled()
    release.set()
    t.join()
    assert gc.isenabled()


# ---- load_compiled: a stored graph parsed and frozen without a second check ------------------


def assert_same_compiled(loaded: CompiledGraph, compiled: CompiledGraph) -> None:
    """Every field of the two compiled graphs is equal, embedded graphs included."""
    assert loaded.graph_hash == compiled.graph_hash
    assert loaded.canonical == compiled.canonical
    assert loaded.graph == compiled.graph
    for name in ("order", "entry"):
        assert getattr(loaded, name) == getattr(compiled, name), name
    for name in (
        "index", "nodes", "predecessors", "successors", "in_edges", "out_edges", "bindings",
        "tools",
    ):  # fmt: skip
        assert dict(getattr(loaded, name)) == dict(getattr(compiled, name)), name
    assert list(loaded.subgraphs) == list(compiled.subgraphs)
    for key, sub in compiled.subgraphs.items():
        assert_same_compiled(loaded.subgraphs[key], sub)


def test_load_compiled_equals_a_compile(compiled: CompiledGraph) -> None:
    assert compiled.subgraphs  # the cases that nest
    assert any(n.kind == "map" for n in compiled)
    assert_same_compiled(load_compiled(compiled.canonical), compiled)


def test_load_compiled_takes_the_bytes_as_given(compiled: CompiledGraph) -> None:
    loaded = load_compiled(compiled.canonical)
    assert loaded.canonical is compiled.canonical  # not encoded again
    assert loaded.graph_hash == digest(compiled.canonical)


def test_load_compiled_compiles_in_full_what_does_not_freeze(data: dict[str, Any]) -> None:
    data["edges"].append({"from": "fmt", "to": "nowhere"})
    with pytest.raises(GraphInvalid, match="nowhere"):
        load_compiled(encode(data))


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[1, 2]"])
def test_load_compiled_refuses_bytes_that_are_not_a_graph(body: bytes) -> None:
    with pytest.raises(GraphInvalid):
        load_compiled(body)
