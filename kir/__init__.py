"""KIR: Foldline's typed graph IR. Pure data: a schema, a checker, a compiler, no I/O.

A graph is written in Python (or JSON) and compiled before anything runs; every mistake is
reported at once, each with its node and a JSON path::

    from kir import Edge, Graph, LlmConfig, Node, ToolConfig, ToolSpec, compile_graph

    graph = Graph(
        id="brief",
        inputs_schema={"type": "object", "properties": {"topic": {"type": "string"}}},
        tools=[ToolSpec(name="search", args_schema={"type": "object"})],
        nodes=[
            Node(id="research", config=ToolConfig(tool="search", args={"q": "{topic}"}),
                 inputs={"topic": "$input.topic"}),
            Node(id="summarize",
                 config=LlmConfig(model="openai:gpt-4o-mini", prompt="Summarize: {hits}"),
                 inputs={"hits": "research"}),
        ],
        edges=[Edge("research", "summarize")],
    )
    compiled = compile_graph(graph)
    compiled.order            # ('research', 'summarize')
    compiled.graph_hash       # stable under reordering of lists and keys

Had the prompt said ``{topic}``, :func:`compile_graph` would raise :class:`GraphInvalid`::

    node 'summarize' at $.nodes[1].config.prompt: template references {topic}, which is
    not an input of the node (inputs: hits)

Graph files load with :meth:`Graph.from_json` and save with :meth:`Graph.to_json`; reading
and writing the file itself is left to the layers above. See docs/KIR.md.
"""

from kir.binding import Binding, parse_binding
from kir.check import check_graph
from kir.compile import (
    DEFAULT_PASSES,
    CompiledGraph,
    FillEntry,
    Pass,
    SortDeclarations,
    SortEdges,
    SortNodes,
    SortSets,
    compile_graph,
    load_compiled,
    normalize,
)
from kir.errors import (
    BindingError,
    CycleError,
    DuplicateId,
    ExpressionError,
    GraphInvalid,
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
from kir.expr import Expr, evaluate, parse_expr
from kir.jsonschema import kir_json_schema, kir_json_schema_text
from kir.schema import (
    KIR_VERSION,
    NODE_KINDS,
    AgentConfig,
    CodeConfig,
    Edge,
    GateConfig,
    Graph,
    LlmConfig,
    MapConfig,
    Node,
    NodeConfig,
    NodeKind,
    RetryPolicy,
    RouterConfig,
    SubgraphConfig,
    ToolConfig,
    ToolSpec,
    WaitConfig,
    parse_graph,
    parse_node,
)
from kir.template import Placeholder, Template, parse_template, render, render_value

__all__ = [
    # schema
    "KIR_VERSION",
    "NODE_KINDS",
    "NodeKind",
    "Graph",
    "Node",
    "Edge",
    "ToolSpec",
    "RetryPolicy",
    "NodeConfig",
    "LlmConfig",
    "AgentConfig",
    "ToolConfig",
    "CodeConfig",
    "GateConfig",
    "RouterConfig",
    "MapConfig",
    "SubgraphConfig",
    "WaitConfig",
    "parse_graph",
    "parse_node",
    # checking and compiling
    "check_graph",
    "compile_graph",
    "load_compiled",
    "normalize",
    "CompiledGraph",
    "Pass",
    "DEFAULT_PASSES",
    "FillEntry",
    "SortSets",
    "SortNodes",
    "SortEdges",
    "SortDeclarations",
    # bindings, templates, expressions
    "Binding",
    "parse_binding",
    "Template",
    "Placeholder",
    "parse_template",
    "render",
    "render_value",
    "Expr",
    "parse_expr",
    "evaluate",
    # JSON Schema
    "kir_json_schema",
    "kir_json_schema_text",
    # errors
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
