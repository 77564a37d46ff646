"""The KIR schema: :class:`Graph`, :class:`Node`, :class:`Edge`, :class:`ToolSpec`, node configs.

These are pydantic models (frozen, unknown fields rejected): KIR's human-facing edge, and the
source of its JSON Schema. A node's ``kind`` is given by its config class in Python and by a
``"kind"`` key in JSON::

    Node(id="summarize", config=LlmConfig(model="openai:gpt-4o-mini", prompt="Sum up {text}"),
         inputs={"text": "fetch.body"})

    {"id": "summarize", "kind": "llm", "inputs": {"text": "fetch.body"},
     "config": {"model": "openai:gpt-4o-mini", "prompt": "Sum up {text}"}}

Constructing a model with bad data, :meth:`Graph.from_json` and :func:`parse_graph` raise
:class:`~kir.errors.GraphInvalid` (never a pydantic error), listing every problem with its
JSON path. Cross-references (edges, bindings, tools, templates...) are not checked here but by
:func:`kir.check_graph`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, Literal, TypeAlias

import msgspec
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from kir import _translate
from kir.errors import GraphInvalid, KirError, SchemaError, UnsupportedVersion
from substrate.codec import encode
from substrate.gcpause import gc_paused

__all__ = [
    "KIR_VERSION",
    "NODE_KINDS",
    "NodeKind",
    "RetryPolicy",
    "LlmConfig",
    "AgentConfig",
    "ToolConfig",
    "CodeConfig",
    "GateConfig",
    "RouterConfig",
    "MapConfig",
    "SubgraphConfig",
    "WaitConfig",
    "NodeConfig",
    "Node",
    "Edge",
    "ToolSpec",
    "Graph",
    "parse_graph",
    "parse_node",
]

#: The KIR schema version this code reads and writes.
KIR_VERSION: Final = 1

NodeKind: TypeAlias = Literal[
    "llm", "agent", "tool", "code", "gate", "router", "map", "subgraph", "wait"
]
NODE_KINDS: Final[tuple[str, ...]] = (
    "llm",
    "agent",
    "tool",
    "code",
    "gate",
    "router",
    "map",
    "subgraph",
    "wait",
)

# Ids appear inside bindings ("research.summary") and paths, hence no dots and no "$".
_ID = r"^[A-Za-z_][A-Za-z0-9_-]*$"
_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_TOOL = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
_MODEL = r"^[a-z][a-z0-9_-]*:\S+$"
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
_FUNC = rf"^{_DOTTED}:{_DOTTED}$"
_translate.PATTERN_HELP.update(
    {
        _ID: "an id (letters, digits, _ and -, not starting with a digit or -)",
        _NAME: "a name (letters, digits and _, not starting with a digit)",
        _TOOL: "a tool name (letters, digits, _ . and -, not starting with a digit)",
        _MODEL: "a model id 'provider:name', such as 'openai:gpt-4o-mini'",
        _FUNC: "a callable 'package.module:function'",
    }
)

Id = Annotated[str, Field(pattern=_ID, max_length=128)]
Name = Annotated[str, Field(pattern=_NAME, max_length=128)]
ToolName = Annotated[str, Field(pattern=_TOOL, max_length=128)]
ModelId = Annotated[str, Field(pattern=_MODEL, max_length=256)]
Label = Annotated[str, Field(min_length=1, max_length=128)]
Seconds = Annotated[float, Field(gt=0)]
# JSON values are checked (finite floats, JSON types only) by kir.check with exact paths.
JsonObject = dict[str, Any]


class _Model(BaseModel):
    """Base of every KIR model: frozen, unknown fields rejected, errors as KirErrors."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _invalid(exc, data, type(self)) from None

    # Without this marker pydantic would call this __init__ for every nested model it
    # validates, and an inner error would escape with a path relative to the inner model.
    # Marked, the override only runs for a direct ``Model(...)`` call: the outermost one.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


class RetryPolicy(_Model):
    """How often, and how patiently, a failed node is retried.

    The delay before attempt ``n + 1`` is ``initial_delay_s * multiplier ** (n - 1)`` for
    ``exponential`` backoff (``initial_delay_s`` for ``fixed``), capped at ``max_delay_s``.
    There is no jitter: delays are part of a replayable run.
    """

    max_attempts: int = Field(default=1, ge=1, le=100, description="1 means no retry")
    backoff: Literal["fixed", "exponential"] = "exponential"
    initial_delay_s: float = Field(default=1.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    max_delay_s: float = Field(default=60.0, ge=0)


class _Config(_Model):
    """Base of the per-kind configs. ``kind`` is the union tag; files write it on the node."""


class LlmConfig(_Config):
    """One model call. ``prompt`` and ``system`` are templates over the node's inputs."""

    kind: Literal["llm"] = "llm"
    model: ModelId
    prompt: str
    system: str | None = None
    params: JsonObject = Field(default_factory=dict, description="temperature, max_tokens...")
    output_schema: JsonObject | None = Field(default=None, description="JSON Schema of the output")


class AgentConfig(_Config):
    """A tool-calling loop; ``instructions`` is a template over the node's inputs."""

    kind: Literal["agent"] = "agent"
    model: ModelId
    instructions: str
    tools: list[ToolName] = Field(default_factory=list)
    max_turns: int = Field(default=10, ge=1, le=1000)
    params: JsonObject = Field(default_factory=dict)
    output_schema: JsonObject | None = None


class ToolConfig(_Config):
    """One call of a declared tool. Every string inside ``args`` is a template; a string
    that is exactly one placeholder (``"{items}"``) passes the input through unchanged."""

    kind: Literal["tool"] = "tool"
    tool: ToolName
    args: JsonObject = Field(default_factory=dict)


class CodeConfig(_Config):
    """A Python callable ``package.module:function``, given a context with the ports."""

    kind: Literal["code"] = "code"
    function: str = Field(pattern=_FUNC, max_length=256)
    params: JsonObject = Field(default_factory=dict)


class GateConfig(_Config):
    """Waits for a human. Without ``answer_schema`` the answer is approve/reject."""

    kind: Literal["gate"] = "gate"
    question: str
    answer_schema: JsonObject | None = None


class RouterConfig(_Config):
    """Picks the outgoing edges whose ``when`` is the chosen label.

    Either ``condition`` (a :mod:`kir.expr` expression over the inputs; a string result is
    the label, ``True``/``False`` are the labels ``"true"``/``"false"``) or ``model`` (with
    an optional ``prompt`` template) decides. ``default`` is taken when the result is not a
    label; without it that is a node failure.
    """

    kind: Literal["router"] = "router"
    labels: list[Label] = Field(min_length=1)
    condition: str | None = None
    model: ModelId | None = None
    prompt: str | None = None
    default: Label | None = None

    @model_validator(mode="after")
    def _one_decider(self) -> RouterConfig:
        if (self.condition is None) == (self.model is None):
            raise ValueError("set exactly one of 'condition' or 'model'")
        if self.prompt is not None and self.model is None:
            raise ValueError("'prompt' is only used when a 'model' decides")
        dupes = sorted({x for x in self.labels if self.labels.count(x) > 1})
        if dupes:
            raise ValueError(f"labels must be unique; repeated: {', '.join(dupes)}")
        if self.default is not None and self.default not in self.labels:
            raise ValueError(
                f"default {self.default!r} is not one of the labels ({', '.join(self.labels)})"
            )
        return self


class MapConfig(_Config):
    """Fans a body out over the list bound by ``over``; the output is the list of results
    in index order. The body is an embedded graph (``graph``, whose run input is
    ``{"item", "index"}`` plus the map node's inputs) or one inline ``node`` (whose inputs
    may bind ``$item`` and ``$index``)."""

    kind: Literal["map"] = "map"
    over: str
    graph: Id | None = None
    node: Node | None = None
    max_concurrency: int = Field(default=4, ge=1, le=10_000)

    @model_validator(mode="after")
    def _one_body(self) -> MapConfig:
        if (self.graph is None) == (self.node is None):
            raise ValueError("set exactly one body: 'graph' (a subgraph id) or 'node'")
        return self


class SubgraphConfig(_Config):
    """Runs an embedded graph; the node's inputs are its run input."""

    kind: Literal["subgraph"] = "subgraph"
    graph: Id


class WaitConfig(_Config):
    """A durable timer (``seconds``) or a wait for a named external ``signal``."""

    kind: Literal["wait"] = "wait"
    seconds: Seconds | None = None
    signal: Annotated[str, Field(pattern=_TOOL, max_length=128)] | None = None

    @model_validator(mode="after")
    def _one_trigger(self) -> WaitConfig:
        if (self.seconds is None) == (self.signal is None):
            raise ValueError("set exactly one of 'seconds' or 'signal'")
        return self


_CONFIGS: Final[dict[str, type[_Config]]] = {
    "llm": LlmConfig,
    "agent": AgentConfig,
    "tool": ToolConfig,
    "code": CodeConfig,
    "gate": GateConfig,
    "router": RouterConfig,
    "map": MapConfig,
    "subgraph": SubgraphConfig,
    "wait": WaitConfig,
}


def _is_mapping(value: object) -> bool:
    """``isinstance(value, Mapping)``, without the ABC's slow check for a dict (the common
    case: a node or config decoded from JSON, validated once per node of a graph)."""
    return type(value) is dict or isinstance(value, Mapping)


def _config_tag(value: Any) -> str | None:
    if _is_mapping(value):
        kind = value.get("kind")
        return kind if isinstance(kind, str) else None
    kind = getattr(value, "kind", None)
    return kind if isinstance(kind, str) else None


NodeConfig: TypeAlias = Annotated[
    Annotated[LlmConfig, Tag("llm")]
    | Annotated[AgentConfig, Tag("agent")]
    | Annotated[ToolConfig, Tag("tool")]
    | Annotated[CodeConfig, Tag("code")]
    | Annotated[GateConfig, Tag("gate")]
    | Annotated[RouterConfig, Tag("router")]
    | Annotated[MapConfig, Tag("map")]
    | Annotated[SubgraphConfig, Tag("subgraph")]
    | Annotated[WaitConfig, Tag("wait")],
    Discriminator(_config_tag),
]


class Node(_Model):
    """One step of a graph.

    Attributes:
        id: unique in its graph; letters, digits, ``_`` and ``-``.
        config: the kind's config; ``kind`` is the config's kind.
        inputs: input name -> binding (``"$input.topic"``, ``"research.summary"``; see
            :mod:`kir.binding`). Templates and conditions may read only these names.
        retry: retry policy; the default makes one attempt.
        timeout_s: wall-clock limit of one attempt, or ``None``.
    """

    id: Id
    config: NodeConfig
    inputs: dict[Name, str] = Field(default_factory=dict)
    retry: RetryPolicy = RetryPolicy()
    timeout_s: Seconds | None = None

    @property
    def kind(self) -> NodeKind:
        """The node kind, which is its config's kind."""
        return self.config.kind

    @model_validator(mode="before")
    @classmethod
    def _kind_into_config(cls, data: Any) -> Any:
        # JSON writes the kind on the node; the config union is tagged by the config's own
        # ``kind``. Move it there (and check that both agree when both are given).
        if not _is_mapping(data) or "kind" not in data:
            return data
        data = dict(data)
        kind = data.pop("kind")
        if not isinstance(kind, str) or kind not in _CONFIGS:
            raise ValueError(
                f"unknown node kind {_translate.describe(kind)}; "
                f"expected one of {', '.join(NODE_KINDS)}"
            )
        config = data.get("config")
        if _is_mapping(config):
            inner = config.get("kind", kind)
            if inner != kind:
                raise ValueError(
                    f"node kind {kind!r} disagrees with config kind {_translate.describe(inner)}"
                )
            data["config"] = {**config, "kind": kind}
        elif isinstance(config, _Config) and getattr(config, "kind", None) != kind:
            raise ValueError(f"node kind {kind!r} disagrees with its {type(config).__name__}")
        return data


class Edge(_Model):
    """``source -> target``. In JSON the ends are ``"from"`` and ``"to"``.

    Edges carry data and control: a node runs when its incoming edges have been decided.
    ``when`` is set exactly on the edges leaving a ``router`` and names one of its labels.
    """

    source: Id = Field(alias="from")
    target: Id = Field(alias="to")
    when: Label | None = None

    def __init__(
        self, source: str | None = None, target: str | None = None, /, **data: Any
    ) -> None:
        if source is not None:
            data["source"] = source
        if target is not None:
            data["target"] = target
        super().__init__(**data)

    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


class ToolSpec(_Model):
    """A tool that the graph's ``tool`` and ``agent`` nodes may call.

    Attributes:
        name: what nodes call it by.
        description: shown to models.
        args_schema: JSON Schema of the arguments object.
        requires_approval: a human gate opens before each call.
        idempotent: a call interrupted by a crash may be re-run; otherwise its fate is
            asked of a human.
        timeout_s: wall-clock limit of one call, or ``None``.
    """

    name: ToolName
    description: str = ""
    args_schema: JsonObject = Field(default_factory=lambda: {"type": "object"})
    requires_approval: bool = False
    idempotent: bool = False
    timeout_s: Seconds | None = None


class Graph(_Model):
    """An agent: nodes, edges, the tools they may use, and embedded subgraphs.

    Attributes:
        version: KIR schema version (:data:`KIR_VERSION`).
        id: the graph's id (subgraph nodes and map bodies refer to embedded graphs by it).
        description: free text.
        inputs_schema: JSON Schema of the run input; ``$input.x`` bindings must name one
            of its ``properties`` when it declares any.
        nodes: the nodes, in any order.
        edges: the edges, in any order.
        tools: tools declared for this graph and the graphs it embeds.
        subgraphs: embedded graphs, visible to this graph and to the graphs it embeds.
        entry: the nodes a run starts from; by default every node without incoming edges.
            When given, every node must be reachable from it.
        output: a binding (``"summarize"``, ``"summarize.text"``) giving the run's output;
            by default a mapping from each sink node's id to its output.
    """

    version: int = KIR_VERSION
    id: Id = "main"
    description: str = ""
    inputs_schema: JsonObject | None = None
    nodes: list[Node]
    edges: list[Edge] = Field(default_factory=list)
    tools: list[ToolSpec] = Field(default_factory=list)
    subgraphs: list[Graph] = Field(default_factory=list)
    entry: list[Id] | None = None
    output: str | None = None

    @classmethod
    def from_json(cls, text: str | bytes) -> Graph:
        """Parse a graph from JSON text.

        Raises:
            GraphInvalid: the text is not JSON or does not fit the schema; every error has
                a JSON path.
        """
        with gc_paused():  # one pause for the JSON values and the models (parse_graph)
            try:
                data = msgspec.json.decode(text)
            except msgspec.DecodeError as exc:
                raise GraphInvalid([SchemaError(f"invalid JSON: {exc}")]) from None
            except (TypeError, UnicodeDecodeError) as exc:
                raise GraphInvalid([SchemaError(f"invalid JSON input: {exc}")]) from None
            return parse_graph(data)

    def to_data(self) -> dict[str, Any]:
        """The graph as plain JSON values, in the file form (``kind`` on each node)."""
        data: dict[str, Any] = self.model_dump(mode="json")
        _kinds_onto_nodes(data)
        return data

    def canonical_data(self) -> dict[str, Any]:
        """The canonical form hashed by :func:`kir.compile_graph`.

        Fields that are ``None`` (all of which default to ``None``) are left out, and a
        node's ``kind`` stays inside its config, where the schema keeps it.
        """
        data: dict[str, Any] = self.model_dump(mode="json", exclude_none=True)
        return data

    def to_json(self, *, indent: int = 2) -> str:
        """The graph as JSON text with sorted keys (``indent=0``: compact)."""
        raw = encode(self.to_data())
        return (msgspec.json.format(raw, indent=indent) if indent else raw).decode()


MapConfig.model_rebuild()
Graph.model_rebuild()


def _kinds_onto_nodes(graph: dict[str, Any]) -> None:
    # The schema keeps a node's kind in its config (the union tag); files show it on the node.
    def move(node: dict[str, Any]) -> None:
        config = node["config"]
        node["kind"] = config.pop("kind")
        if isinstance(config.get("node"), dict):
            move(config["node"])

    for node in graph["nodes"]:
        move(node)
    for sub in graph["subgraphs"]:
        _kinds_onto_nodes(sub)


def parse_graph(data: Any) -> Graph:
    """Validate plain data (as decoded from JSON) into a :class:`Graph`.

    Raises:
        GraphInvalid: the data does not fit the schema, or declares a version other than
            :data:`KIR_VERSION`.
    """
    if isinstance(data, Mapping):
        version = data.get("version", KIR_VERSION)
        if version != KIR_VERSION or isinstance(version, bool):
            # Checked before the schema: a newer graph's other fields would only add noise.
            raise GraphInvalid([_unsupported(version, "$.version")])
    try:
        # A graph is O(nodes) small objects that survive, and no garbage cycles: the
        # collector, run by those allocations, would be a third of the parse.
        with gc_paused():
            return Graph.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, data, Graph) from None
    except RecursionError:
        raise GraphInvalid([SchemaError("graph is nested too deeply")]) from None


def parse_node(data: Any) -> Node:
    """Validate plain data into a :class:`Node` (paths are relative to the node)."""
    try:
        return Node.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, data, Node) from None


def _unsupported(version: object, path: str) -> KirError:
    return UnsupportedVersion(
        f"unsupported KIR version {_translate.describe(version)}; "
        f"this Foldline reads version {KIR_VERSION}",
        path=path,
    )


# ---- error translation hooks -------------------------------------------------------------


_GRAPH_CHILDREN: Final[dict[str, type[BaseModel]]] = {
    "nodes": Node,
    "edges": Edge,
    "tools": ToolSpec,
    "subgraphs": Graph,
}


def _child_model(cls: type[BaseModel], key: str, owner: Any) -> type[BaseModel] | None:
    if cls is Graph:
        return _GRAPH_CHILDREN.get(key)
    if cls is Node:
        if key == "retry":
            return RetryPolicy
        if key == "config":
            config = owner.get("config") if isinstance(owner, Mapping) else None
            tag = _config_tag(config) if config is not None else None
            if tag is None and isinstance(owner, Mapping):
                kind = owner.get("kind")
                tag = kind if isinstance(kind, str) else None
            if tag is None and isinstance(owner, Node):
                tag = owner.kind
            return _CONFIGS.get(tag) if tag is not None else None
    if cls is MapConfig and key == "node":
        return Node
    return None


def _fields(cls: type[BaseModel]) -> Sequence[str]:
    names = [f.alias or name for name, f in cls.model_fields.items() if not f.exclude]
    if cls is Node:
        names.insert(1, "kind")
    return names


def _invalid(exc: ValidationError, data: Any, root: type[BaseModel]) -> GraphInvalid:
    errors = _translate.translate(
        exc,
        data,
        root=root,
        child_model=_child_model,
        tags=lambda cls, key: cls is Node and key == "config",
        is_node=lambda cls: cls is Node,
        fields=_fields,
    )
    if not errors:  # pragma: no cover - pydantic always reports at least one error
        errors = [SchemaError(str(exc))]
    name = data.get("id") if isinstance(data, Mapping) else None
    name = name if isinstance(name, str) else None
    if root is Graph:
        return GraphInvalid(_translate.sort_errors(errors), graph=name)
    subject = f"node {name!r}" if root is Node and name else root.__name__
    return GraphInvalid(_translate.sort_errors(errors), subject=subject)
