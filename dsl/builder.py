"""A graph builder: KIR from plain Python calls, edges inferred from data use.

Each call adds a node and returns a :class:`Ref` to its output; passing a ref as one of
another node's ``inputs`` binds it and adds the edge::

    b = GraphBuilder("brief")
    topic = b.input("topic")
    hits = b.tool(search, args={"query": topic})                 # args may hold refs
    summary = b.llm("summarize", model="mock:m", prompt="Summarize {hits} on {topic}",
                    inputs={"hits": hits, "topic": topic})
    words = b.code(count_words, inputs={"text": summary})        # "mymodule:count_words"
    size = b.router("size", labels=["long", "short"], condition="'long' if n > 200 else 'short'",
                    inputs={"n": words})
    b.llm("shorten", model="mock:m", prompt="Shorten {text}", inputs={"text": summary},
          after=size.when("long"))
    graph = b.build(output=summary)                              # a checked kir.Graph

Edges: a node gets an edge from each node it reads, unless that node is already
upstream of another node it reads or waits for; ``after=`` adds edges with no data
(``after=size.when("long")`` is the router's ``long`` branch, ``review.when("approve")``
a gate's decision). Leaving out the redundant edges matters: a node runs when *any* of
its incoming edges is taken, so ``shorten`` above must not get a direct, always-taken
edge from ``summarize`` beside its branch edge.

Node ids are the names given (``llm("summarize", ...)``); ``code`` and ``tool`` nodes
default to the function's or tool's name, with ``_2``, ``_3``... when it is taken. A
``code`` function must be importable as ``module:qualname`` (defined at module level);
one defined in ``__main__`` works only in the process that built the graph.

Mistakes raise :class:`~dsl.errors.DslError`: a name used twice or not a valid id, a
ref from another builder, a node reading a router's output off its branches, a
function that cannot be imported by name, and (from :meth:`GraphBuilder.build`) any KIR
check error, with its node and path.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel

from dsl.errors import DslError
from dsl.naming import unique
from dsl.tool import Tool, as_tool
from kir.check import check_graph
from kir.errors import GraphInvalid
from kir.schema import (
    AgentConfig,
    CodeConfig,
    Edge,
    GateConfig,
    Graph,
    LlmConfig,
    Node,
    NodeConfig,
    RetryPolicy,
    RouterConfig,
    ToolConfig,
    WaitConfig,
)

__all__ = ["GraphBuilder", "Ref", "Branch"]

_ID: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,127}\Z")
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FIELD: Final = re.compile(r"[A-Za-z0-9_]+\Z")
_DOTTED: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


@dataclass(frozen=True)
class Ref:
    """The run input or a node's output, or a field inside either.

    ``ref["summary"]`` (or ``ref[0]``) is a field of it. Refs are made by a
    :class:`GraphBuilder` and only mean something to that builder.
    """

    owner: GraphBuilder = field(repr=False, compare=False)
    node: str | None  # None: the run input
    path: tuple[str, ...] = ()

    def __getitem__(self, key: str | int) -> Ref:
        text = str(key)
        if not _FIELD.match(text):
            raise DslError(f"field {key!r} of {self.binding!r}: use letters, digits and _")
        return Ref(self.owner, self.node, (*self.path, text))

    @property
    def binding(self) -> str:
        """The KIR binding it stands for (``$input.topic``, ``summarize.text``)."""
        return ".".join((self.node if self.node is not None else "$input", *self.path))

    def when(self, label: str) -> Branch:
        """The branch of this router (or gate decision) labelled ``label``, for ``after=``."""
        if self.node is None or self.path:
            raise DslError(f"{self.binding!r} is not a router or gate; it has no branches")
        return Branch(self, label)


@dataclass(frozen=True)
class Branch:
    """An edge label leaving a router or gate: ``after=route.when("long")``."""

    ref: Ref
    label: str


After = Ref | Branch | Sequence[Ref | Branch]


@dataclass
class _Built:
    node: Node
    ancestors: frozenset[str]


class GraphBuilder:
    """Builds one :class:`kir.Graph`; see the module docstring.

    Args:
        id: the graph's id.
        description: the graph's description.
        inputs_schema: JSON Schema (or pydantic model) of the run input. Without it, the
            graph declares each ``input(field)`` used as a required property.
    """

    def __init__(
        self,
        id: str = "main",
        *,
        description: str = "",
        inputs_schema: Mapping[str, Any] | type[BaseModel] | None = None,
    ) -> None:
        if not _ID.match(id):
            raise DslError(f"graph id {id!r} is not valid: use letters, digits, _ and -")
        self.id = id
        self.description = description
        if isinstance(inputs_schema, type) and issubclass(inputs_schema, BaseModel):
            inputs_schema = inputs_schema.model_json_schema()
        self.inputs_schema = None if inputs_schema is None else dict(inputs_schema)
        self._nodes: dict[str, _Built] = {}
        self._edges: list[Edge] = []
        self._tools: dict[str, Tool[..., Any]] = {}
        self._input_fields: list[str] = []

    # -- refs ------------------------------------------------------------------------------

    def input(self, name: str | None = None) -> Ref:
        """The run input (``name=None``) or one field of it."""
        if name is None:
            return Ref(self, None)
        if not _NAME.match(name):
            raise DslError(f"run input name {name!r} is not valid: use letters, digits and _")
        if name not in self._input_fields:
            self._input_fields.append(name)
        return Ref(self, None, (name,))

    # -- nodes -----------------------------------------------------------------------------

    def llm(
        self,
        name: str,
        *,
        model: str,
        prompt: str,
        system: str | None = None,
        inputs: Mapping[str, Ref] | None = None,
        params: Mapping[str, Any] | None = None,
        output_schema: Mapping[str, Any] | type[BaseModel] | None = None,
        after: After = (),
        retry: RetryPolicy | None = None,
        timeout_s: float | None = None,
    ) -> Ref:
        """One model call; ``prompt`` and ``system`` are templates over ``inputs``."""
        return self._add(
            self._name(name),
            lambda: LlmConfig(
                model=model,
                prompt=prompt,
                system=system,
                params=dict(params or {}),
                output_schema=_schema(output_schema),
            ),
            inputs,
            after,
            retry,
            timeout_s,
        )

    def agent(
        self,
        name: str,
        *,
        model: str,
        instructions: str,
        tools: Sequence[Tool[..., Any] | Callable[..., Any]] = (),
        inputs: Mapping[str, Ref] | None = None,
        max_turns: int = 10,
        params: Mapping[str, Any] | None = None,
        output_schema: Mapping[str, Any] | type[BaseModel] | None = None,
        after: After = (),
        retry: RetryPolicy | None = None,
        timeout_s: float | None = None,
    ) -> Ref:
        """A tool-calling loop; ``instructions`` is a template over ``inputs``."""
        node_id = self._name(name)
        declared = [self._declare(t, node_id) for t in tools]
        return self._add(
            node_id,
            lambda: AgentConfig(
                model=model,
                instructions=instructions,
                tools=[t.name for t in declared],
                max_turns=max_turns,
                params=dict(params or {}),
                output_schema=_schema(output_schema),
            ),
            inputs,
            after,
            retry,
            timeout_s,
        )

    def tool(
        self,
        tool: Tool[..., Any] | Callable[..., Any],
        *,
        args: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Ref] | None = None,
        name: str | None = None,
        after: After = (),
        retry: RetryPolicy | None = None,
        timeout_s: float | None = None,
    ) -> Ref:
        """One call of ``tool``. Strings in ``args`` are templates over ``inputs``; a
        top-level arg that is a :class:`Ref` is bound as an input of the same name and
        passed through with its type."""
        t = as_tool(tool)
        node_id = self._name(name) if name is not None else self._derived(t.name)
        self._declare(t, node_id)
        merged = dict(inputs or {})
        rendered: dict[str, Any] = {}
        for key, value in (args or {}).items():
            if isinstance(value, Ref):
                if key in merged and merged[key] is not value:
                    raise DslError(
                        f"node {node_id!r}: arg {key!r} is a ref and also the name of "
                        "another input; name the input differently"
                    )
                if not _NAME.match(key):
                    raise DslError(
                        f"node {node_id!r}: arg {key!r} holds a ref but is not usable as an "
                        "input name; bind it in inputs= and write a '{name}' placeholder"
                    )
                merged[key] = value
                rendered[key] = "{" + key + "}"
            else:
                _no_nested_refs(value, f"node {node_id!r}: arg {key!r}")
                rendered[key] = value
        return self._add(
            node_id, lambda: ToolConfig(tool=t.name, args=rendered), merged, after, retry, timeout_s
        )

    def code(
        self,
        fn: Callable[..., Any],
        *,
        inputs: Mapping[str, Ref] | None = None,
        params: Mapping[str, Any] | None = None,
        name: str | None = None,
        after: After = (),
        retry: RetryPolicy | None = None,
        timeout_s: float | None = None,
    ) -> Ref:
        """A call of ``fn`` with the inputs as keyword arguments (plus ``ctx`` and
        ``params`` if it takes them). ``fn`` must be importable by name."""
        fn_name = getattr(fn, "__name__", type(fn).__name__)
        node_id = self._name(name) if name is not None else self._derived(fn_name)
        ref = _import_path(fn, node_id)
        return self._add(
            node_id,
            lambda: CodeConfig(function=ref, params=dict(params or {})),
            inputs,
            after,
            retry,
            timeout_s,
        )

    def gate(
        self,
        name: str,
        *,
        question: str,
        inputs: Mapping[str, Ref] | None = None,
        answer_schema: Mapping[str, Any] | type[BaseModel] | None = None,
        after: After = (),
    ) -> Ref:
        """Wait for a human: approve/reject, or an answer fitting ``answer_schema``."""
        return self._add(
            self._name(name),
            lambda: GateConfig(question=question, answer_schema=_schema(answer_schema)),
            inputs,
            after,
        )

    def router(
        self,
        name: str,
        *,
        labels: Sequence[str],
        condition: str | None = None,
        model: str | None = None,
        prompt: str | None = None,
        default: str | None = None,
        inputs: Mapping[str, Ref] | None = None,
        after: After = (),
    ) -> Ref:
        """Pick a branch by ``condition`` (an expression over ``inputs``) or by ``model``.

        Nodes go on a branch with ``after=router.when(label)``.
        """
        return self._add(
            self._name(name),
            lambda: RouterConfig(
                labels=list(labels),
                condition=condition,
                model=model,
                prompt=prompt,
                default=default,
            ),
            inputs,
            after,
        )

    def wait(
        self,
        name: str,
        *,
        seconds: float | None = None,
        signal: str | None = None,
        after: After = (),
    ) -> Ref:
        """A durable timer, or a wait for the named external signal."""
        return self._add(
            self._name(name), lambda: WaitConfig(seconds=seconds, signal=signal), None, after
        )

    # -- result ----------------------------------------------------------------------------

    def build(self, *, output: Ref | None = None) -> Graph:
        """The graph, checked with :func:`kir.check_graph`.

        Args:
            output: the run's output; by default a mapping of each sink node's output.

        Raises:
            DslError: the graph is empty or KIR finds errors (each with node and path).
        """
        if not self._nodes:
            raise DslError(f"graph {self.id!r} has no nodes")
        if output is not None:
            self._own(output, "output")
        schema = self.inputs_schema
        if schema is None and self._input_fields:
            names = sorted(self._input_fields)
            schema = {"type": "object", "properties": {n: {} for n in names}, "required": names}
        try:
            graph = Graph(
                id=self.id,
                description=self.description,
                inputs_schema=schema,
                nodes=[b.node for b in self._nodes.values()],
                edges=list(self._edges),
                tools=[self._tools[n].spec for n in sorted(self._tools)],
                output=None if output is None else output.binding,
            )
        except GraphInvalid as exc:
            raise DslError(str(exc)) from None
        errors = check_graph(graph)
        if errors:
            raise DslError(str(GraphInvalid(errors, graph=self.id)))
        return graph

    def tools(self) -> dict[str, Callable[..., Any]]:
        """Tool name -> callable, for the executor's ``tools=``."""
        return {name: t.bound() for name, t in self._tools.items()}

    # -- internals -------------------------------------------------------------------------

    def _name(self, name: str) -> str:
        if not isinstance(name, str) or not _ID.match(name):
            raise DslError(
                f"node name {name!r} is not a valid id: use letters, digits, _ and -, "
                "starting with a letter or _"
            )
        if name in self._nodes:
            raise DslError(f"node name {name!r} is already used in graph {self.id!r}")
        return name

    def _derived(self, base: str) -> str:
        slug = re.sub(r"[^A-Za-z0-9_-]+", "_", base).strip("_") or "node"
        if not slug[0].isalpha():
            slug = f"n_{slug}"
        return unique(slug[:100], self._nodes)

    def _declare(self, obj: Tool[..., Any] | Callable[..., Any], node_id: str) -> Tool[..., Any]:
        t = as_tool(obj)
        seen = self._tools.get(t.name)
        if seen is None:
            self._tools[t.name] = t
        elif seen.fn is not t.fn or seen.spec != t.spec:
            raise DslError(
                f"node {node_id!r}: tool name {t.name!r} is already declared for another "
                "function or with other settings; decorate each function once, name them apart"
            )
        return t

    def _own(self, ref: Ref, what: str) -> None:
        if not isinstance(ref, Ref):
            raise DslError(f"{what} must be a Ref made by this builder, not {ref!r}")
        if ref.owner is not self:
            raise DslError(f"{what}: {ref.binding!r} is a ref from another graph builder")

    def _add(
        self,
        node_id: str,
        make: Callable[[], NodeConfig],
        inputs: Mapping[str, Ref] | None,
        after: After,
        retry: RetryPolicy | None = None,
        timeout_s: float | None = None,
    ) -> Ref:
        what = f"node {node_id!r}"
        bound: dict[str, str] = {}
        reads: list[str] = []
        for key, ref in (inputs or {}).items():
            self._own(ref, f"{what} input {key!r}")
            bound[key] = ref.binding
            if ref.node is not None and ref.node not in reads:
                reads.append(ref.node)
        waits: list[tuple[str, str | None]] = []
        for item in [after] if isinstance(after, (Ref, Branch)) else list(after):
            ref, label = (item.ref, item.label) if isinstance(item, Branch) else (item, None)
            self._own(ref, f"{what} after=")
            if ref.node is None:
                raise DslError(f"{what}: after= takes node outputs, not the run input")
            if label is None and self._is_router(ref.node):
                raise DslError(
                    f"{what}: after={ref.node!r} needs a branch: after={ref.node}.when(label)"
                )
            if (ref.node, label) not in waits:
                waits.append((ref.node, label))
        upstream = [n for n, _ in waits] + reads
        edges = list(waits)
        for src in reads:
            if any(n == src for n, _ in waits):
                continue
            if any(src in self._nodes[o].ancestors for o in upstream if o != src):
                continue  # already upstream: a direct edge would only add a way in
            if self._is_router(src):
                raise DslError(
                    f"{what} reads router {src!r} but is on none of its branches: "
                    f"pass after={src}.when(label)"
                )
            edges.append((src, None))
        try:
            node = Node(
                id=node_id,
                config=make(),
                inputs=bound,
                retry=retry or RetryPolicy(),
                timeout_s=timeout_s,
            )
        except GraphInvalid as exc:
            problems = "; ".join(
                e.detail if e.path == "$" else f"{e.detail} (at config{e.path[1:]})"
                for e in exc.errors
            )
            raise DslError(f"{what}: {problems}") from None
        ancestors: set[str] = set()
        for src, label in edges:
            self._edges.append(Edge(src, node_id, when=label))
            ancestors |= self._nodes[src].ancestors | {src}
        self._nodes[node_id] = _Built(node, frozenset(ancestors))
        return Ref(self, node_id)

    def _is_router(self, node_id: str) -> bool:
        return isinstance(self._nodes[node_id].node.config, RouterConfig)


def _schema(value: Mapping[str, Any] | type[BaseModel] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, type) and issubclass(value, BaseModel):
        return value.model_json_schema()
    return dict(value)


def _no_nested_refs(value: Any, what: str) -> None:
    if isinstance(value, Ref):
        raise DslError(f"{what}: a ref may only be a top-level arg; bind it in inputs=")
    if isinstance(value, Mapping):
        for v in value.values():
            _no_nested_refs(v, what)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _no_nested_refs(v, what)


def _import_path(fn: Callable[..., Any], node_id: str) -> str:
    """``module:qualname`` of ``fn``, checked to import back to ``fn`` itself."""
    what = f"code node {node_id!r}"
    if isinstance(fn, Tool):
        fn = fn.fn
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise DslError(f"{what}: {fn!r} has no module and name to import it by")
    if not _DOTTED.match(qualname):
        raise DslError(
            f"{what}: {module}.{qualname} cannot be imported by name (a lambda, or a "
            "function defined inside another); define it at module level"
        )
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is not fn:
        raise DslError(
            f"{what}: {module}:{qualname} does not import back to this function; "
            "define it at module level under that name"
        )
    return f"{module}:{qualname}"
