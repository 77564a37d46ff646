"""Every DslError message, exactly: each case breaks one thing and names what it broke."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dsl import Agent, Crew, DslError, GraphBuilder, Task, tool
from tests.dsl.crews import count_words, search_web, send_email


def agent(role: str = "Writer", **kw: Any) -> Agent:
    return Agent(role, "Write well", model="mock:w", **kw)


def task(description: str = "Write a post.", **kw: Any) -> Task:
    kw.setdefault("agent", WRITER)
    return Task(description, **kw)


WRITER = agent()


def crew(*tasks: Task, agents: list[Agent] | None = None, **kw: Any) -> Crew:
    return Crew([WRITER] if agents is None else agents, list(tasks), **kw)


def undocumented(x: int) -> int:
    return x


def no_docstring_tool() -> None:
    tool(undocumented)


def bad_args_line() -> None:
    def f(x: int) -> int:
        """Do it.

        Args:
            this is not an entry
        """
        return x

    tool(f)


def documents_missing() -> None:
    def f(query: str) -> str:
        """Search.

        Args:
            qurey: what to look for.
        """
        return query

    tool(f)


def star_args() -> None:
    def f(*items: int) -> int:
        """Sum."""
        return sum(items)

    tool(f)


def star_kwargs() -> None:
    def f(**options: int) -> int:
        """Count."""
        return len(options)

    tool(f)


def positional_only() -> None:
    def f(x: int, /) -> int:
        """Echo."""
        return x

    tool(f)


class Opaque:
    pass


def no_schema() -> None:
    def f(thing: Opaque) -> None:
        """Take a thing."""

    tool(f)


def unresolved() -> None:
    def f(x: Missing) -> None:  # type: ignore[name-defined]  # noqa: F821
        """Take x."""

    tool(f)


def no_signature() -> None:
    tool(dict)


def other_function_same_name() -> None:
    @tool(name="search_web")
    def impostor(query: str) -> str:
        """Search elsewhere."""
        return query

    a = agent("Researcher", tools=[search_web])
    b = agent("Reader", tools=[impostor])
    Crew([a, b], [task(agent=a, name="x")]).compile()


def same_function_other_settings() -> None:
    def notify(to: str) -> str:
        """Notify someone."""
        return to

    a = agent("A", tools=[tool(notify)])
    b = agent("B", tools=[tool(notify, requires_approval=True)])
    Crew([a, b], [task(agent=a, name="x")]).compile()


def research_then_write(**write: Any) -> Crew:
    research = task("Research {topic}.", name="research")
    return crew(research, task("Write.", name="write", context=[research], **write))


def later_context() -> None:
    write = task("Write.", name="write")
    crew(task("Research.", name="research", context=[write]), write).compile()


def foreign_context() -> None:
    other = task("Elsewhere.", name="elsewhere")
    crew(task("Write.", name="write", context=[other])).compile()


def own_context() -> None:
    t = task("Write.", name="write")
    object.__setattr__(t, "context", (t,))
    crew(t).compile()


def placeholder_clash() -> None:
    research = task("Research.", name="research")
    crew(research, task("Write about {research}.", name="write")).compile()


def builder_error(fn: Callable[[GraphBuilder], Any]) -> Callable[[], None]:
    def run() -> None:
        fn(GraphBuilder("g"))

    return run


def llm(b: GraphBuilder, name: str = "ask", **kw: Any) -> Any:
    kw.setdefault("prompt", "Hi")
    return b.llm(name, model="mock:m", **kw)


def router_read_off_branch(b: GraphBuilder) -> None:
    route = b.router("route", labels=["a"], condition="'a'")
    llm(b, inputs={"r": route})


def router_after_without_label(b: GraphBuilder) -> None:
    route = b.router("route", labels=["a"], condition="'a'")
    llm(b, after=route)


def foreign_ref(b: GraphBuilder) -> None:
    other = GraphBuilder("other")
    llm(b, prompt="{x}", inputs={"x": llm(other)})


def lambda_code(b: GraphBuilder) -> None:
    b.code(lambda text: text, name="f")


def local_code(b: GraphBuilder) -> None:
    def helper(text: str) -> str:
        return text

    b.code(helper)


def shadowed_code(b: GraphBuilder) -> None:
    def count_words(text: str) -> int:
        return 0

    count_words.__qualname__ = "count_words"
    count_words.__module__ = "tests.dsl.crews"
    b.code(count_words)


def tool_clash_in_builder(b: GraphBuilder) -> None:
    b.tool(send_email, args={"to": "a", "subject": "s", "body": "b"})
    b.agent("ops", model="mock:m", instructions="Go", tools=[tool(send_email.fn)])


def kir_errors(b: GraphBuilder) -> None:
    llm(b, prompt="Summarize {text}")
    b.build()


def arg_ref_clash(b: GraphBuilder) -> None:
    topic = b.input("topic")
    b.tool(search_web, args={"query": topic}, inputs={"query": b.input("other")})


def nested_arg_ref(b: GraphBuilder) -> None:
    b.tool(search_web, args={"query": {"text": b.input("topic")}})


def bad_arg_name(b: GraphBuilder) -> None:
    b.tool(search_web, args={"query-text": b.input("topic")})


def bad_node_config(b: GraphBuilder) -> None:
    b.router("route", labels=["a"], condition="'a'", model="mock:m")


CASES: list[tuple[str, Callable[[], Any], str]] = [
    # -- @tool
    ("tool: not a function", lambda: tool(3), "@tool decorates a function, not 3"),  # type: ignore[call-overload]
    (
        "tool: bad name",
        lambda: tool(name="my tool")(search_web.fn),
        "tool name 'my tool' is not valid: use letters, digits, _ . and -, not starting with "
        "a digit (pass @tool(name=...))",
    ),
    (
        "tool: no docstring",
        no_docstring_tool,
        "tool 'undocumented' has no docstring: its first line is the description the model "
        "sees (or pass @tool(description=...))",
    ),
    (
        "tool: unreadable Args line",
        bad_args_line,
        "tool 'f': cannot read the docstring's Args line 'this is not an entry'; "
        "write 'name: description'",
    ),
    (
        "tool: documents a missing parameter",
        documents_missing,
        "tool 'f': the docstring documents 'qurey', which is not a parameter (parameters: query)",
    ),
    (
        "tool: *args",
        star_args,
        "tool 'f': parameter *items cannot be described by a JSON Schema; "
        "tools take named arguments only",
    ),
    (
        "tool: **kwargs",
        star_kwargs,
        "tool 'f': parameter **options cannot be described by a JSON Schema; "
        "tools take named arguments only",
    ),
    (
        "tool: positional-only",
        positional_only,
        "tool 'f': parameter 'x' is positional-only; tools are called with keyword arguments",
    ),
    (
        "tool: no JSON Schema",
        no_schema,
        "tool 'f': cannot derive a JSON Schema of its arguments: Unable to generate pydantic-core "
        "schema for <class 'tests.dsl.test_errors.Opaque'>. Set `arbitrary_types_allowed=True` "
        "in the model_config to ignore this error or implement `__get_pydantic_core_schema__` "
        "on your type to fully support it.",
    ),
    (
        "tool: unresolved annotation",
        unresolved,
        "tool 'f': cannot resolve the annotations: name 'Missing' is not defined",
    ),
    (
        "tool: no signature",
        no_signature,
        "tool 'dict': cannot read the function's signature: "
        "no signature found for builtin type <class 'dict'>",
    ),
    (
        "tool: bad timeout",
        lambda: tool(timeout=0)(search_web.fn),
        "tool 'search_web': timeout must be a positive number of seconds, not 0",
    ),
    # -- Agent
    ("agent: no role", lambda: agent(""), "an agent needs a role (a non-empty string)"),
    (
        "agent: bad model id",
        lambda: Agent("Writer", model="gpt-4o"),
        "agent 'Writer': model 'gpt-4o' is not a model id 'provider:name' "
        "(such as 'openai:gpt-4o-mini' or 'mock:m')",
    ),
    (
        "agent: max_turns",
        lambda: agent(max_turns=0),
        "agent 'Writer': max_turns must be an integer from 1 to 1000",
    ),
    (
        "agent: tools not a list",
        lambda: agent(tools=search_web),
        "agent 'Writer': tools must be a list of @tool functions",
    ),
    # -- Task
    ("task: no description", lambda: Task(" "), "a task needs a description (a non-empty string)"),
    (
        "task: agent not an Agent",
        lambda: Task("Write.", agent="writer"),  # type: ignore[arg-type]
        "task 'Write.': agent must be an Agent, not a str",
    ),
    (
        "task: context not a list",
        lambda: task(context=task()),
        "task 'Write a post.': context must be a list of tasks",
    ),
    (
        "task: context holds a non-task",
        lambda: task(context=["research"]),
        "task 'Write a post.': context holds a str, not a Task",
    ),
    (
        "task: tools not a list",
        lambda: task(name="post", tools="search"),
        "task 'post': tools must be a list of @tool functions",
    ),
    (
        "task: timeout",
        lambda: task(name="post", timeout_s=-1),
        "task 'post': timeout_s must be a positive number of seconds",
    ),
    (
        "task: output_schema",
        lambda: task(name="post", output_schema=str),
        "task 'post': output_schema must be a pydantic model class or a JSON Schema dict",
    ),
    # -- Crew fields
    (
        "crew: unknown process",
        lambda: crew(task(), process="round_robin"),
        "crew 'crew': unknown process 'round_robin'; "
        "expected one of sequential, parallel, hierarchical",
    ),
    (
        "crew: tasks not a list",
        lambda: Crew([WRITER], task()),  # type: ignore[arg-type]
        "crew 'crew': tasks must be a list",
    ),
    (
        "crew: agents hold a non-agent",
        lambda: Crew(["writer"], [task()]),  # type: ignore[list-item]
        "crew 'crew': agents must hold Agents, not a str",
    ),
    (
        "crew: bad manager model",
        lambda: crew(task(), process="hierarchical", manager_model="boss"),
        "crew 'crew': manager_model: model 'boss' is not a model id 'provider:name' "
        "(such as 'openai:gpt-4o-mini' or 'mock:m')",
    ),
    (
        "crew: inputs_schema",
        lambda: crew(task()).compile(inputs_schema=["topic"]),  # type: ignore[arg-type]
        "crew 'crew': inputs_schema must be a pydantic model class or a JSON Schema dict",
    ),
    # -- compiling a crew
    ("crew: no tasks", lambda: crew().compile(), "crew 'crew' has no tasks"),
    (
        "task with no agent",
        lambda: crew(Task("Write a post.", name="post")).compile(),
        "task 'post': no agent; give it agent=... "
        "(or use process='hierarchical', where a manager assigns it)",
    ),
    (
        "task's agent not in the crew",
        lambda: crew(task(name="post", agent=agent("Ghost"))).compile(),
        "task 'post': its agent 'ghost' is not in the crew's agents",
    ),
    (
        "context pointing at a later task",
        later_context,
        "task 'research': context task 'write' comes later in the crew; "
        "a task can only use the output of a task listed before it",
    ),
    (
        "context task not in the crew",
        foreign_context,
        "task 'write': context task 'elsewhere' is not in the crew's tasks",
    ),
    ("context is the task itself", own_context, "task 'write': lists itself as its context"),
    (
        "placeholder with no input (inputs_schema)",
        lambda: research_then_write().compile(
            {"type": "object", "properties": {"subject": {"type": "string"}}}
        ),
        "task 'research': placeholder {topic} in its description is not a crew input "
        "(inputs: subject)",
    ),
    (
        "placeholder with no input (inputs=)",
        lambda: crew(task("Write about {topic} for {reader}.", name="post")).compile(
            inputs={"topic": "tides"}
        ),
        "task 'post': placeholder {reader} in its description is not a crew input (inputs: topic)",
    ),
    (
        "placeholder with no input, in an agent's goal",
        lambda: Crew(
            [w := Agent("Writer", "Write for {audience}", model="mock:w")],
            [Task("Write.", agent=w, name="post")],
        ).compile(inputs={}),
        "agent 'writer': placeholder {audience} in its goal is not a crew input (inputs: none)",
    ),
    (
        "placeholder named like a context task",
        placeholder_clash,
        "task 'write': placeholder {research} in its description has the name of context "
        "task 'research'; rename the placeholder or the task",
    ),
    (
        "malformed template",
        lambda: crew(task('Return {"a": 1}.', name="post")).compile(),
        "task 'post': description: bad placeholder '{\"a\": 1}' at offset 7: expected {name} "
        "or {name.field} (letters, digits, _; no spaces); write {{ for a literal brace",
    ),
    (
        "duplicate task names",
        lambda: crew(task(name="Write"), task(name="write!")).compile(),
        "tasks 'Write' and 'write!' both get the id 'write'; rename one",
    ),
    (
        "task listed twice",
        lambda: crew(t := task(name="post"), t).compile(),
        "task 'post' is listed twice in the crew's tasks",
    ),
    (
        "duplicate agent ids",
        lambda: Crew([agent("Writer"), agent("writer")], [task()]).compile(),
        "agents 'Writer' and 'writer' both get the id 'writer'; give one a different name=",
    ),
    (
        "agent listed twice",
        lambda: Crew([WRITER, WRITER], [task()]).compile(),
        "agent 'writer' is listed twice in the crew's agents",
    ),
    (
        "tool name used by two functions",
        other_function_same_name,
        "agent 'reader': tool name 'search_web' is already used by another function "
        "(tests.dsl.crews.search_web, in agent 'researcher'); give one @tool(name=...)",
    ),
    (
        "tool declared twice with other settings",
        same_function_other_settings,
        "agent 'b': tool 'notify' is declared twice with different settings "
        "(also in agent 'a'); decorate the function once and share it",
    ),
    (
        "hierarchical without a manager",
        lambda: crew(Task("Write.", name="post"), process="hierarchical").compile(),
        "crew 'crew': process 'hierarchical' needs a manager "
        "(manager=Agent(...) or manager_model='provider:name')",
    ),
    (
        "manager with tools",
        lambda: crew(
            Task("Write.", name="post"),
            process="hierarchical",
            manager=agent("Boss", tools=[search_web]),
        ).compile(),
        "manager 'boss' has tools; a manager only assigns tasks "
        "(give the tools to the crew's agents)",
    ),
    (
        "hierarchical crew without agents",
        lambda: crew(
            Task("Write.", name="post"), agents=[], process="hierarchical", manager_model="mock:b"
        ).compile(),
        "crew 'crew' has no agents for the manager to assign tasks to",
    ),
    (
        "lowers to an invalid graph",
        lambda: crew(task(name="post", output_schema={"maximum": float("inf")})).compile(),
        "crew 'crew' lowers to an invalid graph:\n"
        "  - node 'post' at $.nodes[0].config.output_schema.maximum: "
        "expected a finite number, got inf",
    ),
    # -- graph builder
    (
        "builder: bad graph id",
        lambda: GraphBuilder("my graph"),
        "graph id 'my graph' is not valid: use letters, digits, _ and -",
    ),
    (
        "builder: bad input name",
        builder_error(lambda b: b.input("a.b")),
        "run input name 'a.b' is not valid: use letters, digits and _",
    ),
    (
        "builder: bad field",
        builder_error(lambda b: b.input("doc")["a b"]),
        "field 'a b' of '$input.doc': use letters, digits and _",
    ),
    (
        "builder: branch of a non-router",
        builder_error(lambda b: b.input("doc").when("x")),
        "'$input.doc' is not a router or gate; it has no branches",
    ),
    (
        "builder: bad node name",
        builder_error(lambda b: llm(b, "ask me")),
        "node name 'ask me' is not a valid id: use letters, digits, _ and -, "
        "starting with a letter or _",
    ),
    (
        "builder: node name used twice",
        builder_error(lambda b: (llm(b), llm(b))),
        "node name 'ask' is already used in graph 'g'",
    ),
    ("builder: no nodes", builder_error(lambda b: b.build()), "graph 'g' has no nodes"),
    (
        "builder: KIR errors",
        builder_error(kir_errors),
        "graph 'g' is invalid (1 error):\n"
        "  - node 'ask' at $.nodes[0].config.prompt: template references {text}, which is not "
        "an input of the node (inputs: none)",
    ),
    (
        "builder: ref from another builder",
        builder_error(foreign_ref),
        "node 'ask' input 'x': 'ask' is a ref from another graph builder",
    ),
    (
        "builder: not a ref",
        builder_error(lambda b: llm(b, inputs={"x": "$input.x"})),
        "node 'ask' input 'x' must be a Ref made by this builder, not '$input.x'",
    ),
    (
        "builder: after= the run input",
        builder_error(lambda b: llm(b, after=b.input())),
        "node 'ask': after= takes node outputs, not the run input",
    ),
    (
        "builder: after= a router without a label",
        builder_error(router_after_without_label),
        "node 'ask': after='route' needs a branch: after=route.when(label)",
    ),
    (
        "builder: reads a router off its branches",
        builder_error(router_read_off_branch),
        "node 'ask' reads router 'route' but is on none of its branches: "
        "pass after=route.when(label)",
    ),
    (
        "builder: bad node config",
        builder_error(bad_node_config),
        "node 'route': set exactly one of 'condition' or 'model'",
    ),
    (
        "builder: arg ref clashes with an input",
        builder_error(arg_ref_clash),
        "node 'search_web': arg 'query' is a ref and also the name of another input; "
        "name the input differently",
    ),
    (
        "builder: arg ref with a bad name",
        builder_error(bad_arg_name),
        "node 'search_web': arg 'query-text' holds a ref but is not usable as an input name; "
        "bind it in inputs= and write a '{name}' placeholder",
    ),
    (
        "builder: nested arg ref",
        builder_error(nested_arg_ref),
        "node 'search_web': arg 'query': a ref may only be a top-level arg; bind it in inputs=",
    ),
    (
        "builder: tool name clash",
        builder_error(tool_clash_in_builder),
        "node 'ops': tool name 'send_email' is already declared for another function or with "
        "other settings; decorate each function once, name them apart",
    ),
    (
        "builder: lambda code",
        builder_error(lambda_code),
        "code node 'f': tests.dsl.test_errors.lambda_code.<locals>.<lambda> cannot be imported "
        "by name (a lambda, or a function defined inside another); define it at module level",
    ),
    (
        "builder: local code",
        builder_error(local_code),
        "code node 'helper': tests.dsl.test_errors.local_code.<locals>.helper cannot be "
        "imported by name (a lambda, or a function defined inside another); define it at "
        "module level",
    ),
    (
        "builder: code that imports to another function",
        builder_error(shadowed_code),
        "code node 'count_words': tests.dsl.crews:count_words does not import back to this "
        "function; define it at module level under that name",
    ),
    (
        "builder: code without a name",
        builder_error(lambda b: b.code(functools_partial(), name="p")),
        "code node 'p': functools.partial(<function count_words>) has no module and name to "
        "import it by",
    ),
]


def functools_partial() -> Any:
    import functools

    class Partial(functools.partial[int]):
        def __repr__(self) -> str:
            return "functools.partial(<function count_words>)"

    return Partial(count_words)


@pytest.mark.parametrize(("make", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_dsl_error_message(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(DslError) as err:
        make()
    assert str(err.value) == message
