"""Compilation: check, normalize with small passes, and freeze into a :class:`CompiledGraph`.

:func:`compile_graph` refuses an invalid graph (raising :class:`~kir.errors.GraphInvalid`
with every error), then runs the normalization passes, each a frozen object taking a valid
graph to an equivalent valid graph:

- :class:`FillEntry` writes the default entry (the nodes without incoming edges) explicitly;
- :class:`SortSets` sorts lists that are sets (router labels, agent tools, entry);
- :class:`SortNodes`, :class:`SortEdges`, :class:`SortDeclarations` put nodes, edges, tools
  and subgraphs in canonical order.

The result's ``graph_hash`` is the BLAKE2b hash of the normalized graph's canonical bytes
(defaults written out, keys sorted by the one encoder), so two graphs that differ only in the
order of lists or keys, or in spelling a default explicitly, hash the same.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

from kir.binding import Binding, parse_binding
from kir.check import check_graph
from kir.errors import GraphInvalid
from kir.schema import (
    AgentConfig,
    Edge,
    Graph,
    MapConfig,
    Node,
    RouterConfig,
    SubgraphConfig,
    ToolSpec,
)
from substrate.codec import digest, encode
from substrate.gcpause import gc_paused

__all__ = [
    "Pass",
    "FillEntry",
    "SortSets",
    "SortNodes",
    "SortEdges",
    "SortDeclarations",
    "DEFAULT_PASSES",
    "CompiledGraph",
    "compile_graph",
    "load_compiled",
    "normalize",
]


class Pass(Protocol):
    """A normalization pass: a valid graph in, an equivalent valid graph out."""

    name: ClassVar[str]

    def __call__(self, graph: Graph) -> Graph: ...


def _each_graph(graph: Graph, fn: Callable[[Graph], Graph]) -> Graph:
    """Apply ``fn`` to ``graph`` and, first, to every graph it embeds."""
    if graph.subgraphs:
        graph = graph.model_copy(
            update={"subgraphs": [_each_graph(s, fn) for s in graph.subgraphs]}
        )
    return fn(graph)


@dataclass(frozen=True, slots=True)
class FillEntry:
    """Write the default entry (every node without incoming edges) explicitly."""

    name: ClassVar[str] = "fill-entry"

    def __call__(self, graph: Graph) -> Graph:
        def fill(g: Graph) -> Graph:
            if g.entry is not None:
                return g
            targets = {e.target for e in g.edges}
            return g.model_copy(update={"entry": [n.id for n in g.nodes if n.id not in targets]})

        return _each_graph(graph, fill)


@dataclass(frozen=True, slots=True)
class SortSets:
    """Sort the lists whose order means nothing: router labels, agent tools, entry."""

    name: ClassVar[str] = "sort-sets"

    def __call__(self, graph: Graph) -> Graph:
        def node(n: Node) -> Node:
            # Copy only what changes: model_copy is not free and most lists are sorted.
            c = n.config
            if type(c) is RouterConfig and not _is_sorted(c.labels):
                c = c.model_copy(update={"labels": sorted(c.labels)})
            elif type(c) is AgentConfig and not _is_sorted(c.tools):
                c = c.model_copy(update={"tools": sorted(c.tools)})
            elif type(c) is MapConfig and c.node is not None:
                body = node(c.node)
                if body is not c.node:
                    c = c.model_copy(update={"node": body})
            if c is n.config:
                return n
            return n.model_copy(update={"config": c})

        def sort(g: Graph) -> Graph:
            update: dict[str, Any] = {"nodes": [node(n) for n in g.nodes]}
            if g.entry is not None:
                update["entry"] = sorted(g.entry)
            return g.model_copy(update=update)

        return _each_graph(graph, sort)


@dataclass(frozen=True, slots=True)
class SortNodes:
    """Order nodes by id."""

    name: ClassVar[str] = "sort-nodes"

    def __call__(self, graph: Graph) -> Graph:
        return _each_graph(
            graph, lambda g: g.model_copy(update={"nodes": sorted(g.nodes, key=_node_key)})
        )


@dataclass(frozen=True, slots=True)
class SortEdges:
    """Order edges by (source, target, when)."""

    name: ClassVar[str] = "sort-edges"

    def __call__(self, graph: Graph) -> Graph:
        return _each_graph(
            graph, lambda g: g.model_copy(update={"edges": sorted(g.edges, key=_edge_key)})
        )


@dataclass(frozen=True, slots=True)
class SortDeclarations:
    """Order tools by name and embedded subgraphs by id."""

    name: ClassVar[str] = "sort-declarations"

    def __call__(self, graph: Graph) -> Graph:
        return _each_graph(
            graph,
            lambda g: g.model_copy(
                update={
                    "tools": sorted(g.tools, key=lambda t: t.name),
                    "subgraphs": sorted(g.subgraphs, key=lambda s: s.id),
                }
            ),
        )


def _is_sorted(items: Sequence[str]) -> bool:
    return all(a <= b for a, b in pairwise(items))


def _node_key(n: Node) -> str:
    return n.id


def _edge_key(e: Edge) -> tuple[str, str, str]:
    return e.source, e.target, "" if e.when is None else e.when


DEFAULT_PASSES: tuple[Pass, ...] = (
    FillEntry(),
    SortSets(),
    SortNodes(),
    SortEdges(),
    SortDeclarations(),
)


def normalize(graph: Graph, passes: Sequence[Pass] = DEFAULT_PASSES) -> Graph:
    """Run ``passes`` over a valid ``graph`` (no checking; see :func:`compile_graph`)."""
    for p in passes:
        graph = p(graph)
    return graph


@dataclass(frozen=True, slots=True, eq=False)
class CompiledGraph:
    """A checked, normalized, immutable graph, indexed for the executor.

    Every lookup is a precomputed mapping, so scheduling work is proportional to the nodes
    it touches, never to the graph.

    Attributes:
        graph: the normalized graph.
        graph_hash: BLAKE2b-256 hex of the normalized graph's canonical bytes.
        canonical: those bytes (:meth:`Graph.canonical_data` through the one encoder).
        order: node ids in canonical topological order (ties broken by id).
        index: node id -> position in ``order``.
        nodes: node id -> node, in ``order``.
        predecessors: node id -> ids of the nodes with an edge into it, in ``order``.
        successors: node id -> ids of the nodes it has an edge to, in ``order``.
        in_edges: node id -> its incoming edges (canonical order).
        out_edges: node id -> its outgoing edges; for a router each carries its ``when``.
        bindings: node id -> input name -> parsed binding.
        entry: the entry nodes, in ``order``.
        tools: tool name -> spec, for the tools visible to this graph.
        subgraphs: graph id -> compiled graph, for every graph its nodes refer to.
    """

    graph: Graph
    graph_hash: str
    #: The canonical bytes ``graph_hash`` is the hash of (what a store keeps).
    canonical: bytes
    order: tuple[str, ...]
    index: Mapping[str, int]
    nodes: Mapping[str, Node]
    predecessors: Mapping[str, tuple[str, ...]]
    successors: Mapping[str, tuple[str, ...]]
    in_edges: Mapping[str, tuple[Edge, ...]]
    out_edges: Mapping[str, tuple[Edge, ...]]
    bindings: Mapping[str, Mapping[str, Binding]]
    entry: tuple[str, ...]
    tools: Mapping[str, ToolSpec]
    subgraphs: Mapping[str, CompiledGraph]

    @property
    def id(self) -> str:
        """The graph's id."""
        return self.graph.id

    @property
    def version(self) -> int:
        """The KIR schema version of the graph."""
        return self.graph.version

    def node(self, node_id: str) -> Node:
        """The node ``node_id`` (``KeyError`` if there is none)."""
        return self.nodes[node_id]

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[Node]:
        """The nodes, in topological order."""
        return iter(self.nodes.values())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CompiledGraph) and other.graph_hash == self.graph_hash

    def __hash__(self) -> int:
        return hash(self.graph_hash)

    def __repr__(self) -> str:
        return f"<CompiledGraph {self.id!r} {len(self)} nodes {self.graph_hash[:12]}>"


def compile_graph(graph: Graph, passes: Sequence[Pass] = DEFAULT_PASSES) -> CompiledGraph:
    """Check ``graph``, normalize it and freeze it.

    Raises:
        GraphInvalid: the graph has errors; all of them are listed.
    """
    with gc_paused():
        errors = check_graph(graph)
        if errors:
            raise GraphInvalid(errors, graph=graph.id)
        return _freeze(normalize(graph, passes), {}, {}, {})


def load_compiled(canonical: bytes) -> CompiledGraph:
    """The compiled graph whose canonical bytes are ``canonical`` (what a store keeps).

    The bytes are taken to be what :func:`compile_graph` made of a checked and normalized
    graph: the executor loads a run's graph only after its hash matched the one recorded
    when the run started, and only compiled graphs are stored. So they are parsed and
    frozen here, not checked, normalized or encoded again, which for a large graph is more
    than half of the work of a compile. The result equals what :func:`compile_graph`
    gives for the graph (a property test holds them equal field by field), with
    ``canonical`` as its bytes and their hash as its ``graph_hash``.

    Bytes that parse but do not freeze (an edge to a missing node, a cycle: not the output
    of a compile) are compiled in full, so that their errors are reported as
    :func:`compile_graph` reports them.

    Raises:
        GraphInvalid: the bytes are not JSON, do not fit the schema, or the graph has
            errors that keep it from being frozen.
    """
    with gc_paused():  # O(nodes) objects that survive, and no garbage cycles
        graph = Graph.from_json(canonical)
        try:
            frozen: CompiledGraph | None = _freeze(graph, {}, {}, {}, canonical)
        except Exception:  # not a compiled graph: the checker says what is wrong
            frozen = None
    return frozen if frozen is not None else compile_graph(graph)


@dataclass(frozen=True, slots=True)
class _Decl:
    """An embedded graph and the scope it was declared in (what it can see)."""

    graph: Graph
    tools: Mapping[str, ToolSpec]
    subs: Mapping[str, _Decl]


def _compiled(d: _Decl, cache: dict[int, CompiledGraph]) -> CompiledGraph:
    found = cache.get(id(d.graph))
    if found is None:
        found = cache[id(d.graph)] = _freeze(d.graph, d.tools, d.subs, cache)
    return found


def _freeze(
    g: Graph,
    outer_tools: Mapping[str, ToolSpec],
    outer_subs: Mapping[str, _Decl],
    cache: dict[int, CompiledGraph],
    canonical: bytes | None = None,
) -> CompiledGraph:
    tools = {**outer_tools, **{t.name: t for t in g.tools}}
    subs: dict[str, _Decl] = dict(outer_subs)
    for s in g.subgraphs:
        subs[s.id] = _Decl(s, tools, subs)  # the dict is shared: siblings see each other

    succ_edges: dict[str, list[Edge]] = {n.id: [] for n in g.nodes}
    pred_edges: dict[str, list[Edge]] = {n.id: [] for n in g.nodes}
    for e in g.edges:
        succ_edges[e.source].append(e)
        pred_edges[e.target].append(e)
    order = _topo_order(g, succ_edges, pred_edges)
    index = {n: i for i, n in enumerate(order)}
    by_id = {n.id: n for n in g.nodes}

    def ids(edges: list[Edge], end: Callable[[Edge], str]) -> tuple[str, ...]:
        if len(edges) < 2:
            return tuple(map(end, edges))
        return tuple(sorted({end(e) for e in edges}, key=index.__getitem__))

    # Embedded graphs, and those its nodes use from enclosing graphs, each compiled once in
    # the scope it was declared in.
    refs = {s.id: _compiled(subs[s.id], cache) for s in g.subgraphs}
    for n in g.nodes:
        for ref in _graph_refs(n):
            if ref not in refs:
                refs[ref] = _compiled(subs[ref], cache)

    if canonical is None:
        canonical = encode(g.canonical_data())
    return CompiledGraph(
        graph=g,
        graph_hash=digest(canonical),
        canonical=canonical,
        order=tuple(order),
        index=MappingProxyType(index),
        nodes=MappingProxyType({k: by_id[k] for k in order}),
        predecessors=MappingProxyType({k: ids(pred_edges[k], _source) for k in order}),
        successors=MappingProxyType({k: ids(succ_edges[k], _target) for k in order}),
        in_edges=MappingProxyType({k: tuple(pred_edges[k]) for k in order}),
        out_edges=MappingProxyType({k: tuple(succ_edges[k]) for k in order}),
        bindings=MappingProxyType({k: _bindings(by_id[k]) for k in order}),
        entry=tuple(sorted(g.entry or (), key=index.__getitem__)),
        tools=MappingProxyType(tools),
        subgraphs=MappingProxyType(refs),
    )


_NO_BINDINGS: Mapping[str, Binding] = MappingProxyType({})


def _bindings(n: Node) -> Mapping[str, Binding]:
    if not n.inputs:
        return _NO_BINDINGS
    return MappingProxyType({name: parse_binding(b) for name, b in n.inputs.items()})


def _source(e: Edge) -> str:
    return e.source


def _target(e: Edge) -> str:
    return e.target


def _graph_refs(n: Node) -> Iterator[str]:
    c = n.config
    if type(c) is SubgraphConfig:
        yield c.graph
    elif type(c) is MapConfig:
        if c.graph is not None:
            yield c.graph
        if c.node is not None:
            yield from _graph_refs(c.node)


def _topo_order(
    g: Graph, succ: Mapping[str, list[Edge]], pred: Mapping[str, list[Edge]]
) -> list[str]:
    # Kahn's algorithm with a heap: among the ready nodes the smallest id goes first, so the
    # order depends only on the graph, never on how its lists were written.
    waiting = {k: len(v) if len(v) < 2 else len({e.source for e in v}) for k, v in pred.items()}
    ready = [k for k, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        k = heapq.heappop(ready)
        order.append(k)
        out = succ[k]
        for t in (e.target for e in out) if len(out) < 2 else {e.target for e in out}:
            waiting[t] -= 1
            if waiting[t] == 0:
                heapq.heappush(ready, t)
    if len(order) != len(waiting):  # pragma: no cover - check_graph rejects cycles first
        raise AssertionError(f"graph {g.id!r} has a cycle after checking")
    return order
