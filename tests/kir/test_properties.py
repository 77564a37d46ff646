"""Property tests: random valid graphs compile and hash stably; broken graphs fail cleanly."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kir import Graph, KirError, compile_graph, load_compiled, parse_graph
from tests.kir.test_compile import assert_same_compiled

Data = dict[str, Any]

_KINDS = ("llm", "tool", "code", "gate", "wait", "router", "agent")


def _config(kind: str, names: list[str], i: int) -> dict[str, Any]:
    refs = " ".join(f"{{{n}}}" for n in names)
    if kind == "llm":
        return {"model": "openai:gpt-4o-mini", "prompt": f"Step {i} {refs}", "params": {"t": 0.5}}
    if kind == "tool":
        return {"tool": "search", "args": {"q": refs, "k": i}}
    if kind == "code":
        return {"function": f"app.steps:s{i}"}
    if kind == "gate":
        return {"question": f"ok {refs}?"}
    if kind == "wait":
        return {"signal": f"sig{i}"}
    if kind == "router":
        return {"labels": ["b", "a"], "condition": "'a' if x0 else 'b'" if "x0" in names else "'a'"}
    return {"model": "anthropic:claude", "instructions": f"do {refs}", "tools": ["search"]}


@st.composite
def valid_graphs(draw: st.DrawFn, min_nodes: int = 1, max_nodes: int = 40) -> Data:
    """JSON data of a valid graph: a random DAG over random kinds, with bindings on edges."""
    n = draw(st.integers(min_nodes, max_nodes))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)  # one draw for the structure keeps big graphs fast to generate
    ids = [f"n{k}" for k in rng.sample(range(10 * n), n)]
    nodes: list[Data] = []
    edges: list[Data] = []
    kinds: list[str] = []
    for i, nid in enumerate(ids):
        parents = sorted({rng.randrange(i) for _ in range(rng.randint(0, 3))}) if i else []
        kind = rng.choice(_KINDS)
        kinds.append(kind)
        inputs = {f"x{k}": ids[p] + rng.choice(["", ".text"]) for k, p in enumerate(parents)}
        if rng.random() < 0.2:
            inputs["topic"] = "$input.topic"
        nodes.append(
            {"id": nid, "kind": kind, "config": _config(kind, sorted(inputs), i), "inputs": inputs}
        )
        for p in parents:
            edge: Data = {"from": ids[p], "to": nid}
            if kinds[p] == "router":
                edge["when"] = rng.choice(["a", "b"])
            edges.append(edge)
    # Routers whose edges all got one label still have a valid graph; fine.
    return {
        "id": "g",
        "inputs_schema": {"type": "object", "properties": {"topic": {"type": "string"}}},
        "tools": [{"name": "search", "description": "web"}],
        "nodes": nodes,
        "edges": edges,
    }


def _shuffled(data: Data, rnd: random.Random) -> Data:
    """The same graph with node, edge and tool lists and every dict's keys shuffled."""

    def keys(v: Any) -> Any:
        if isinstance(v, dict):
            items = list(v.items())
            rnd.shuffle(items)
            return {k: keys(x) for k, x in items}
        if isinstance(v, list):
            return [keys(x) for x in v]
        return v

    out = keys(copy.deepcopy(data))
    for key in ("nodes", "edges", "tools"):
        rnd.shuffle(out[key])
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_graphs(), st.integers(0, 2**32 - 1))
def test_valid_graphs_compile_and_hash_is_order_invariant(data: Data, seed: int) -> None:
    compiled = compile_graph(parse_graph(data))
    again = compile_graph(parse_graph(_shuffled(data, random.Random(seed))))
    assert again.graph_hash == compiled.graph_hash
    assert again.order == compiled.order
    # Through JSON text too: to_json -> from_json is the identity on the compiled form.
    assert compile_graph(type(compiled.graph).from_json(compiled.graph.to_json())) == compiled
    # The order is topological, and ties are broken by id.
    for u in compiled.order:
        for v in compiled.successors[u]:
            assert compiled.index[u] < compiled.index[v]


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_graphs(min_nodes=400, max_nodes=500), st.integers(0, 2**32 - 1))
def test_large_graphs_compile_and_hash_is_order_invariant(data: Data, seed: int) -> None:
    compiled = compile_graph(parse_graph(data))
    assert len(compiled) == len(data["nodes"])
    assert (
        compile_graph(parse_graph(_shuffled(data, random.Random(seed)))).graph_hash
        == compiled.graph_hash
    )


# ---- mutations of valid graph JSON ---------------------------------------------------------

_BASE: Data = {
    "id": "g",
    "inputs_schema": {
        "type": "object",
        "properties": {"topic": {"type": "string"}, "docs": {"type": "array"}},
    },
    "tools": [{"name": "search", "args_schema": {"type": "object"}, "timeout_s": 3}],
    "nodes": [
        {
            "id": "a",
            "kind": "tool",
            "config": {"tool": "search", "args": {"q": "{t}"}},
            "inputs": {"t": "$input.topic"},
            "retry": {"max_attempts": 3},
            "timeout_s": 10,
        },
        {
            "id": "b",
            "kind": "llm",
            "config": {"model": "openai:x", "prompt": "S {h}", "output_schema": {"type": "array"}},
            "inputs": {"h": "a"},
        },
        {
            "id": "r",
            "kind": "router",
            "config": {"labels": ["x", "y"], "condition": "len(h) > 1 and 'x' or 'y'"},
            "inputs": {"h": "b"},
        },
        {
            "id": "m",
            "kind": "map",
            "config": {
                "over": "b",
                "node": {
                    "id": "body",
                    "kind": "llm",
                    "config": {"model": "openai:x", "prompt": "{i}"},
                    "inputs": {"i": "$item"},
                },
                "max_concurrency": 2,
            },
        },
        {"id": "s", "kind": "subgraph", "config": {"graph": "sub"}, "inputs": {"q": "b.0"}},
        {"id": "w", "kind": "wait", "config": {"seconds": 1.5}},
        {
            "id": "g",
            "kind": "gate",
            "config": {"question": "ok {v}?", "answer_schema": {"type": "string"}},
            "inputs": {"v": "m"},
        },
        {
            "id": "ag",
            "kind": "agent",
            "config": {
                "model": "anthropic:c",
                "instructions": "x",
                "tools": ["search"],
                "max_turns": 3,
            },
        },
    ],
    "edges": [
        {"from": "a", "to": "b"},
        {"from": "b", "to": "r"},
        {"from": "r", "to": "m", "when": "x"},
        {"from": "r", "to": "s", "when": "y"},
        {"from": "m", "to": "g"},
    ],
    "subgraphs": [
        {"id": "sub", "nodes": [{"id": "z", "kind": "code", "config": {"function": "m:f"}}]}
    ],
    "output": "g",
}

_WEIRD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**70, max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.text(alphabet=st.characters(min_codepoint=0x80), min_size=1, max_size=10),
    st.just("x" * 100_000),
    st.just("{" * 5_000),
    st.just("(" * 5_000),
    st.just("dangling"),
    st.just("$input.nope"),
    st.just("$item"),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _paths(v: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(v, dict):
        for k, x in v.items():
            out += _paths(x, (*here, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out += _paths(x, (*here, i))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    data: Any = copy.deepcopy(_BASE)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        if not path:
            data = draw(_WEIRD)
            continue
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["delete", "replace", "replace", "rename"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(_WEIRD.filter(lambda k: isinstance(k, str)) | st.text(max_size=8))] = (
                parent.pop(path[-1])
            )
        else:
            parent[path[-1]] = draw(_WEIRD)
        if not isinstance(data, (dict, list)):
            break
    return data


def _raised(fn: Callable[[], object]) -> KirError | None:
    """The KirError ``fn`` raises, or None; any other exception fails the test."""
    try:
        fn()
    except KirError as exc:
        return exc
    return None


def _assert_located(err: KirError | None) -> None:
    if err is None:
        return
    assert err.path.startswith("$"), err
    for e in getattr(err, "errors", ()):
        assert isinstance(e, KirError)
        assert e.path.startswith("$"), e


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_raise_only_kir_errors(data: Any) -> None:
    _assert_located(_raised(lambda: compile_graph(parse_graph(data))))
    try:
        text = json.dumps(data, allow_nan=False)
    except ValueError:
        return  # NaN has no JSON spelling; covered by the dict path above
    _assert_located(_raised(lambda: compile_graph(Graph.from_json(text))))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_raise_only_kir_errors(raw: bytes) -> None:
    _assert_located(_raised(lambda: Graph.from_json(raw)))


def test_base_of_mutations_is_valid() -> None:
    compile_graph(parse_graph(_BASE))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_graphs())
def test_a_stored_graph_loads_as_it_compiled(data: Data) -> None:
    # What the executor does with a run's stored graph: parse and freeze, no second check.
    compiled = compile_graph(parse_graph(data))
    assert_same_compiled(load_compiled(compiled.canonical), compiled)
