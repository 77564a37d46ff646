"""The errors of KIR: every one says which node, where in the graph, and what was expected.

Each error carries a JSON path into the graph as it was written (``$.nodes[3].config.prompt``;
indexes are those of the authored lists, before compilation sorts them) and, when the path is
inside a node, that node's id. ``str(error)`` reads::

    node 'summarize' at $.nodes[3].config.prompt: template references {topic}, which is not
    an input of the node (inputs: text)

Validation never stops at the first problem: :func:`kir.check_graph` returns every error of a
graph, and :func:`kir.compile_graph` and the parsers raise :class:`GraphInvalid`, which holds
them all in ``errors``.
"""

from __future__ import annotations

from collections.abc import Sequence

from substrate.errors import FoldlineError

__all__ = [
    "KirError",
    "GraphInvalid",
    "SchemaError",
    "UnsupportedVersion",
    "DuplicateId",
    "UnknownReference",
    "UnknownTool",
    "UnknownSubgraph",
    "UnreachableNode",
    "CycleError",
    "BindingError",
    "TemplateError",
    "ExpressionError",
    "RouterLabelError",
    "MapOverError",
]


class KirError(FoldlineError):
    """A graph, or a piece of one, is not valid KIR.

    Attributes:
        detail: what is wrong and what was expected, without the location.
        path: JSON path of the offending value, ``$`` for the graph itself.
        node: id of the node the path is inside, when there is one.
    """

    def __init__(self, detail: str, *, path: str = "$", node: str | None = None) -> None:
        self.detail = detail
        self.path = path
        self.node = node
        where = f"at {path}" if node is None else f"node {node!r} at {path}"
        super().__init__(f"{where}: {detail}")

    def at(self, path: str, node: str | None = None) -> KirError:
        """A copy of this error, of the same class, located at ``path`` inside ``node``.

        Parsers of templates, expressions and bindings know nothing of the graph; the
        checker relocates their errors to where the text sits.
        """
        return type(self)(self.detail, path=path, node=node)

    def __reduce__(self) -> tuple[object, ...]:
        # Keep errors picklable (pytest-xdist, multiprocessing) despite keyword-only args.
        return (_rebuild, (type(self), self.detail, self.path, self.node))


def _rebuild(cls: type[KirError], detail: str, path: str, node: str | None) -> KirError:
    return cls(detail, path=path, node=node)


class GraphInvalid(KirError):
    """A graph (or a node or config built alone) has errors; ``errors`` lists every one,
    in path order.

    ``path`` and ``node`` are those of the first error, so code that only looks at one
    location still gets a precise one.
    """

    def __init__(
        self, errors: Sequence[KirError], *, graph: str | None = None, subject: str | None = None
    ) -> None:
        if not errors:
            raise ValueError("GraphInvalid needs at least one error")
        self.errors: tuple[KirError, ...] = tuple(errors)
        self.graph = graph
        self.subject = subject
        first = self.errors[0]
        name = subject or ("graph" if graph is None else f"graph {graph!r}")
        count = len(self.errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        detail = f"{name} is invalid ({count} error{'s' if count != 1 else ''}):\n{lines}"
        super().__init__(detail, path=first.path, node=first.node)

    def __str__(self) -> str:
        # The location is already on every listed line; repeating the first one reads oddly.
        return self.detail

    def at(self, path: str, node: str | None = None) -> KirError:
        return GraphInvalid(
            [e.at(path, node) for e in self.errors], graph=self.graph, subject=self.subject
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_invalid, (self.errors, self.graph, self.subject))


def _rebuild_invalid(
    errors: Sequence[KirError], graph: str | None, subject: str | None
) -> GraphInvalid:
    return GraphInvalid(errors, graph=graph, subject=subject)


class SchemaError(KirError):
    """A value does not fit the KIR schema: a missing field, a wrong type, bad JSON."""


class UnsupportedVersion(KirError):
    """The graph declares a KIR schema version this Foldline cannot read."""


class DuplicateId(KirError):
    """Two nodes (or tools, or embedded subgraphs) share an id."""


class UnknownReference(KirError):
    """An edge, binding, entry or output names a node the graph does not have."""


class UnknownTool(KirError):
    """A node uses a tool that neither the graph nor an enclosing graph declares."""


class UnknownSubgraph(KirError):
    """A ``subgraph`` node or a ``map`` body names a graph that is not embedded in scope."""


class UnreachableNode(KirError):
    """No path of edges leads from the graph's entry nodes to this node."""


class CycleError(KirError):
    """The edges (or subgraph references) form a cycle; KIR v1 rejects every cycle."""


class BindingError(KirError):
    """An input binding is malformed, or its source cannot feed the node."""


class TemplateError(KirError):
    """A prompt or argument template is malformed, or names an input the node lacks."""


class ExpressionError(KirError):
    """A router condition is not in the safe expression language, or fails to evaluate."""


class RouterLabelError(KirError):
    """Edge ``when`` labels and a router's declared labels do not agree."""


class MapOverError(KirError):
    """A ``map`` node's ``over`` does not bind a list."""
