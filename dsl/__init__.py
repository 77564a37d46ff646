"""Authoring front-ends that compile to KIR: Agent/Task/Crew, ``@tool``, a graph builder.

A crew is agents, the tasks they do and a process; :meth:`Crew.compile` lowers it to a
plain :class:`kir.Graph`, which the executor runs durably (resumable, gated, budgeted,
replayable)::

    from dsl import Agent, Crew, Task, tool

    @tool(requires_approval=True)
    def publish(title: str, body: str) -> str:
        \"\"\"Publish an article on the blog.\"\"\"
        ...

    writer = Agent("Writer", "Explain {topic} simply", model="openai:gpt-4o-mini",
                   tools=[publish])
    crew = Crew([writer], [Task("Write and publish a post on {topic}.", agent=writer,
                                name="post", human_review=True)])
    graph = crew.compile()                     # kir.Graph, stable graph_hash
    result = crew.run({"topic": "tides"}, store=SQLiteStore("runs.db"))
    result.status                              # "waiting": the review gate is open

:class:`GraphBuilder` writes other graphs from Python calls, with edges inferred from
the data each node reads. See docs/DSL.md; the lowering of each process is described
in :mod:`dsl.crew`.
"""

from dsl.builder import Branch, GraphBuilder, Ref
from dsl.crew import PROCESSES, Agent, Crew, Process, Task
from dsl.errors import DslError, ReviewRejected, ToolArgsInvalid
from dsl.naming import slugify
from dsl.tool import Tool, as_tool, tool

__all__ = [
    # crews
    "Agent",
    "Task",
    "Crew",
    "Process",
    "PROCESSES",
    # tools
    "tool",
    "Tool",
    "as_tool",
    # graph builder
    "GraphBuilder",
    "Ref",
    "Branch",
    # naming
    "slugify",
    # errors
    "DslError",
    "ReviewRejected",
    "ToolArgsInvalid",
]
