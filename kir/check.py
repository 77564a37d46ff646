"""Validation of a KIR graph: every rule, every error, with the node and a JSON path.

:func:`check_graph` returns all the errors of a graph (an empty list when it is valid). It
checks what the schema alone cannot, for the graph and each embedded subgraph:

1. the version is :data:`~kir.schema.KIR_VERSION`; the graph has at least one node;
2. node ids, tool names, subgraph ids and edges are unique;
3. edges, entry, output and bindings reference existing nodes;
4. ``when`` is set exactly on edges leaving a router, and names one of its labels, or on
   edges leaving a gate, and names one of its decisions (:func:`gate_decisions`);
5. there is no cycle (KIR v1 rejects every cycle: loop inside an ``agent`` node);
6. every node is reachable from the entry nodes;
7. bindings are well formed; a binding to a node reads an ancestor (a path of edges leads
   from it); ``$input.x`` names a declared run input; ``$item``/``$index`` only in map bodies;
8. templates are well formed and read only the node's inputs; router conditions are in the
   safe expression language and read only the node's inputs;
9. tools used by ``tool`` and ``agent`` nodes are declared in the graph or an enclosing one;
10. ``subgraph`` and ``map`` graph refs resolve to an embedded graph in scope, do not
    recurse, and the node binds every run input the subgraph requires;
11. a map's ``over`` binds a list when its type is known (a run input declared
    ``"type": "array"``, an output schema of type array, or another map's output);
    otherwise the executor checks it at run time;
12. free-form JSON (params, schemas, tool args) holds only finite JSON values.

Paths index the lists as authored (``$.nodes[3]`` is the fourth node written).
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx  # type: ignore[import-untyped,unused-ignore]

from kir._translate import describe, json_path, sort_errors
from kir.binding import Binding, parse_binding
from kir.errors import (
    BindingError,
    CycleError,
    DuplicateId,
    ExpressionError,
    KirError,
    MapOverError,
    RouterLabelError,
    SchemaError,
    TemplateError,
    UnknownReference,
    UnknownSubgraph,
    UnknownTool,
    UnreachableNode,
    UnsupportedVersion,
)
from kir.expr import parse_expr
from kir.schema import (
    KIR_VERSION,
    AgentConfig,
    CodeConfig,
    GateConfig,
    Graph,
    LlmConfig,
    MapConfig,
    Node,
    RouterConfig,
    SubgraphConfig,
    ToolConfig,
    ToolSpec,
)
from kir.template import parse_template, template_names
from substrate.gcpause import gc_paused

__all__ = ["check_graph"]

_MAX_SUGGEST = 20_000  # beyond this many candidates, "did you mean" costs more than it helps


@dataclass(slots=True)
class _Analysis:
    errors: list[KirError] = field(default_factory=list)
    graph_ids: dict[str, str] = field(default_factory=dict)  # path -> graph id
    refs: list[tuple[str, str, str]] = field(default_factory=list)  # (from, to, ref path)


def check_graph(graph: Graph) -> list[KirError]:
    """Every error of ``graph`` and its embedded subgraphs, in document order.

    An empty list means the graph is valid and :func:`kir.compile_graph` will accept it.
    """
    a = _Analysis()
    with gc_paused():
        _check(graph, "$", {}, {}, a)
        _check_recursion(a)
    return sort_errors(a.errors)


# ---- one graph ---------------------------------------------------------------------------


class _Lazy:
    """A path built only when an error needs it."""

    __slots__ = ("where",)

    def __init__(self, where: str | tuple[str, str, str]) -> None:
        self.where = where

    def __str__(self) -> str:
        w = self.where
        return w if isinstance(w, str) else json_path(w[1:], w[0])


@dataclass(slots=True)
class _Scope:
    """What a node of one graph can see."""

    g: Graph
    path: str
    nodes: dict[str, int]
    kinds: dict[str, Node]
    pred: dict[str, set[str]]
    index: dict[str, int]
    acyclic: bool
    tools: dict[str, ToolSpec]
    subs: dict[str, tuple[Graph, str]]
    declared_inputs: frozenset[str] | None
    errors: list[KirError]
    refs: list[tuple[str, str, str]]


def _check(
    g: Graph,
    path: str,
    outer_tools: dict[str, ToolSpec],
    outer_subs: dict[str, tuple[Graph, str]],
    a: _Analysis,
) -> None:
    errors = a.errors
    a.graph_ids[path] = g.id
    if g.version != KIR_VERSION:
        errors.append(
            UnsupportedVersion(
                f"unsupported KIR version {describe(g.version)}; "
                f"this Foldline reads version {KIR_VERSION}",
                path=f"{path}.version",
            )
        )
    if not g.nodes:
        errors.append(SchemaError("a graph needs at least one node", path=f"{path}.nodes"))
    _check_json(g.inputs_schema, f"{path}.inputs_schema", None, errors)

    tools = dict(outer_tools)
    seen_tools: dict[str, int] = {}
    for i, t in enumerate(g.tools):
        if t.name in seen_tools:
            errors.append(
                DuplicateId(
                    f"duplicate tool name {t.name!r} (first at {path}.tools[{seen_tools[t.name]}])",
                    path=f"{path}.tools[{i}].name",
                )
            )
            continue
        seen_tools[t.name] = i
        tools[t.name] = t
        _check_json(t.args_schema, f"{path}.tools[{i}].args_schema", None, errors)

    subs = dict(outer_subs)
    seen_subs: dict[str, int] = {}
    for i, sg in enumerate(g.subgraphs):
        if sg.id in seen_subs:
            errors.append(
                DuplicateId(
                    f"duplicate subgraph id {sg.id!r} "
                    f"(first at {path}.subgraphs[{seen_subs[sg.id]}])",
                    path=f"{path}.subgraphs[{i}].id",
                )
            )
            continue
        seen_subs[sg.id] = i
        subs[sg.id] = (sg, f"{path}.subgraphs[{i}]")

    nodes: dict[str, int] = {}
    by_id: dict[str, Node] = {}
    for i, n in enumerate(g.nodes):
        if n.id in nodes:
            errors.append(
                DuplicateId(
                    f"duplicate node id {n.id!r} (first at {path}.nodes[{nodes[n.id]}])",
                    path=f"{path}.nodes[{i}].id",
                    node=n.id,
                )
            )
            continue
        nodes[n.id] = i
        by_id[n.id] = n

    # Plain dicts for the common (valid) path; networkx only describes cycles, if any.
    pred: dict[str, set[str]] = {n: set() for n in nodes}
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    edge_at: dict[tuple[str, str], int] = {}
    seen_edges: dict[tuple[str, str, str | None], int] = {}
    for i, e in enumerate(g.edges):
        src, dst = e.source, e.target
        ok = src in nodes and dst in nodes
        if not ok:
            for end, value in (("from", src), ("to", dst)):
                if value not in nodes:
                    errors.append(
                        UnknownReference(
                            f"edge {end} {value!r} is not a node of graph {g.id!r}"
                            f"{_suggest(value, nodes)}",
                            path=f"{path}.edges[{i}].{end}",
                        )
                    )
        key = (src, dst, e.when)
        if key in seen_edges:
            errors.append(
                DuplicateId(
                    f"duplicate edge {src} -> {dst}"
                    f"{'' if e.when is None else f' when {e.when!r}'} "
                    f"(first at {path}.edges[{seen_edges[key]}])",
                    path=f"{path}.edges[{i}]",
                )
            )
            continue
        seen_edges[key] = i
        source_node = by_id.get(src)
        if source_node is not None and (
            e.when is not None or type(source_node.config) is RouterConfig
        ):
            _check_when(source_node, e.when, f"{path}.edges[{i}]", errors)
        if ok and dst not in succ[src]:
            succ[src].append(dst)
            pred[dst].add(src)
            edge_at[(src, dst)] = i

    index = _topo_index(pred, succ)
    acyclic = len(index) == len(nodes)
    if not acyclic:
        _report_cycles(succ, edge_at, path, errors)

    _check_entry(g, path, nodes, succ, pred, errors)

    declared: frozenset[str] | None = None
    if isinstance(g.inputs_schema, Mapping) and isinstance(
        g.inputs_schema.get("properties"), Mapping
    ):
        declared = frozenset(g.inputs_schema["properties"])
    scope = _Scope(
        g, path, nodes, by_id, pred, index, acyclic, tools, subs, declared, errors, a.refs
    )
    for n_id, i in nodes.items():
        _check_node(by_id[n_id], f"{path}.nodes[{i}]", n_id, scope, in_map=False)

    if g.output is not None:
        _check_binding_text(g.output, f"{path}.output", None, None, scope, in_map=False)

    for i, sg in enumerate(g.subgraphs):
        if seen_subs.get(sg.id) == i:
            _check(sg, f"{path}.subgraphs[{i}]", tools, subs, a)


def _check_when(src: Node, when: str | None, ep: str, errors: list[KirError]) -> None:
    config = src.config
    if type(config) is RouterConfig:
        labels = ", ".join(config.labels)
        if when is None:
            errors.append(
                RouterLabelError(
                    f"edge leaving router {src.id!r} needs a 'when' label (labels: {labels})",
                    path=ep,
                )
            )
        elif when not in config.labels:
            errors.append(
                RouterLabelError(
                    f"'when' {when!r} is not a label of router {src.id!r} (labels: {labels})",
                    path=f"{ep}.when",
                )
            )
    elif type(config) is GateConfig:
        decisions = gate_decisions(config)
        if when is not None and when not in decisions:
            errors.append(
                RouterLabelError(
                    f"'when' {when!r} is not a decision of gate {src.id!r} "
                    f"(decisions: {', '.join(decisions)})",
                    path=f"{ep}.when",
                )
            )
    elif when is not None:
        errors.append(
            RouterLabelError(
                f"only edges leaving a router or a gate may have 'when'; "
                f"{src.id!r} is a {src.kind} node",
                path=f"{ep}.when",
            )
        )


def gate_decisions(config: GateConfig) -> tuple[str, ...]:
    """The decisions a gate can route by: an edge leaving it may carry one as ``when``.

    An approval gate is approved or rejected; a question gate (one with an answer schema)
    is answered, or approved or rejected without an answer.
    """
    if config.answer_schema is None:
        return ("approve", "reject")
    return ("answer", "approve", "reject")


def _topo_index(pred: dict[str, set[str]], succ: dict[str, list[str]]) -> dict[str, int]:
    """Kahn's algorithm: a topological position per node; cyclic nodes get none."""
    waiting = {n: len(p) for n, p in pred.items()}
    ready = [n for n, k in waiting.items() if k == 0]
    index: dict[str, int] = {}
    while ready:
        n = ready.pop()
        index[n] = len(index)
        for m in succ[n]:
            waiting[m] -= 1
            if waiting[m] == 0:
                ready.append(m)
    return index


def _report_cycles(
    succ: dict[str, list[str]],
    edge_at: dict[tuple[str, str], int],
    path: str,
    errors: list[KirError],
) -> None:
    # One error per strongly connected component, naming one cycle through it.
    dag = nx.DiGraph()
    dag.add_edges_from((u, v) for u, vs in succ.items() for v in vs)
    for comp in nx.strongly_connected_components(dag):
        start = min(comp)
        if len(comp) == 1 and not dag.has_edge(start, start):
            continue
        cycle = [u for u, _ in nx.find_cycle(dag.subgraph(comp), source=start)]
        k = cycle.index(min(cycle))
        cycle = cycle[k:] + cycle[:k]
        # Point at the edge leaving the cycle's first node, the node the error names.
        closing = edge_at[(cycle[0], cycle[1 % len(cycle)])]
        shown = " -> ".join([*cycle, cycle[0]])
        errors.append(
            CycleError(
                f"cycle {shown}; KIR v1 rejects all cycles "
                "(loop inside an agent node, or use a map over a list)",
                path=f"{path}.edges[{closing}]",
                node=cycle[0],
            )
        )


def _check_entry(
    g: Graph,
    path: str,
    nodes: dict[str, int],
    succ: dict[str, list[str]],
    pred: dict[str, set[str]],
    errors: list[KirError],
) -> None:
    if g.entry is None:
        return  # every node without incoming edges is an entry; in a DAG all are reached
    starts: list[str] = []
    for i, e in enumerate(g.entry):
        ep = f"{path}.entry[{i}]"
        if e not in nodes:
            errors.append(
                UnknownReference(
                    f"entry {e!r} is not a node of graph {g.id!r}{_suggest(e, nodes)}", path=ep
                )
            )
        elif e in starts:
            errors.append(DuplicateId(f"entry {e!r} is listed twice", path=ep))
        elif pred[e]:
            errors.append(
                SchemaError(
                    f"entry node {e!r} has incoming edges; an entry must be where a run starts",
                    path=ep,
                    node=e,
                )
            )
        else:
            starts.append(e)
    seen = set(starts)
    queue = deque(starts)
    while queue:
        for v in succ[queue.popleft()]:
            if v not in seen:
                seen.add(v)
                queue.append(v)
    shown = ", ".join(g.entry) or "none"
    for n_id, i in nodes.items():
        if n_id not in seen:
            errors.append(
                UnreachableNode(
                    "unreachable: no path of edges leads here from the entry nodes "
                    f"(entry: {shown})",
                    path=f"{path}.nodes[{i}]",
                    node=n_id,
                )
            )


# ---- one node ----------------------------------------------------------------------------


def _check_node(n: Node, np: str, anchor: str, s: _Scope, *, in_map: bool) -> None:
    """Check node ``n`` at path ``np``; bindings to nodes must be ancestors of ``anchor``
    (the node itself, or the map node an inline body belongs to)."""
    errors = s.errors
    names = n.inputs.keys()
    for name, source in n.inputs.items():
        _check_binding_text(source, (np, "inputs", name), n.id, anchor, s, in_map=in_map)

    def template(text: str | None, where: str) -> None:
        if text is not None:
            _check_template(text, f"{np}.config.{where}", n.id, names, errors)

    c = n.config
    if type(c) is LlmConfig:
        template(c.prompt, "prompt")
        template(c.system, "system")
        _check_json(c.params, f"{np}.config.params", n.id, errors)
        _check_json(c.output_schema, f"{np}.config.output_schema", n.id, errors)
    elif type(c) is AgentConfig:
        template(c.instructions, "instructions")
        for j, t in enumerate(c.tools):
            _check_tool(t, f"{np}.config.tools[{j}]", n.id, s)
        _check_json(c.params, f"{np}.config.params", n.id, errors)
        _check_json(c.output_schema, f"{np}.config.output_schema", n.id, errors)
    elif type(c) is ToolConfig:
        _check_tool(c.tool, f"{np}.config.tool", n.id, s)
        _check_json(c.args, f"{np}.config.args", n.id, errors)
        for loc, text in _strings(c.args):
            _check_template(text, (f"{np}.config.args", loc), n.id, names, errors)
    elif type(c) is CodeConfig:
        _check_json(c.params, f"{np}.config.params", n.id, errors)
    elif type(c) is GateConfig:
        template(c.question, "question")
        _check_json(c.answer_schema, f"{np}.config.answer_schema", n.id, errors)
    elif type(c) is RouterConfig:
        template(c.prompt, "prompt")
        if c.condition is not None:
            _check_condition(c.condition, f"{np}.config.condition", n.id, names, errors)
    elif type(c) is MapConfig:
        _check_map(n, c, np, anchor, s, in_map=in_map)
    elif type(c) is SubgraphConfig:
        sub = _resolve(c.graph, f"{np}.config.graph", n.id, s)
        if sub is not None:
            _check_required_inputs(sub, set(names), np, n.id, errors)


def _check_binding_text(
    source: str,
    where: str | tuple[str, str, str],
    node: str | None,
    anchor: str | None,
    s: _Scope,
    *,
    in_map: bool,
) -> Binding | None:
    """Check one binding; ``where`` is its path, or (node path, "inputs", name), built into
    a path only on error (bindings are the most numerous thing checked)."""
    try:
        b = parse_binding(source)
    except KirError as exc:
        bp = _Lazy(where)
        s.errors.append(exc.at(str(bp), node))
        return None
    if b.source == "node" and b.node in s.nodes and anchor is not None:
        preds = s.pred.get(anchor)
        if preds is not None and b.node in preds:
            return b  # the common case, kept fast: a direct predecessor
    bp = _Lazy(where)
    if b.source == "input":
        if s.declared_inputs is not None and b.path and b.path[0] not in s.declared_inputs:
            shown = ", ".join(sorted(s.declared_inputs)) or "none"
            s.errors.append(
                BindingError(
                    f"run input {b.path[0]!r} is not declared in the graph's inputs_schema "
                    f"(declared: {shown})",
                    path=str(bp),
                    node=node,
                )
            )
    elif b.source in ("item", "index"):
        if not in_map:
            s.errors.append(
                BindingError(
                    f"${b.source} is only available to the inline body node of a map",
                    path=str(bp),
                    node=node,
                )
            )
    else:
        src = b.node
        assert src is not None
        if src not in s.nodes:
            s.errors.append(
                UnknownReference(
                    f"binding reads node {src!r}, which is not in graph {s.g.id!r}"
                    f"{_suggest(src, s.nodes)}",
                    path=str(bp),
                    node=node,
                )
            )
        elif anchor is not None and not _is_ancestor(src, anchor, s):
            what = "its own output" if src == anchor else f"node {src!r}"
            s.errors.append(
                BindingError(
                    f"binding reads {what}, which is not upstream of {anchor!r}: "
                    f"add edges so that a path leads from {src!r} to {anchor!r}",
                    path=str(bp),
                    node=node,
                )
            )
    return b


def _is_ancestor(u: str, v: str, s: _Scope) -> bool:
    if u == v:
        return False
    preds = s.pred.get(v, set())
    if u in preds:
        return True  # the common case: a direct edge
    if s.acyclic:
        # Any path u -> ... -> v only visits nodes ordered between them: prune the rest.
        lo = s.index[u]
        if lo >= s.index[v]:
            return False
        stack = [p for p in preds if s.index[p] > lo]
    else:
        lo = -1
        stack = list(preds)
    seen = set(stack)
    while stack:
        w = stack.pop()
        for p in s.pred[w]:
            if p == u:
                return True
            if p not in seen and (lo < 0 or s.index[p] > lo):
                seen.add(p)
                stack.append(p)
    return False


def _check_template(
    text: str,
    where: str | tuple[str, tuple[str | int, ...]],
    node: str,
    names: Any,
    errors: list[KirError],
) -> None:
    try:
        if template_names(text) <= names:
            return  # the common case: no error, no message built
        t = parse_template(text)
    except KirError as exc:
        errors.append(exc.at(_tpath(where), node))
        return
    shown = ", ".join(sorted(names)) or "none"
    reported: set[str] = set()
    for p in t.placeholders:
        if p.name not in names and p.name not in reported:
            reported.add(p.name)
            errors.append(
                TemplateError(
                    f"template references {{{p.name}}}, which is not an input of the node "
                    f"(inputs: {shown})",
                    path=_tpath(where),
                    node=node,
                )
            )


def _tpath(where: str | tuple[str, tuple[str | int, ...]]) -> str:
    return where if isinstance(where, str) else json_path(where[1], where[0])


def _check_condition(text: str, cp: str, node: str, names: Any, errors: list[KirError]) -> None:
    try:
        e = parse_expr(text)
    except KirError as exc:
        errors.append(exc.at(cp, node))
        return
    shown = ", ".join(sorted(names)) or "none"
    for name in sorted(e.names - set(names)):
        errors.append(
            ExpressionError(
                f"condition reads {name!r}, which is not an input of the node (inputs: {shown})",
                path=cp,
                node=node,
            )
        )


def _check_tool(name: str, tp: str, node: str, s: _Scope) -> None:
    if name not in s.tools:
        shown = ", ".join(sorted(s.tools)) or "none"
        s.errors.append(
            UnknownTool(
                f"tool {name!r} is not declared in the graph or an enclosing one "
                f"(declared: {shown})",
                path=tp,
                node=node,
            )
        )


def _resolve(ref: str, rp: str, node: str, s: _Scope) -> Graph | None:
    found = s.subs.get(ref)
    if found is None:
        shown = ", ".join(sorted(s.subs)) or "none"
        s.errors.append(
            UnknownSubgraph(
                f"subgraph {ref!r} is not embedded in this graph or an enclosing one "
                f"(embedded: {shown})",
                path=rp,
                node=node,
            )
        )
        return None
    sub, sub_path = found
    s.refs.append((s.path, sub_path, rp))
    return sub


def _check_required_inputs(
    sub: Graph, bound: set[str], np: str, node: str, errors: list[KirError]
) -> None:
    schema = sub.inputs_schema
    required = schema.get("required") if isinstance(schema, Mapping) else None
    if not isinstance(required, list):
        return
    for r in required:
        if isinstance(r, str) and r not in bound:
            errors.append(
                BindingError(
                    f"subgraph {sub.id!r} requires run input {r!r}; bind it in inputs",
                    path=f"{np}.inputs",
                    node=node,
                )
            )


def _check_map(n: Node, c: MapConfig, np: str, anchor: str, s: _Scope, *, in_map: bool) -> None:
    op = f"{np}.config.over"
    b = _check_binding_text(c.over, op, n.id, anchor, s, in_map=in_map)
    if b is not None:
        known = _list_type(b, s)
        if known is not None and known != "array":
            s.errors.append(
                MapOverError(
                    f"over must bind a list, but {c.over!r} is declared as {known!r}",
                    path=op,
                    node=n.id,
                )
            )
    if c.graph is not None:
        for reserved in ("item", "index"):
            if reserved in n.inputs:
                s.errors.append(
                    BindingError(
                        f"input name {reserved!r} is reserved in a map with a graph body "
                        "(each run of the body gets the element as 'item', its index as 'index')",
                        path=json_path(("inputs", reserved), np),
                        node=n.id,
                    )
                )
        sub = _resolve(c.graph, f"{np}.config.graph", n.id, s)
        if sub is not None:
            _check_required_inputs(sub, {*n.inputs, "item", "index"}, np, n.id, s.errors)
    elif c.node is not None:
        _check_node(c.node, f"{np}.config.node", anchor, s, in_map=True)


def _list_type(b: Binding, s: _Scope) -> str | None:
    """The declared JSON type of what ``b`` reads, when KIR can know it statically."""
    schema: Any
    if b.source == "input":
        schema = s.g.inputs_schema
    elif b.source == "node" and b.node in s.kinds:
        c = s.kinds[b.node].config
        if type(c) is MapConfig:
            return "array" if not b.path else None
        schema = c.output_schema if isinstance(c, (LlmConfig, AgentConfig)) else None
    else:
        return None
    for key in b.path:
        props = schema.get("properties") if isinstance(schema, Mapping) else None
        schema = props.get(key) if isinstance(props, Mapping) else None
    t = schema.get("type") if isinstance(schema, Mapping) else None
    return t if isinstance(t, str) else None


# ---- subgraph recursion ------------------------------------------------------------------


def _check_recursion(a: _Analysis) -> None:
    refs = nx.DiGraph()
    first_ref: dict[tuple[str, str], str] = {}
    for src, dst, rp in a.refs:
        refs.add_edge(src, dst)
        first_ref.setdefault((src, dst), rp)
    for comp in nx.strongly_connected_components(refs):
        start = min(comp)
        if len(comp) == 1 and not refs.has_edge(start, start):
            continue
        cycle = [u for u, _ in nx.find_cycle(refs.subgraph(comp), source=start)]
        shown = " -> ".join(a.graph_ids.get(p, p) for p in [*cycle, cycle[0]])
        a.errors.append(
            CycleError(
                f"subgraph recursion {shown}; a graph may not embed itself",
                path=first_ref[(cycle[-1], cycle[0])],
            )
        )


# ---- JSON values -------------------------------------------------------------------------


def _check_json(value: Any, vp: str, node: str | None, errors: list[KirError]) -> None:
    if not value:
        return
    stack: list[tuple[Any, Sequence[str | int]]] = [(value, ())]
    while stack:
        v, loc = stack.pop()
        if v is None or isinstance(v, (bool, int, str)):
            continue
        if isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                errors.append(
                    SchemaError(
                        f"expected a finite number, got {v!r}",
                        path=json_path(loc, vp),
                        node=node,
                    )
                )
        elif isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str):
                    errors.append(
                        SchemaError(
                            f"expected string keys, got key {describe(k)}",
                            path=json_path(loc, vp),
                            node=node,
                        )
                    )
                else:
                    stack.append((item, (*loc, k)))
        elif isinstance(v, (list, tuple)):
            stack.extend((item, (*loc, i)) for i, item in enumerate(v))
        else:
            errors.append(
                SchemaError(
                    f"expected a JSON value, got {describe(v)}",
                    path=json_path(loc, vp),
                    node=node,
                )
            )


def _strings(value: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string inside a JSON value, with its location."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        v, loc = stack.pop()
        if isinstance(v, str):
            yield loc, v
        elif isinstance(v, dict):
            stack.extend((item, (*loc, k)) for k, item in v.items() if isinstance(k, str))
        elif isinstance(v, (list, tuple)):
            stack.extend((item, (*loc, i)) for i, item in enumerate(v))


def _suggest(name: str, candidates: Mapping[str, object] | Callable[[], Sequence[str]]) -> str:
    pool = list(candidates() if callable(candidates) else candidates)
    if len(pool) > _MAX_SUGGEST:
        return ""
    close = difflib.get_close_matches(name, pool, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
