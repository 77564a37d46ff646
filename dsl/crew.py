"""Agents, tasks and crews, compiled to KIR.

Write a crew the way you think about the work, then :meth:`Crew.compile` it to a
:class:`kir.Graph` and run it on the executor (durable, gated, budgeted, replayable)::

    researcher = Agent("Researcher", "Find what is known about {topic}", model="mock:r",
                       tools=[search])
    writer = Agent("Writer", "Explain {topic} to {audience}", model="mock:w")
    research = Task("List the key facts about {topic}.", "Five bullet points",
                    agent=researcher, name="research")
    draft = Task("Write a short article from the facts.", "Three paragraphs",
                 agent=writer, name="draft", human_review=True)
    crew = Crew([researcher, writer], [research, draft])
    graph = crew.compile()          # a kir.Graph; the same crew always gives the same hash
    crew.run({"topic": "tides", "audience": "kids"}, store=SQLiteStore("runs.db"))

The lowering
------------

**Ids.** The graph's id is the crew's ``name``; an agent's id is its ``name`` or ``role``
and a task's its ``name``, slugified (``"Senior Researcher"`` -> ``senior_researcher``).
A task without a name is named after the first five words of its description, and if
that is taken, ``_2``, ``_3``... in crew order. Ids made by the lowering contain a
``-``, which slugs never do, so they cannot collide with a task's.

**A task** becomes an ``agent`` node with the task's id. Its ``instructions`` (the
system prompt) are the agent's persona (role, goal, backstory), the task's description
and expected output, and a line naming the task's inputs. Its inputs, which the
executor sends as the user message (a JSON object), are the crew inputs the texts use
(``{topic}`` binds ``$input.topic``) and the outputs of its context tasks (``research``
binds node ``research``). Its tools and ``max_turns`` are the agent's (or the task's
``tools``); its ``output_schema`` is the task's.

**human_review=True** adds, after the task's node ``T``, a ``gate`` ``T-review`` whose
question shows the output. What comes after the task hangs off the gate's ``approve``
edge. Its ``reject`` edge leads to ``T-rejected``, a ``code`` node that fails the run
with ``ReviewRejected: task 'T' was rejected in review by <who>: <note>``: a rejected
output never flows on.

**process="sequential"** (the default) chains the tasks in list order, each after the
previous one's end (its node, or its review gate). A task's context defaults to the
previous task; ``context=[...]`` replaces that (``context=[]``: none). Every context
task is upstream through the chain, so context adds no edges. The run's output is the
last task's output.

**process="parallel"** orders tasks only by context: a task waits for the tasks in
its ``context`` (by default none), so independent tasks run concurrently. A ``code``
node ``crew-join`` (``builtins:dict``) waits for every task that no other task
depends on and collects all outputs: the run's output is ``{task id: output}``.

**process="hierarchical"** chains the tasks like ``sequential``, but a task without an
``agent`` is assigned by the manager (``manager=Agent(...)`` or ``manager_model=``): a
model-decided ``router`` ``T-assign`` whose prompt describes the task and every crew
agent picks one agent id; an edge labelled with each agent's id leads to that agent's
version of the task, ``T-by-<agent>``; and a ``code`` node ``T``
(``dsl.runtime:assigned``) passes on the output of the one that ran. A task with an
``agent`` is not routed. The run's output is the last task's output.

Mistakes raise :class:`~dsl.errors.DslError` naming the agent or task: a task with no
agent (outside hierarchical), context naming a later task or one not in the crew, a
placeholder no crew input provides (when an ``inputs_schema`` or ``inputs`` is given),
duplicate names, a bad model id, an unknown process, a malformed template.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel

from dsl.errors import DslError
from dsl.naming import slugify, unique, words
from dsl.tool import Tool, as_tool
from executor.api import RunResult, aresume, arun
from kir.check import check_graph
from kir.errors import GraphInvalid, KirError
from kir.schema import (
    AgentConfig,
    CodeConfig,
    Edge,
    GateConfig,
    Graph,
    Node,
    RetryPolicy,
    RouterConfig,
)
from kir.template import parse_template
from substrate.ports import ModelPort
from substrate.stores.base import EventStore

__all__ = ["Agent", "Task", "Crew", "Process", "PROCESSES"]

Process = Literal["sequential", "parallel", "hierarchical"]
PROCESSES: Final[tuple[str, ...]] = get_args(Process)

ToolLike = Tool[..., Any] | Callable[..., Any]
Schema = Mapping[str, Any] | type[BaseModel]

_MODEL_ID: Final = re.compile(r"[a-z][a-z0-9_-]*:\S+\Z")
#: Words of the description a task without a name is named after.
_NAME_WORDS: Final = 5
#: The parallel join: a dict of every task's output, by task id.
JOIN_ID: Final = "crew-join"
JOIN_FUNCTION: Final = "builtins:dict"
ASSIGNED_FUNCTION: Final = "dsl.runtime:assigned"
REJECTED_FUNCTION: Final = "dsl.runtime:rejected"


def _model_id(model: str, who: str) -> None:
    if not isinstance(model, str) or not _MODEL_ID.match(model):
        raise DslError(
            f"{who}: model {model!r} is not a model id 'provider:name' "
            "(such as 'openai:gpt-4o-mini' or 'mock:m')"
        )


def _tool_list(value: object, who: str) -> tuple[Tool[..., Any], ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise DslError(f"{who}: tools must be a list of @tool functions")
    return tuple(as_tool(t) for t in value)


def _text(value: str) -> str:
    return inspect.cleandoc(value) if value else ""


@dataclass(frozen=True, eq=False)
class Agent:
    """Who does the work: a persona, a model, tools.

    Attributes:
        role: what the agent is ("Senior Researcher"); also its id unless ``name`` is set.
        goal: what it is after.
        backstory: more persona, optional.
        model: a model id ``provider:name``.
        tools: ``@tool`` functions (a plain function is made a tool with ``tool(fn)``).
        max_turns: bound on the agent's tool-calling loop for one task.
        params: model parameters (``temperature``, ``max_tokens``...).
        name: the agent's id, when the role should not be.

    Role, goal and backstory may hold ``{placeholders}`` filled from the crew inputs.
    """

    role: str
    goal: str = ""
    backstory: str = ""
    _: KW_ONLY
    model: str
    tools: Sequence[ToolLike] = ()
    max_turns: int = 10
    params: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.role, str) or not self.role.strip():
            raise DslError("an agent needs a role (a non-empty string)")
        who = f"agent {self.role!r}"
        _model_id(self.model, who)
        if not isinstance(self.max_turns, int) or not 1 <= self.max_turns <= 1000:
            raise DslError(f"{who}: max_turns must be an integer from 1 to 1000")
        object.__setattr__(self, "tools", _tool_list(self.tools, who))
        object.__setattr__(self, "params", dict(self.params))

    @property
    def id(self) -> str:
        """The agent's id in compiled graphs (slug of ``name`` or ``role``)."""
        return slugify(self.name or self.role, fallback="agent")


@dataclass(frozen=True, eq=False)
class Task:
    """A piece of work for an agent.

    Attributes:
        description: what to do; ``{placeholders}`` are filled from the crew inputs.
        expected_output: what a good result looks like.
        agent: who does it (in a hierarchical crew, may be left to the manager).
        context: tasks (listed earlier in the crew) whose outputs this task reads. By
            default: the previous task in a sequential or hierarchical crew, none in a
            parallel one.
        human_review: a human approves the output before anything uses it; a rejection
            fails the run.
        output_schema: a pydantic model or a JSON Schema: the output is that JSON.
        tools: tools for this task instead of the agent's.
        name: the task's id (slugified); by default the first words of the description.
        retry: retry policy of the task's agent node.
        timeout_s: wall-clock limit of one attempt of the task.
    """

    description: str
    expected_output: str = ""
    _: KW_ONLY
    agent: Agent | None = None
    context: Sequence[Task] | None = None
    human_review: bool = False
    output_schema: Schema | None = None
    tools: Sequence[ToolLike] | None = None
    name: str | None = None
    retry: RetryPolicy | None = None
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.description, str) or not self.description.strip():
            raise DslError("a task needs a description (a non-empty string)")
        who = f"task {self.name or words(self.description, _NAME_WORDS)!r}"
        if self.agent is not None and not isinstance(self.agent, Agent):
            raise DslError(f"{who}: agent must be an Agent, not a {type(self.agent).__name__}")
        if self.context is not None:
            if isinstance(self.context, Task) or not isinstance(self.context, Sequence):
                raise DslError(f"{who}: context must be a list of tasks")
            for c in self.context:
                if not isinstance(c, Task):
                    raise DslError(f"{who}: context holds a {type(c).__name__}, not a Task")
            object.__setattr__(self, "context", tuple(self.context))
        if self.tools is not None:
            object.__setattr__(self, "tools", _tool_list(self.tools, who))
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise DslError(f"{who}: timeout_s must be a positive number of seconds")
        if self.output_schema is not None:
            _schema(self.output_schema, f"{who}: output_schema")


def _schema(value: Schema, what: str) -> dict[str, Any]:
    if isinstance(value, type) and issubclass(value, BaseModel):
        return value.model_json_schema()
    if isinstance(value, Mapping):
        return copy.deepcopy(dict(value))
    raise DslError(f"{what} must be a pydantic model class or a JSON Schema dict")


@dataclass(frozen=True, eq=False)
class Crew:
    """Agents and the tasks they do, in a process.

    Attributes:
        agents: every agent a task may use.
        tasks: the tasks, in order.
        process: ``"sequential"``, ``"parallel"`` or ``"hierarchical"`` (see the module
            docstring for how each compiles).
        name: the graph id (slugified).
        description: the graph's description.
        manager: in a hierarchical crew, the agent whose persona and model assign tasks.
        manager_model: or just the model that assigns them.
        inputs_schema: JSON Schema (or pydantic model) of the crew inputs. Without it the
            compiled graph declares one required property (any JSON value) per placeholder.
    """

    agents: Sequence[Agent]
    tasks: Sequence[Task]
    process: Process = "sequential"
    _: KW_ONLY
    name: str = "crew"
    description: str = ""
    manager: Agent | None = None
    manager_model: str | None = None
    inputs_schema: Schema | None = None

    def __post_init__(self) -> None:
        who = f"crew {self.name!r}"
        if self.process not in PROCESSES:
            raise DslError(
                f"{who}: unknown process {self.process!r}; expected one of {', '.join(PROCESSES)}"
            )
        for attr, kind in (("agents", Agent), ("tasks", Task)):
            items = getattr(self, attr)
            if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
                raise DslError(f"{who}: {attr} must be a list")
            for item in items:
                if not isinstance(item, kind):
                    raise DslError(
                        f"{who}: {attr} must hold {kind.__name__}s, not a {type(item).__name__}"
                    )
            object.__setattr__(self, attr, tuple(items))
        if self.manager_model is not None:
            _model_id(self.manager_model, f"{who}: manager_model")

    def compile(
        self, inputs_schema: Schema | None = None, *, inputs: Mapping[str, Any] | None = None
    ) -> Graph:
        """Lower the crew to a KIR graph (checked with :func:`kir.check_graph`).

        Args:
            inputs_schema: JSON Schema (or pydantic model) of the crew inputs; overrides
                the crew's. When it declares properties, every placeholder must be one.
            inputs: example inputs: every placeholder must be one of their keys. They only
                check the crew; the graph does not depend on them.

        Raises:
            DslError: the crew has a mistake; the message names the agent or task.
        """
        schema = inputs_schema if inputs_schema is not None else self.inputs_schema
        return _Lowering(self, schema, inputs).graph()

    def tools(self) -> dict[str, Callable[..., Any]]:
        """Tool name -> callable, for the executor's ``tools=`` (each validates its args)."""
        return {name: t.bound() for name, t in _collect_tools(self).items()}

    async def arun(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        store: EventStore,
        model: ModelPort | None = None,
        **options: Any,
    ) -> RunResult:
        """Compile (checking ``inputs``) and run on the executor with the crew's tools.

        ``options`` are passed to :func:`executor.arun` (``run_id``, ``budget``,
        ``clock``...).
        """
        graph = self.compile(inputs=inputs)
        return await arun(
            graph, dict(inputs or {}), store=store, model=model, tools=self.tools(), **options
        )

    def run(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        store: EventStore,
        model: ModelPort | None = None,
        **options: Any,
    ) -> RunResult:
        """Sync wrapper of :meth:`arun`."""
        return asyncio.run(self.arun(inputs, store=store, model=model, **options))

    async def aresume(
        self, run_id: str, *, store: EventStore, model: ModelPort | None = None, **options: Any
    ) -> RunResult:
        """Resume a run of this crew (after an approval, or a crash) with the crew's tools."""
        return await aresume(run_id, store=store, model=model, tools=self.tools(), **options)

    def resume(
        self, run_id: str, *, store: EventStore, model: ModelPort | None = None, **options: Any
    ) -> RunResult:
        """Sync wrapper of :meth:`aresume`."""
        return asyncio.run(self.aresume(run_id, store=store, model=model, **options))


# ---- tools -------------------------------------------------------------------------------


def _collect_tools(crew: Crew) -> dict[str, Tool[..., Any]]:
    """Every tool of the crew's agents and tasks, by name; one name, one function."""
    found: dict[str, Tool[..., Any]] = {}
    owners: dict[str, str] = {}
    sources: list[tuple[str, Sequence[ToolLike]]] = [
        (f"agent {a.id!r}", a.tools) for a in crew.agents
    ]
    sources += [
        (f"task {t.name or words(t.description, _NAME_WORDS)!r}", t.tools)
        for t in crew.tasks
        if t.tools is not None
    ]
    for owner, tools in sources:
        for t in tools:
            assert isinstance(t, Tool)
            seen = found.get(t.name)
            if seen is None:
                found[t.name] = t
                owners[t.name] = owner
            elif seen.fn is not t.fn:
                raise DslError(
                    f"{owner}: tool name {t.name!r} is already used by another function "
                    f"({_qualname(seen.fn)}, in {owners[t.name]}); give one @tool(name=...)"
                )
            elif seen.spec != t.spec:
                raise DslError(
                    f"{owner}: tool {t.name!r} is declared twice with different settings "
                    f"(also in {owners[t.name]}); decorate the function once and share it"
                )
    return found


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


# ---- lowering ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Text:
    """One templated text of the crew, and who it belongs to (for messages)."""

    owner: str  # "task 'research'", "agent 'writer'", "the manager"
    field: str  # "description", "goal"...
    source: str
    names: frozenset[str]


class _Lowering:
    """One crew being compiled: ids first, then checks, then nodes and edges."""

    def __init__(self, crew: Crew, schema: Schema | None, inputs: Mapping[str, Any] | None):
        self.crew = crew
        self.gid = slugify(crew.name, fallback="crew")
        self.who = f"crew {self.gid!r}"
        self.schema = None if schema is None else _schema(schema, f"{self.who}: inputs_schema")
        self.inputs = inputs
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.used: set[str] = set()  # placeholders used anywhere

    # -- ids and structure -----------------------------------------------------------------

    def _agent_ids(self) -> dict[int, str]:
        ids: dict[int, str] = {}
        by_id: dict[str, Agent] = {}
        for a in self.crew.agents:
            if id(a) in ids:
                raise DslError(f"agent {a.id!r} is listed twice in the crew's agents")
            if a.id in by_id:
                raise DslError(
                    f"agents {by_id[a.id].role!r} and {a.role!r} both get the id {a.id!r}; "
                    "give one a different name="
                )
            ids[id(a)] = a.id
            by_id[a.id] = a
        return ids

    def _task_ids(self) -> dict[int, str]:
        tasks = self.crew.tasks
        if not tasks:
            raise DslError(f"{self.who} has no tasks")
        seen: set[int] = set()
        for t in tasks:
            if id(t) in seen:
                shown = t.name or words(t.description, _NAME_WORDS)
                raise DslError(f"task {shown!r} is listed twice in the crew's tasks")
            seen.add(id(t))
        explicit: dict[str, Task] = {}
        for t in tasks:
            if t.name is not None:
                tid = slugify(t.name, fallback="task")
                if tid in explicit:
                    raise DslError(
                        f"tasks {explicit[tid].name!r} and {t.name!r} both get the id {tid!r}; "
                        "rename one"
                    )
                explicit[tid] = t
        taken = set(explicit)
        ids: dict[int, str] = {}
        for t in tasks:
            if t.name is not None:
                ids[id(t)] = slugify(t.name, fallback="task")
            else:
                tid = unique(slugify(words(t.description, _NAME_WORDS), fallback="task"), taken)
                taken.add(tid)
                ids[id(t)] = tid
        return ids

    def _contexts(self, tids: dict[int, str]) -> dict[int, list[Task]]:
        position = {id(t): i for i, t in enumerate(self.crew.tasks)}
        chained = self.crew.process != "parallel"
        out: dict[int, list[Task]] = {}
        for i, t in enumerate(self.crew.tasks):
            tid = tids[id(t)]
            if t.context is None:
                ctx = [self.crew.tasks[i - 1]] if chained and i else []
            else:
                ctx = []
                for c in t.context:
                    where = position.get(id(c))
                    shown = c.name or words(c.description, _NAME_WORDS)
                    if where is None:
                        raise DslError(
                            f"task {tid!r}: context task {shown!r} is not in the crew's tasks"
                        )
                    if where == i:
                        raise DslError(f"task {tid!r}: lists itself as its context")
                    if where > i:
                        raise DslError(
                            f"task {tid!r}: context task {tids[id(c)]!r} comes later in the "
                            "crew; a task can only use the output of a task listed before it"
                        )
                    if c not in ctx:
                        ctx.append(c)
            out[id(t)] = ctx
        return out

    # -- templates -------------------------------------------------------------------------

    def _texts(self, owner: str, fields: Sequence[tuple[str, str]]) -> list[_Text]:
        found = []
        for name, source in fields:
            if not source:
                continue
            try:
                names = parse_template(source).names
            except KirError as exc:
                raise DslError(f"{owner}: {name}: {exc.detail}") from None
            found.append(_Text(owner, name, source, names))
        return found

    def _agent_texts(self, a: Agent) -> list[_Text]:
        return self._texts(
            f"agent {a.id!r}",
            [("role", _text(a.role)), ("goal", _text(a.goal)), ("backstory", _text(a.backstory))],
        )

    def _check_inputs(self, texts: Sequence[_Text]) -> None:
        sources: list[tuple[str, set[str]]] = []
        props = self.schema.get("properties") if self.schema is not None else None
        if isinstance(props, Mapping):
            sources.append(("the inputs_schema", set(props)))
        if self.inputs is not None:
            sources.append(("the inputs given", set(self.inputs)))
        for t in texts:
            for name in sorted(t.names):
                for _what, available in sources:
                    if name not in available:
                        shown = ", ".join(sorted(available)) or "none"
                        raise DslError(
                            f"{t.owner}: placeholder {{{name}}} in its {t.field} is not a crew "
                            f"input (inputs: {shown})"
                        )

    # -- nodes -----------------------------------------------------------------------------

    def graph(self) -> Graph:
        crew = self.crew
        aids = self._agent_ids()
        tids = self._task_ids()
        contexts = self._contexts(tids)
        tools = _collect_tools(crew)
        hierarchical = crew.process == "hierarchical"
        manager_model = self._manager_model() if hierarchical else None

        all_texts: list[_Text] = []
        plans: list[_Plan] = []
        for t in crew.tasks:
            tid = tids[id(t)]
            if t.agent is None and not hierarchical:
                raise DslError(
                    f"task {tid!r}: no agent; give it agent=... "
                    "(or use process='hierarchical', where a manager assigns it)"
                )
            if t.agent is not None and id(t.agent) not in aids:
                raise DslError(
                    f"task {tid!r}: its agent {t.agent.id!r} is not in the crew's agents"
                )
            if t.agent is None and not crew.agents:
                raise DslError(f"{self.who} has no agents for the manager to assign tasks to")
            task_texts = self._texts(
                f"task {tid!r}",
                [
                    ("description", _text(t.description)),
                    ("expected output", _text(t.expected_output)),
                ],
            )
            candidates = [t.agent] if t.agent is not None else list(crew.agents)
            ctx_ids = [tids[id(c)] for c in contexts[id(t)]]
            plan = _Plan(t, tid, task_texts, ctx_ids, candidates, routed=t.agent is None)
            texts = [*task_texts, *(x for a in candidates for x in self._agent_texts(a))]
            if plan.routed:
                texts += self._manager_texts()
            for x in texts:
                for name in sorted(x.names):
                    if name in ctx_ids:
                        raise DslError(
                            f"{x.owner}: placeholder {{{name}}} in its {x.field} has the name "
                            f"of context task {name!r}; rename the placeholder or the task"
                        )
            all_texts += texts
            plans.append(plan)
        self._check_inputs(all_texts)
        self.used = {n for x in all_texts for n in x.names}

        for plan in plans:
            self._task_nodes(plan, aids, manager_model)
        ends = {p.tid: p.end for p in plans}
        if crew.process == "parallel":
            for p in plans:
                for c in p.context:
                    self._edge(ends[c], p.start)
            depended = {c for p in plans for c in p.context}
            self.nodes.append(
                Node(
                    id=JOIN_ID,
                    config=CodeConfig(function=JOIN_FUNCTION),
                    inputs={p.tid: p.tid for p in plans},
                )
            )
            for p in plans:
                if p.tid not in depended:
                    self._edge(p.end, JOIN_ID)
            output = JOIN_ID
        else:
            for prev, p in itertools.pairwise(plans):
                self._edge(prev.end, p.start)
            output = plans[-1].tid

        try:
            graph = Graph(
                id=self.gid,
                description=crew.description,
                inputs_schema=self.schema if self.schema is not None else self._inferred(),
                nodes=self.nodes,
                edges=self.edges,
                tools=[tools[name].spec for name in sorted(tools)],
                output=output,
            )
        except GraphInvalid as exc:
            raise DslError(f"{self.who} lowers to an invalid graph: {exc}") from None
        errors = check_graph(graph)
        if errors:
            listed = "\n".join(f"  - {e}" for e in errors)
            raise DslError(f"{self.who} lowers to an invalid graph:\n{listed}")
        return graph

    def _inferred(self) -> dict[str, Any] | None:
        if not self.used:
            return None
        names = sorted(self.used)
        return {"type": "object", "properties": {n: {} for n in names}, "required": names}

    def _manager_model(self) -> str:
        crew = self.crew
        if crew.manager is None and crew.manager_model is None:
            raise DslError(
                f"{self.who}: process 'hierarchical' needs a manager "
                "(manager=Agent(...) or manager_model='provider:name')"
            )
        if crew.manager is not None:
            if crew.manager.tools:
                raise DslError(
                    f"manager {crew.manager.id!r} has tools; a manager only assigns tasks "
                    "(give the tools to the crew's agents)"
                )
            return crew.manager_model or crew.manager.model
        assert crew.manager_model is not None
        return crew.manager_model

    def _manager_texts(self) -> list[_Text]:
        m = self.crew.manager
        if m is None:
            return []
        return self._texts(
            "the manager",
            [("role", _text(m.role)), ("goal", _text(m.goal)), ("backstory", _text(m.backstory))],
        )

    def _edge(self, source: tuple[str, str | None], target: str) -> None:
        edge = Edge(source[0], target, when=source[1])
        if edge not in self.edges:
            self.edges.append(edge)

    def _inputs(self, texts: Sequence[_Text], ctx_ids: Sequence[str]) -> dict[str, str]:
        names = sorted({n for x in texts for n in x.names})
        inputs = {n: f"$input.{n}" for n in names}
        inputs.update({c: c for c in ctx_ids})
        return inputs

    def _agent_node(self, node_id: str, plan: _Plan, a: Agent) -> Node:
        t = plan.task
        texts = [*self._agent_texts(a), *plan.texts]
        inputs = self._inputs(texts, plan.context)
        tools = t.tools if t.tools is not None else a.tools
        return Node(
            id=node_id,
            config=AgentConfig(
                model=a.model,
                instructions=_instructions(a, t, inputs, plan.context),
                tools=[x.name for x in tools if isinstance(x, Tool)],
                max_turns=a.max_turns,
                params=dict(a.params),
                output_schema=None if t.output_schema is None else _schema(t.output_schema, ""),
            ),
            inputs=inputs,
            retry=t.retry or RetryPolicy(),
            timeout_s=t.timeout_s,
        )

    def _task_nodes(self, plan: _Plan, aids: dict[int, str], manager_model: str | None) -> None:
        tid = plan.tid
        if not plan.routed:
            self.nodes.append(self._agent_node(tid, plan, plan.agents[0]))
        else:
            assert manager_model is not None
            assign = f"{tid}-assign"
            texts = [*self._manager_texts(), *plan.texts]
            for a in plan.agents:
                texts += [x for x in self._agent_texts(a) if x.field in ("role", "goal")]
            self.nodes.append(
                Node(
                    id=assign,
                    config=RouterConfig(
                        labels=[aids[id(a)] for a in plan.agents],
                        model=manager_model,
                        prompt=self._manager_prompt(plan),
                    ),
                    inputs=self._inputs(texts, ()),
                )
            )
            merge_inputs = {"assignee": assign}
            for a in plan.agents:
                aid = aids[id(a)]
                branch = f"{tid}-by-{aid}"
                self.nodes.append(self._agent_node(branch, plan, a))
                self._edge((assign, aid), branch)
                merge_inputs[f"by_{aid}"] = branch
            self.nodes.append(
                Node(id=tid, config=CodeConfig(function=ASSIGNED_FUNCTION), inputs=merge_inputs)
            )
            for a in plan.agents:
                self._edge((f"{tid}-by-{aids[id(a)]}", None), tid)
        if plan.task.human_review:
            review, rejected = f"{tid}-review", f"{tid}-rejected"
            self.nodes.append(
                Node(
                    id=review,
                    config=GateConfig(
                        question=f"Approve the output of task '{tid}'?\n\n{{output}}"
                    ),
                    inputs={"output": tid},
                )
            )
            self._edge((tid, None), review)
            self.nodes.append(
                Node(
                    id=rejected,
                    config=CodeConfig(function=REJECTED_FUNCTION, params={"task": tid}),
                    inputs={"review": review},
                )
            )
            self._edge((review, "reject"), rejected)

    def _manager_prompt(self, plan: _Plan) -> str:
        m = self.crew.manager
        lines = (
            [f"You are {_text(m.role)}."]
            + ([f"Your goal: {_text(m.goal)}"] if m.goal else [])
            + ([_text(m.backstory)] if m.backstory else [])
            if m is not None
            else ["You manage a crew of agents."]
        )
        t = plan.task
        lines += ["", "Choose the crew member who should do this task.", "", "Task:"]
        lines.append(_text(t.description))
        if t.expected_output:
            lines += ["", "What to deliver:", _text(t.expected_output)]
        lines += ["", "Crew members (answer with the id before the colon):"]
        for a in plan.agents:
            goal = f" Goal: {_text(a.goal)}" if a.goal else ""
            lines.append(f"- {a.id}: {_text(a.role)}.{goal}")
        return "\n".join(lines)


@dataclass
class _Plan:
    """A task with its id, templates, context and candidate agents, before lowering."""

    task: Task
    tid: str
    texts: list[_Text]
    context: list[str]
    agents: list[Agent]
    routed: bool

    @property
    def start(self) -> str:
        """The first node of the task: where edges into it go."""
        return f"{self.tid}-assign" if self.routed else self.tid

    @property
    def end(self) -> tuple[str, str | None]:
        """Where what comes after the task hangs: (node, the edge's ``when``)."""
        return (f"{self.tid}-review", "approve") if self.task.human_review else (self.tid, None)


def _instructions(a: Agent, t: Task, inputs: Mapping[str, str], context: Sequence[str]) -> str:
    """The agent node's system prompt: persona, task, deliverable, what the inputs are."""
    lines = [f"You are {_text(a.role)}."]
    if a.goal:
        lines.append(f"Your goal: {_text(a.goal)}")
    if a.backstory:
        lines.append(_text(a.backstory))
    lines += ["", "Your task:", _text(t.description)]
    if t.expected_output:
        lines += ["", "What to deliver:", _text(t.expected_output)]
    if inputs:
        described = [
            f"{name} (the output of the earlier task '{name}')"
            if name in context
            else f"{name} (a crew input)"
            for name in inputs
        ]
        shown = "; ".join(described)
        lines += ["", f"The user message is a JSON object with your inputs: {shown}."]
    return "\n".join(lines)
