"""Small builders for executor tests."""

from __future__ import annotations

from typing import Any

from kir import Edge, Graph, Node
from kir.schema import CodeConfig, MapConfig, RouterConfig


def code(node_id: str, fn: str, inputs: dict[str, str] | None = None, **kw: Any) -> Node:
    return Node(
        id=node_id,
        config=CodeConfig(function=f"tests.executor.fns:{fn}"),
        inputs=inputs or {},
        **kw,
    )


def chain(n: int, fn: str = "inc") -> Graph:
    """``n0 -> n1 -> ...``; n0 reads $input.x, each next one the previous output."""
    nodes = [code("n0", fn, {"x": "$input.x"})]
    nodes += [code(f"n{i}", fn, {"x": f"n{i - 1}"}) for i in range(1, n)]
    edges = [Edge(f"n{i - 1}", f"n{i}") for i in range(1, n)]
    return Graph(nodes=nodes, edges=edges, output=f"n{n - 1}")


def item_map(body: Node, *, node_id: str = "m", over: str = "$input.items", **kw: Any) -> Node:
    """A ``map`` node over ``over`` whose items each run ``body`` (a one-node body)."""
    return Node(id=node_id, config=MapConfig(over=over, node=body, **kw))


def hi_lo_router(node_id: str = "r") -> Node:
    """A router on ``$input.x``: label ``hi`` above 5, else ``lo``."""
    return Node(
        id=node_id,
        config=RouterConfig(labels=["hi", "lo"], condition="'hi' if x > 5 else 'lo'"),
        inputs={"x": "$input.x"},
    )
