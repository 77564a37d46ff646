"""The runnable frontier, kept incrementally.

A run is a tree of *scopes*: the top-level graph is the root scope (prefix ``""``); a
``subgraph`` node opens one child scope (``"S/"``) and a ``map`` node one per item
(``"M[3]/"``). A node instance's key is its scope prefix plus its node id
(``"M[3]/fetch"``).

Per scope the frontier keeps, for every node, how many of its predecessors are still
undecided and whether any incoming edge was taken. When an instance ends, only its
successors are touched: the frontier never rescans a graph, so the work per step
does not grow with the graph or the log. :func:`frontier_from_scratch` recomputes the
same answer by brute force; a property test keeps the two equal.

Ready instances come out in a deterministic order: by *order key* — the topological
indexes along the scope path (with the map item index in between) — then by key.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from kir.schema import Edge, Node, ToolSpec

__all__ = [
    "GraphView",
    "Scope",
    "MapFanout",
    "SingleNode",
    "Frontier",
    "InstanceStatus",
    "frontier_from_scratch",
    "item_prefix",
]

InstanceStatus = Literal["ready", "running", "done"]


class GraphView(Protocol):
    """What the frontier needs of a (compiled) graph."""

    @property
    def order(self) -> tuple[str, ...]: ...
    @property
    def index(self) -> Mapping[str, int]: ...
    @property
    def nodes(self) -> Mapping[str, Node]: ...
    @property
    def predecessors(self) -> Mapping[str, tuple[str, ...]]: ...
    @property
    def successors(self) -> Mapping[str, tuple[str, ...]]: ...
    @property
    def out_edges(self) -> Mapping[str, tuple[Edge, ...]]: ...
    @property
    def subgraphs(self) -> Mapping[str, Any]: ...
    @property
    def tools(self) -> Mapping[str, ToolSpec]: ...


class SingleNode:
    """A one-node graph: the body of a ``map`` whose body is an inline node.

    Its mappings are built once: every item of the map shares the same instance.
    """

    __slots__ = (
        "index",
        "node",
        "nodes",
        "order",
        "out_edges",
        "predecessors",
        "subgraphs",
        "successors",
        "tools",
    )  # fmt: skip

    def __init__(
        self, node: Node, subgraphs: Mapping[str, Any], tools: Mapping[str, ToolSpec]
    ) -> None:
        self.node = node
        #: The embedding graph's subgraphs and tools, which the inline node may use.
        self.subgraphs = subgraphs
        self.tools = tools
        self.order: tuple[str, ...] = (node.id,)
        self.index: Mapping[str, int] = {node.id: 0}
        self.nodes: Mapping[str, Node] = {node.id: node}
        self.predecessors: Mapping[str, tuple[str, ...]] = {node.id: ()}
        self.successors: Mapping[str, tuple[str, ...]] = {node.id: ()}
        self.out_edges: Mapping[str, tuple[Edge, ...]] = {node.id: ()}


def item_prefix(parent_key: str, index: int) -> str:
    """Scope prefix of item ``index`` of map instance ``parent_key``."""
    return f"{parent_key}[{index}]/"


@dataclass(eq=False, slots=True)
class Scope:
    """One running copy of a graph."""

    prefix: str
    graph: GraphView
    order_key: tuple[int, ...]
    #: The composite instance (subgraph or map node) this scope belongs to; None at the root.
    owner: str | None
    #: Item index within the owner, for map items.
    item: int | None = None
    #: node id -> predecessors not yet decided.
    undecided: dict[str, int] = field(default_factory=dict)
    #: node ids with at least one taken incoming edge.
    taken: set[str] = field(default_factory=set)
    #: nodes of the scope not yet done.
    remaining: int = 0


@dataclass(eq=False, slots=True)
class MapFanout:
    """Progress of one map instance: items are opened up to ``limit`` at a time."""

    key: str
    body: GraphView
    total: int
    limit: int
    order_key: tuple[int, ...]
    opened: int = 0
    finished: int = 0


class Frontier:
    """Incremental runnable set over a tree of scopes."""

    def __init__(self) -> None:
        self.scopes: dict[str, Scope] = {}
        self.status: dict[str, InstanceStatus] = {}
        #: key -> (scope prefix, node id)
        self.where: dict[str, tuple[str, str]] = {}
        self.order_keys: dict[str, tuple[int, ...]] = {}
        self.fanouts: dict[str, MapFanout] = {}
        # Ready instances, as a heap once something is taken from it. While a log is only
        # being folded (on resume) nothing is taken, so entries are just appended and the
        # heap is built on the first pop from the entries still ready.
        self._ready: list[tuple[tuple[int, ...], str]] = []
        self._heaped = False
        #: Instances all of whose incoming edges were untaken: to be skipped.
        self.skippable: deque[str] = deque()
        #: Composite instances whose child scopes are all done.
        self.composites_done: deque[str] = deque()
        self.root_done = False
        #: Number of successor/scope updates made (for the growth test).
        self.updates = 0

    # -- scopes ---------------------------------------------------------------------

    def open_scope(
        self,
        prefix: str,
        graph: GraphView,
        order_key: tuple[int, ...],
        owner: str | None,
        item: int | None = None,
    ) -> Scope:
        """Start a copy of ``graph`` under ``prefix``; its root nodes become ready."""
        scope = Scope(prefix, graph, order_key, owner, item, remaining=len(graph.order))
        self.scopes[prefix] = scope
        preds = graph.predecessors
        for node_id in graph.order:
            n = len(preds[node_id])
            if n == 0:
                self._make_ready(scope, node_id)
            else:
                scope.undecided[node_id] = n
        if scope.remaining == 0:
            self._scope_finished(scope)
        return scope

    def open_map(self, key: str, body: GraphView, total: int, limit: int) -> None:
        """A map instance started over ``total`` items; open the first ``limit`` of them."""
        fan = MapFanout(key, body, total, max(1, limit), self.order_keys[key])
        self.fanouts[key] = fan
        if total == 0:
            self.composites_done.append(key)
            return
        while fan.opened < min(fan.total, fan.limit):
            self._open_item(fan)

    def _open_item(self, fan: MapFanout) -> None:
        i = fan.opened
        fan.opened += 1
        self.open_scope(item_prefix(fan.key, i), fan.body, (*fan.order_key, i), fan.key, i)

    def _scope_finished(self, scope: Scope) -> None:
        self.updates += 1
        owner = scope.owner
        if owner is None:
            self.root_done = True
            return
        fan = self.fanouts.get(owner)
        if fan is None:  # a subgraph's single scope
            self.composites_done.append(owner)
            return
        fan.finished += 1
        if fan.opened < fan.total:
            self._open_item(fan)
        elif fan.finished == fan.total:
            self.composites_done.append(owner)

    # -- instances ------------------------------------------------------------------

    def _make_ready(self, scope: Scope, node_id: str) -> None:
        key = scope.prefix + node_id
        okey = (*scope.order_key, scope.graph.index[node_id])
        self.where[key] = (scope.prefix, node_id)
        self.order_keys[key] = okey
        self.status[key] = "ready"
        if self._heaped:
            heapq.heappush(self._ready, (okey, key))
        else:
            self._ready.append((okey, key))

    def _make_skippable(self, scope: Scope, node_id: str) -> None:
        key = scope.prefix + node_id
        self.where[key] = (scope.prefix, node_id)
        self.order_keys[key] = (*scope.order_key, scope.graph.index[node_id])
        self.status[key] = "ready"
        self.skippable.append(key)

    def started(self, key: str) -> None:
        """``node.started`` for ``key`` (a restart after a failure is allowed)."""
        self.status[key] = "running"

    def done(self, key: str, route: Iterable[str] | None, *, skipped: bool) -> None:
        """``key`` completed (taking the edges ``route`` allows) or was skipped."""
        if self.status.get(key) == "done":
            return
        self.status[key] = "done"
        prefix, node_id = self.where[key]
        scope = self.scopes[prefix]
        labels = None if route is None else set(route)
        graph = scope.graph
        if graph.successors[node_id]:
            taken_targets: set[str] = set()
            if not skipped:
                for edge in graph.out_edges[node_id]:
                    if edge.when is None or (labels is not None and edge.when in labels):
                        taken_targets.add(edge.target)
            for succ in graph.successors[node_id]:
                self.updates += 1
                if succ in taken_targets:
                    scope.taken.add(succ)
                left = scope.undecided[succ] - 1
                scope.undecided[succ] = left
                if left == 0:
                    del scope.undecided[succ]
                    if succ in scope.taken:
                        self._make_ready(scope, succ)
                    else:
                        self._make_skippable(scope, succ)
        scope.remaining -= 1
        if scope.remaining == 0:
            self._scope_finished(scope)

    # -- queries --------------------------------------------------------------------

    def pop_ready(self) -> str | None:
        """The next ready instance in order, removed from the ready set."""
        if not self._heaped:
            status = self.status
            self._ready = [e for e in self._ready if status.get(e[1]) == "ready"]
            heapq.heapify(self._ready)
            self._heaped = True
        heap = self._ready
        while heap:
            _, key = heapq.heappop(heap)
            if self.status.get(key) == "ready":
                return key
        return None

    def ready_set(self) -> set[str]:
        """Every ready instance (including those waiting to be skipped)."""
        return {k for k, s in self.status.items() if s == "ready"}

    def node_of(self, key: str) -> tuple[Scope, str]:
        """The scope and node id of an instance."""
        prefix, node_id = self.where[key]
        return self.scopes[prefix], node_id


def frontier_from_scratch(
    scopes: Mapping[str, Scope],
    done: Mapping[str, Iterable[str] | None],
    skipped: set[str],
    started: set[str],
) -> set[str]:
    """The ready set recomputed by brute force over every scope.

    ``done`` maps each completed instance to its route; ``skipped`` and ``started`` are
    instance keys. Used by the property test of the incremental :class:`Frontier`.
    """
    ready: set[str] = set()
    for scope in scopes.values():
        g = scope.graph
        for node_id in g.order:
            key = scope.prefix + node_id
            if key in done or key in skipped or key in started:
                continue
            preds = g.predecessors[node_id]
            if not preds:
                ready.add(key)
                continue
            if not all(scope.prefix + p in done or scope.prefix + p in skipped for p in preds):
                continue
            ready.add(key)  # decided: to run (some edge taken) or to skip
    return ready
