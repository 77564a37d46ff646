"""Benchmark: validate + compile KIR graphs of 1k, 10k and 100k nodes.

Run ``.venv/bin/python bench/kir_compile.py`` (``--sizes 1000 10000`` to choose sizes,
``--repeat 3`` for best-of-N). Prints one JSON line per size, then one line with the growth
ratio between successive sizes; near-linear compile means a 10x ratio of at most 15x.

The graphs are a realistic mix: mostly ``llm``, ``tool`` and ``code`` nodes, with routers
(and their labelled edges), gates, waits, agents, maps and a subgraph; every node reads one
to three upstream nodes chosen among the recent ones (a long, wide pipeline).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kir import (
    AgentConfig,
    CodeConfig,
    Edge,
    GateConfig,
    Graph,
    LlmConfig,
    MapConfig,
    Node,
    RouterConfig,
    SubgraphConfig,
    ToolConfig,
    ToolSpec,
    WaitConfig,
    check_graph,
    compile_graph,
    parse_binding,
    parse_expr,
    parse_template,
)

_KINDS = (
    ["llm"] * 35
    + ["tool"] * 20
    + ["code"] * 20
    + ["router"] * 5
    + ["gate"] * 4
    + ["wait"] * 4
    + ["agent"] * 6
    + ["map"] * 4
    + ["subgraph"] * 2
)


def build_graph(n: int, seed: int = 0) -> Graph:
    """A valid graph of ``n`` nodes (deterministic for a seed)."""
    rng = random.Random(seed)
    nodes: list[Node] = []
    edges: list[Edge] = []
    routers: dict[str, RouterConfig] = {}
    for i in range(n):
        nid = f"n{i:06d}"
        parents = (
            sorted({rng.randrange(max(0, i - 50), i) for _ in range(rng.randint(1, 3))})
            if i
            else []
        )
        inputs = {f"x{k}": f"n{p:06d}" for k, p in enumerate(parents)}
        if not parents:
            inputs = {"x0": "$input.topic"}
        kind = rng.choice(_KINDS) if i else "llm"
        names = " ".join(f"{{{k}}}" for k in inputs)
        config: Any
        if kind == "llm":
            config = LlmConfig(
                model="openai:gpt-4o-mini",
                prompt=f"Step {i}: work on {names}",
                params={"temperature": 0.2},
            )
        elif kind == "tool":
            config = ToolConfig(tool=f"tool{i % 7}", args={"query": f"{names} #{i}", "n": 5})
        elif kind == "code":
            config = CodeConfig(function=f"app.steps:step_{i % 13}")
        elif kind == "router":
            config = RouterConfig(labels=["a", "b"], condition="'a' if len(x0) > 3 else 'b'")
            routers[nid] = config
        elif kind == "gate":
            config = GateConfig(question=f"Approve {names}?")
        elif kind == "wait":
            config = WaitConfig(seconds=30.0)
        elif kind == "agent":
            config = AgentConfig(
                model="anthropic:claude",
                instructions=f"Solve {names}",
                tools=[f"tool{i % 7}", f"tool{(i + 1) % 7}"],
            )
        elif kind == "map":
            config = MapConfig(
                over="$input.items",
                node=Node(
                    id="body",
                    config=LlmConfig(model="openai:gpt-4o-mini", prompt="Item {it}"),
                    inputs={"it": "$item"},
                ),
            )
        else:
            config = SubgraphConfig(graph="review")
            inputs = {**inputs, "text": inputs["x0"]}
        nodes.append(Node(id=nid, config=config, inputs=inputs))
        for p in parents:
            src = f"n{p:06d}"
            when = rng.choice(routers[src].labels) if src in routers else None
            edges.append(Edge(src, nid, when=when))
    review = Graph(
        id="review",
        inputs_schema={"type": "object", "properties": {"text": {}}, "required": ["text"]},
        nodes=[
            Node(
                id="check",
                config=LlmConfig(model="openai:gpt-4o", prompt="Review {t}"),
                inputs={"t": "$input.text"},
            )
        ],
    )
    return Graph(
        id=f"bench{n}",
        inputs_schema={
            "type": "object",
            "properties": {"topic": {"type": "string"}, "items": {"type": "array"}},
        },
        nodes=nodes,
        edges=edges,
        tools=[ToolSpec(name=f"tool{k}", idempotent=k % 2 == 0) for k in range(7)],
        subgraphs=[review],
    )


def _best(fn: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        # Cold parse caches each time: a user compiles a new graph, not the same one again
        # (and warm caches would flatter small graphs, whose texts all fit in them).
        parse_template.cache_clear()
        parse_binding.cache_clear()
        parse_expr.cache_clear()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    results: list[dict[str, Any]] = []
    for n in args.sizes:
        graph = build_graph(n)
        text = graph.to_json(indent=0)
        repeat = max(1, args.repeat if n <= 10_000 else min(args.repeat, 2))
        check_s = _best(lambda g=graph: check_graph(g), repeat)
        compile_s = _best(lambda g=graph: compile_graph(g), repeat)  # includes checking
        parse_s = _best(lambda t=text: Graph.from_json(t), repeat)
        compiled = compile_graph(graph)
        row = {
            "nodes": n,
            "edges": len(graph.edges),
            "check_s": round(check_s, 4),
            "validate_compile_s": round(compile_s, 4),
            "parse_json_s": round(parse_s, 4),
            "us_per_node": round(compile_s / n * 1e6, 2),
            "graph_hash": compiled.graph_hash[:16],
        }
        results.append(row)
        print(json.dumps(row), flush=True)
    for a, b in pairwise(results):
        print(
            json.dumps(
                {
                    "growth": f"{a['nodes']} -> {b['nodes']}",
                    "nodes_ratio": round(b["nodes"] / a["nodes"], 1),
                    "time_ratio": round(b["validate_compile_s"] / a["validate_compile_s"], 2),
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
