"""Random valid graphs of mixed node kinds, for property and chaos tests."""

from __future__ import annotations

from hypothesis import strategies as st

from kir import Edge, Graph, Node, ToolSpec
from kir.schema import CodeConfig, LlmConfig, MapConfig, RouterConfig, ToolConfig

KINDS = ("code", "code", "code", "llm", "router", "map", "tool")


def build(kinds: list[str], edges: set[tuple[int, int]], when: dict[tuple[int, int], str]) -> Graph:
    n = len(kinds)
    preds: dict[int, list[int]] = {j: sorted(i for i, jj in edges if jj == j) for j in range(n)}
    nodes = []
    for j, kind in enumerate(kinds):
        nid = f"n{j}"
        inputs = {f"i{p}": f"n{p}" for p in preds[j]} or {"x": "$input.x"}
        first = next(iter(inputs))
        if kind == "code":
            cfg = CodeConfig(function="tests.executor.fns:mix")
        elif kind == "llm":
            cfg = LlmConfig(model="mock:m", prompt=f"say {{{first}}}")
        elif kind == "router":
            inputs = {"v": "$input.x"}
            cfg = RouterConfig(labels=["true", "false"], condition=f"v % {j + 2} == 0")
        elif kind == "map":
            inputs = {}
            cfg = MapConfig(
                over="$input.items",
                node=Node(
                    id="body",
                    config=CodeConfig(function="tests.executor.fns:mix"),
                    inputs={"x": "$item"},
                ),
                max_concurrency=2,
            )
        else:
            cfg = ToolConfig(tool="echo", args={"v": f"{{{first}}}"})
        nodes.append(Node(id=nid, config=cfg, inputs=inputs))
    graph_edges = []
    for i, j in sorted(edges):
        label = when.get((i, j)) if kinds[i] == "router" else None
        graph_edges.append(Edge(f"n{i}", f"n{j}", when=label))
    return Graph(nodes=nodes, edges=graph_edges, tools=[ToolSpec(name="echo", idempotent=True)])


@st.composite
def graphs(draw: st.DrawFn, min_nodes: int = 2, max_nodes: int = 14) -> Graph:
    n = draw(st.integers(min_nodes, max_nodes))
    kinds = [draw(st.sampled_from(KINDS)) for _ in range(n)]
    edges: set[tuple[int, int]] = set()
    when: dict[tuple[int, int], str] = {}
    for j in range(1, n):
        for i in draw(st.sets(st.integers(0, j - 1), max_size=2)):
            edges.add((i, j))
            when[(i, j)] = draw(st.sampled_from(["true", "false"]))
    return build(kinds, edges, when)
