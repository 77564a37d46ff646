"""Random valid graphs of mixed node kinds, and a scripted model for them, for property
and chaos tests."""

from __future__ import annotations

import asyncio

from hypothesis import strategies as st

from kir import Edge, Graph, Node, ToolSpec
from kir.schema import (
    AgentConfig,
    CodeConfig,
    LlmConfig,
    MapConfig,
    RouterConfig,
    SubgraphConfig,
    ToolConfig,
)
from substrate import CallKey, MockModel, MockReply, ModelRequest, ModelResponse

KINDS = ("code", "code", "code", "llm", "router", "map", "tool", "agent", "subgraph")

#: The graph a ``subgraph`` node runs: two ``code`` nodes in a chain over its input.
SUB = Graph(
    id="sub",
    nodes=[
        Node(
            id="s0", config=CodeConfig(function="tests.executor.fns:mix"), inputs={"x": "$input.x"}
        ),
        Node(id="s1", config=CodeConfig(function="tests.executor.fns:mix"), inputs={"x": "s0"}),
    ],
    edges=[Edge("s0", "s1")],
    output="s1",
)


class ScriptedModel(MockModel):
    """Answers drawn by a test, after a drawn number of event-loop turns (so concurrent
    calls finish in varying orders). An agent's first call asks for the ``echo`` tool
    with an answer as its argument; its later calls, and every other call, answer text."""

    def __init__(self, answers: list[str], turns: list[int]) -> None:
        def script(req: ModelRequest, key: CallKey) -> MockReply | str:
            answer = answers[(len(key.node) + key.index) % len(answers)]
            if req.tools and key.index == 0:
                return MockReply(tool_calls=[("echo", {"v": answer})])
            return answer

        super().__init__(script)
        self._turns = turns

    async def complete(self, request: ModelRequest, key: CallKey) -> ModelResponse:
        for _ in range(self._turns[(len(key.node) * 7 + key.index) % len(self._turns)]):
            await asyncio.sleep(0)
        return await super().complete(request, key)


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
        elif kind == "agent":
            cfg = AgentConfig(
                model="mock:m", instructions=f"use echo on {{{first}}}", tools=["echo"]
            )
        elif kind == "subgraph":
            inputs = {"x": f"n{preds[j][0]}" if preds[j] else "$input.x"}
            cfg = SubgraphConfig(graph="sub")
        else:
            cfg = ToolConfig(tool="echo", args={"v": f"{{{first}}}"})
        nodes.append(Node(id=nid, config=cfg, inputs=inputs))
    graph_edges = []
    for i, j in sorted(edges):
        label = when.get((i, j)) if kinds[i] == "router" else None
        graph_edges.append(Edge(f"n{i}", f"n{j}", when=label))
    return Graph(
        nodes=nodes,
        edges=graph_edges,
        tools=[ToolSpec(name="echo", idempotent=True)],
        subgraphs=[SUB] if "subgraph" in kinds else [],
    )


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
