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

Folding a long log is mostly folding map items, so the item path is kept lean: every
instance has one :class:`Place` (``where``, ``order_keys`` and ``status`` are views of
them, not three dicts to update), and the scope of an item of a one-node body (an inline
body) is made only when someone asks for it. Tuples are extended by concatenation, not
unpacking (RUF005): several times faster, on that path.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import msgspec

from kir.schema import Edge, Node, ToolSpec

if TYPE_CHECKING:
    from executor.fold import Instance

__all__ = [
    "GraphView",
    "Scope",
    "Shape",
    "MapFanout",
    "SingleNode",
    "Place",
    "Frontier",
    "InstanceStatus",
    "frontier_from_scratch",
    "item_prefix",
]

InstanceStatus = Literal["ready", "running", "done"]
_V = TypeVar("_V")


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


# Scope, Place and MapFanout are msgspec structs (never encoded) rather than dataclasses:
# a long map makes a place per item, and a struct is built by C code, several times
# faster than running an __init__.


class Scope(msgspec.Struct, eq=False):
    """One running copy of a graph."""

    prefix: str
    graph: GraphView
    order_key: tuple[int, ...]
    #: The composite instance (subgraph or map node) this scope belongs to; None at the root.
    owner: str | None
    #: Item index within the owner, for map items.
    item: int | None = None
    #: nodes of the scope not yet done.
    remaining: int = 0
    #: node id -> predecessors not yet decided.
    undecided: dict[str, int] = {}
    #: node ids with at least one taken incoming edge (None until the first one).
    taken: set[str] | None = None


class Shape(msgspec.Struct, frozen=True, eq=False):
    """What opening a copy of a graph needs, computed once per graph (not once per copy)."""

    #: (node id, topological index) of the nodes without predecessors, in order.
    roots: tuple[tuple[str, int], ...]
    #: node id -> number of predecessors, for every other node (copied per scope).
    undecided: dict[str, int]
    #: number of nodes.
    size: int

    @staticmethod
    def of(graph: GraphView) -> Shape:
        preds, index = graph.predecessors, graph.index
        roots: list[tuple[str, int]] = []
        undecided: dict[str, int] = {}
        for node_id in graph.order:
            n = len(preds[node_id])
            if n:
                undecided[node_id] = n
            else:
                roots.append((node_id, index[node_id]))
        return Shape(tuple(roots), undecided, len(graph.order))


class MapFanout(msgspec.Struct, eq=False):
    """Progress of one map instance: items are opened up to ``limit`` at a time."""

    key: str
    body: GraphView
    total: int
    limit: int
    order_key: tuple[int, ...]
    shape: Shape
    #: (node id, topological index) of the body's node when it has one node: each item
    #: is then a single :class:`Place`, its scope made only when asked for.
    leaf: tuple[str, int] | None = None
    opened: int = 0
    finished: int = 0
    #: The heap entries of the one-node items opened while the frontier's heap is up, in
    #: index order (which is their order): only the first is in the heap, so a long map
    #: keeps the heap short.
    queue: deque[tuple[tuple[int, ...], str]] = msgspec.field(default_factory=deque)


class Place(msgspec.Struct, eq=False, gc=False):
    """Where one node instance is and how far it got: the frontier's record of it."""

    key: str
    #: Its scope; None for the node of a one-node map item until someone asks for it.
    scope: Scope | None
    node_id: str
    #: Where it comes in the run's order; ``()`` for the node of a one-node map item,
    #: whose key is made only when asked for (see ``_order_key``): a fold of a long
    #: map needs none, and a tuple per item would be one more object per item for the
    #: cycle collector to visit once the fold is done.
    order_key: tuple[int, ...]
    status: InstanceStatus = "ready"
    #: For the node of a one-node map item: its map's fan-out and its item index.
    fan: MapFanout | None = None
    item: int = 0
    #: The fold's record of the instance, once it has one (the frontier never reads it;
    #: ``RunState.instances`` is a view of these).
    inst: Instance | None = None


class _PlaceView(Mapping[str, _V]):
    """A read-only mapping over the places, showing one field of each."""

    __slots__ = ("_field", "_places")

    def __init__(self, places: dict[str, Place], field: Callable[[Place], _V]) -> None:
        self._places = places
        self._field = field

    def __getitem__(self, key: str) -> _V:
        return self._field(self._places[key])

    def __contains__(self, key: object) -> bool:
        return key in self._places

    def __iter__(self) -> Iterator[str]:
        return iter(self._places)

    def __len__(self) -> int:
        return len(self._places)


def _where(place: Place) -> tuple[str, str]:
    return place.key[: len(place.key) - len(place.node_id)], place.node_id


def _order_key(place: Place) -> tuple[int, ...]:
    """The order key of the instance at ``place``: its map's, then the item index and
    the node's index for the node of a one-node map item."""
    fan = place.fan
    if fan is None:
        return place.order_key
    assert fan.leaf is not None  # only the node of a one-node item has a fan
    return fan.order_key + (place.item, fan.leaf[1])  # noqa: RUF005


def _status(place: Place) -> InstanceStatus:
    return place.status


class _Scopes(Mapping[str, Scope]):
    """Every scope by prefix: those opened, and the one-node map items' (made when asked).

    It holds the frontier's tables, not the frontier: the frontier holds it, and a cycle
    between them would leave a finished run's places to the cycle collector.
    """

    __slots__ = ("_fanouts", "_places", "opened")

    def __init__(self, places: dict[str, Place], fanouts: dict[str, MapFanout]) -> None:
        self._places = places
        self._fanouts = fanouts
        self.opened: dict[str, Scope] = {}

    def __getitem__(self, prefix: str) -> Scope:
        scope = self.opened.get(prefix)
        if scope is None:
            place = _item_place(self._places, self._fanouts, prefix)
            if place is None:
                raise KeyError(prefix)
            scope = _scope_of(place)
        return scope

    def __contains__(self, prefix: object) -> bool:
        if prefix in self.opened:
            return True
        return (
            isinstance(prefix, str) and _item_place(self._places, self._fanouts, prefix) is not None
        )

    def __iter__(self) -> Iterator[str]:
        yield from self.opened
        for fan in self._fanouts.values():
            if fan.leaf is not None:
                for i in range(fan.opened):
                    yield f"{fan.key}[{i}]/"

    def __len__(self) -> int:
        items = sum(f.opened for f in self._fanouts.values() if f.leaf is not None)
        return len(self.opened) + items


def _scope_of(place: Place) -> Scope:
    """The scope of an instance (made now for the node of a one-node map item)."""
    scope = place.scope
    if scope is None:
        fan = place.fan
        assert fan is not None  # only those places are made without their scope
        i = place.item
        remaining = 0 if place.status == "done" else 1
        okey = fan.order_key + (i,)  # noqa: RUF005
        scope = place.scope = Scope(item_prefix(fan.key, i), fan.body, okey, fan.key, i, remaining)
    return scope


def _item_place(
    places: dict[str, Place], fanouts: dict[str, MapFanout], prefix: str
) -> Place | None:
    """The place of the node of one-node map item ``prefix``, if it has been opened."""
    owner, bracket, index = prefix[:-2].rpartition("[")
    fan = fanouts.get(owner)
    if (
        fan is None
        or fan.leaf is None
        or not bracket
        or not prefix.endswith("]/")
        or not index.isdecimal()
        or item_prefix(owner, int(index)) != prefix  # one spelling per index
    ):
        return None
    return places.get(prefix + fan.leaf[0])


class Frontier:
    """Incremental runnable set over a tree of scopes.

    Every instance the run has reached has one :class:`Place` (``places``); ``where``,
    ``order_keys`` and ``status`` are read-only views of them.
    """

    def __init__(self) -> None:
        #: key -> its place.
        self.places: dict[str, Place] = {}
        self.fanouts: dict[str, MapFanout] = {}
        # map key -> the places of its one-node items opened so far, in index order (kept
        # here, not on the fan-out, which its places point to: no reference cycle).
        self._item_places: dict[str, list[Place]] = {}
        scopes = _Scopes(self.places, self.fanouts)
        #: prefix -> scope (read-only).
        self.scopes: Mapping[str, Scope] = scopes
        self._opened = scopes.opened
        #: key -> (scope prefix, node id)
        self.where: Mapping[str, tuple[str, str]] = _PlaceView(self.places, _where)
        #: key -> order key (see the module docstring).
        self.order_keys: Mapping[str, tuple[int, ...]] = _PlaceView(self.places, _order_key)
        #: key -> "ready", "running" or "done".
        self.status: Mapping[str, InstanceStatus] = _PlaceView(self.places, _status)
        # Ready instances, as a heap once something is taken from it. While a log is only
        # being folded (on resume) nothing is taken, so places are just appended and the
        # heap is built on the first pop from those still ready.
        self._made_ready: list[Place] = []
        self._heap: list[tuple[tuple[int, ...], str]] = []
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
        shape: Shape | None = None,
    ) -> Scope:
        """Start a copy of ``graph`` under ``prefix``; its root nodes become ready.

        ``shape`` is ``Shape.of(graph)`` when the caller has it (a map reuses one for all
        its items).
        """
        if shape is None:
            shape = Shape.of(graph)
        scope = Scope(prefix, graph, order_key, owner, item, shape.size, dict(shape.undecided))
        self._opened[prefix] = scope
        for node_id, index in shape.roots:
            self._make_ready(Place(prefix + node_id, scope, node_id, order_key + (index,)))  # noqa: RUF005
        if not shape.size:
            self._scope_finished(scope)
        return scope

    def open_map(self, key: str, body: GraphView, total: int, limit: int) -> None:
        """A map instance started over ``total`` items; open the first ``limit`` of them."""
        shape = Shape.of(body)
        leaf = shape.roots[0] if shape.size == 1 else None
        fan = MapFanout(key, body, total, max(1, limit), self.order_keys[key], shape, leaf)
        self.fanouts[key] = fan
        if leaf is not None:
            self._item_places[key] = []
        if total == 0:
            self.composites_done.append(key)
            return
        for _ in range(min(fan.total, fan.limit)):
            self._open_item(fan)

    def _open_item(self, fan: MapFanout) -> None:
        i = fan.opened
        fan.opened = i + 1
        if fan.leaf is None:
            okey = fan.order_key + (i,)  # noqa: RUF005
            self.open_scope(item_prefix(fan.key, i), fan.body, okey, fan.key, i, fan.shape)
            return
        # One node: a place, and no scope until asked for (see _scope_of).
        node_id, index = fan.leaf
        key = f"{fan.key}[{i}]/{node_id}"  # item_prefix(fan.key, i) + node_id
        place = self.places[key] = Place(key, None, node_id, (), "ready", fan, i)
        self._item_places[fan.key].append(place)
        if self._heaped:  # what _make_ready does, inline, through the map's queue
            entry = (fan.order_key + (i, index), key)  # noqa: RUF005  # _order_key(place)
            if not fan.queue:
                heapq.heappush(self._heap, entry)
            fan.queue.append(entry)
        else:
            self._made_ready.append(place)

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

    def _make_ready(self, place: Place) -> None:
        self.places[place.key] = place
        if self._heaped:
            heapq.heappush(self._heap, (_order_key(place), place.key))
        else:
            self._made_ready.append(place)

    def _make_skippable(self, scope: Scope, node_id: str) -> None:
        key = scope.prefix + node_id
        okey = scope.order_key + (scope.graph.index[node_id],)  # noqa: RUF005
        self.places[key] = Place(key, scope, node_id, okey)
        self.skippable.append(key)

    def started(self, key: str) -> Node:
        """``node.started`` for ``key`` (a restart after a failure is allowed).

        Returns the node the instance runs.

        Raises:
            KeyError: the run has not reached ``key``.
        """
        place = self.places[key]
        place.status = "running"
        fan, scope = place.fan, place.scope
        graph = fan.body if fan is not None else scope.graph  # type: ignore[union-attr]
        return graph.nodes[place.node_id]

    def done(self, key: str, route: Iterable[str] | None, skipped: bool) -> None:
        """``key`` completed (taking the edges ``route`` allows) or was skipped."""
        self.done_at(self.places[key], route, skipped)

    def done_at(self, place: Place, route: Iterable[str] | None, skipped: bool) -> None:
        """:meth:`done` of the instance at ``place``."""
        if place.status == "done":
            return
        place.status = "done"
        scope = place.scope
        fan = place.fan
        if fan is not None:  # the node of a one-node map item: the item is done
            if scope is not None:
                scope.remaining = 0
            self.updates += 1
            fan.finished += 1
            if fan.opened < fan.total:
                self._open_item(fan)
            elif fan.finished == fan.total:
                self.composites_done.append(fan.key)
            return
        assert scope is not None
        graph = scope.graph
        edges = graph.out_edges[place.node_id]
        if len(edges) == 1 and not skipped and edges[0].when is None:
            # One unconditional edge (a chain's link): taken, and no sets to build.
            succ = edges[0].target
            self.updates += 1
            undecided = scope.undecided
            left = undecided[succ] - 1
            if left:
                undecided[succ] = left
                if scope.taken is None:
                    scope.taken = set()
                scope.taken.add(succ)
            else:
                del undecided[succ]
                okey = scope.order_key + (graph.index[succ],)  # noqa: RUF005
                key = scope.prefix + succ
                ready = self.places[key] = Place(key, scope, succ, okey)
                if self._heaped:  # what _make_ready does, inline
                    heapq.heappush(self._heap, (okey, key))
                else:
                    self._made_ready.append(ready)
        elif edges:
            succs = graph.successors[place.node_id]
            labels = None if route is None else set(route)
            taken_targets: set[str] = set()
            if not skipped:
                for edge in edges:
                    if edge.when is None or (labels is not None and edge.when in labels):
                        taken_targets.add(edge.target)
            undecided, taken = scope.undecided, scope.taken
            if taken is None:
                taken = scope.taken = set()
            prefix = scope.prefix
            for succ in succs:
                self.updates += 1
                if succ in taken_targets:
                    taken.add(succ)
                left = undecided[succ] - 1
                if left:
                    undecided[succ] = left
                    continue
                del undecided[succ]
                if succ in taken:
                    okey = scope.order_key + (graph.index[succ],)  # noqa: RUF005
                    self._make_ready(Place(prefix + succ, scope, succ, okey))
                else:
                    self._make_skippable(scope, succ)
        scope.remaining -= 1
        if not scope.remaining:
            self._scope_finished(scope)

    # -- queries --------------------------------------------------------------------

    def pop_ready(self) -> Place | None:
        """The place of the next ready instance in order, removed from the ready set."""
        heap = self._heap
        if not self._heaped:
            heap.extend((_order_key(p), p.key) for p in self._made_ready if p.status == "ready")
            heapq.heapify(heap)
            self._made_ready = []
            self._heaped = True
        places = self.places
        while heap:
            entry = heapq.heappop(heap)
            place = places[entry[1]]
            fan = place.fan
            if fan is not None and fan.queue and fan.queue[0] is entry:
                queue = fan.queue
                queue.popleft()
                if queue:  # the map's next item takes its place in the heap
                    heapq.heappush(heap, queue[0])
            if place.status == "ready":
                return place
        return None

    def ready_set(self) -> set[str]:
        """Every ready instance (including those waiting to be skipped)."""
        return {k for k, p in self.places.items() if p.status == "ready"}

    def node_at(self, key: str) -> Node:
        """The node an instance runs (what ``node_of`` finds, without making a scope)."""
        place = self.places[key]
        fan = place.fan
        graph = fan.body if fan is not None else place.scope.graph  # type: ignore[union-attr]
        return graph.nodes[place.node_id]

    def item_places(self, key: str) -> list[Place]:
        """The places of the items of one-node map ``key`` opened so far, in index order."""
        return self._item_places[key]

    def node_of(self, key: str) -> tuple[Scope, str]:
        """The scope and node id of an instance."""
        place = self.places[key]
        return _scope_of(place), place.node_id


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
