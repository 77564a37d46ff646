"""The crews (and one builder graph) the DSL tests compile, golden and run.

Importable from a fresh process (``python -c "from tests.dsl.crews import ..."``), so the
hash-stability and multi-process tests compile exactly these definitions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from dsl import Agent, Crew, GraphBuilder, Task, tool
from kir import Graph
from substrate import MockReply


@tool(idempotent=True)
def search_web(query: str, limit: int = 3) -> list[dict[str, str]]:
    """Search the web and return the top hits.

    Args:
        query: what to search for.
        limit: how many hits to return.
    """
    return [{"title": f"{query} #{i}", "url": f"https://example.test/{i}"} for i in range(limit)]


@tool(requires_approval=True, timeout=30)
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email.

    Args:
        to: the recipient's address.
        subject: the subject line.
        body: the message, plain text.
    """
    return f"sent {subject!r} to {to}"


class Outline(BaseModel):
    title: str
    sections: list[str]


def researcher() -> Agent:
    return Agent(
        "Senior Researcher",
        "Find what is reliably known about {topic}",
        "You check every claim against two sources.",
        model="mock:researcher",
        tools=[search_web],
        max_turns=4,
    )


def writer() -> Agent:
    return Agent(
        "Writer",
        "Explain {topic} to {audience}",
        model="mock:writer",
        params={"temperature": 0.3},
    )


def editor() -> Agent:
    return Agent("Editor", "Keep articles short and correct", model="mock:editor")


def sequential() -> Crew:
    r, w = researcher(), writer()
    research = Task(
        "List the key facts about {topic}.", "Five bullet points", agent=r, name="research"
    )
    outline = Task(
        "Outline an article on {topic} from the facts.",
        "A title and three section headings",
        agent=w,
        name="outline",
        output_schema=Outline,
    )
    article = Task(
        "Write the article from the outline and the facts.",
        "Three short paragraphs",
        agent=w,
        name="article",
        context=[research, outline],
    )
    return Crew([r, w], [research, outline, article], name="article")


def parallel() -> Crew:
    r, e = researcher(), editor()
    market = Task("Size the market for {topic}.", agent=r, name="market")
    tech = Task("Assess the technology behind {topic}.", agent=r, name="tech")
    risks = Task("List the risks of {topic}.", agent=r, name="risks")
    summary = Task(
        "Summarize the three analyses in one page.",
        "One page",
        agent=e,
        name="summary",
        context=[market, tech, risks],
    )
    return Crew([r, e], [market, tech, risks, summary], "parallel", name="analysis")


def hierarchical() -> Crew:
    r, w, e = researcher(), writer(), editor()
    manager = Agent("Managing Editor", "Ship accurate articles on time", model="mock:manager")
    return Crew(
        [r, w, e],
        [
            Task("Gather sources on {topic}.", "A list of sources", name="sources"),
            Task("Draft an article on {topic} for {audience}.", name="draft"),
            Task("Proofread the draft.", "The corrected draft", agent=e, name="proofread"),
        ],
        "hierarchical",
        name="newsroom",
        manager=manager,
    )


def review() -> Crew:
    w, e = writer(), editor()
    draft = Task(
        "Write a short post about {topic}.",
        "Two paragraphs",
        agent=w,
        name="draft",
        human_review=True,
    )
    publish = Task("Prepare the approved post for publishing.", agent=e, name="publish")
    return Crew([w, e], [draft, publish], name="reviewed_post")


def approval_tool() -> Crew:
    assistant = Agent(
        "Assistant",
        "Keep {recipient} informed",
        model="mock:assistant",
        tools=[send_email],
    )
    notify = Task(
        "Email {recipient} a one-line status update about {project}.",
        "The email that was sent",
        agent=assistant,
        name="notify",
    )
    return Crew([assistant], [notify], name="notifier")


def count_words(text: str) -> int:
    return len(text.split())


def builder_graph() -> Graph:
    b = GraphBuilder("brief")
    topic = b.input("topic")
    hits = b.tool(search_web, args={"query": topic, "limit": 2})
    summary = b.llm(
        "summarize",
        model="mock:m",
        prompt="Summarize these hits about {topic}: {hits}",
        inputs={"hits": hits, "topic": topic},
    )
    words = b.code(count_words, inputs={"text": summary})
    size = b.router(
        "size",
        labels=["long", "short"],
        condition="'long' if n > 5 else 'short'",
        inputs={"n": words},
    )
    b.llm(
        "shorten",
        model="mock:m",
        prompt="Shorten: {text}",
        inputs={"text": summary},
        after=size.when("long"),
    )
    return b.build(output=summary)


#: Golden name -> a function giving the graph.
GRAPHS: dict[str, Callable[[], Graph]] = {
    "sequential": lambda: sequential().compile(),
    "parallel": lambda: parallel().compile(),
    "hierarchical": lambda: hierarchical().compile(),
    "human_review": lambda: review().compile(),
    "approval_tool": lambda: approval_tool().compile(),
    "builder": builder_graph,
}


def review_script() -> dict[str, list[MockReply | str]]:
    """Replies of the review crew's agents, by node (use with ``by_turn=True``)."""
    return {
        "draft": ["Tides rise and fall twice a day.\n\nThe moon pulls the sea."],
        "publish": ["READY: Tides rise and fall twice a day. The moon pulls the sea."],
    }


def approval_script() -> dict[str, list[MockReply | str]]:
    return {
        "notify": [
            MockReply(
                tool_calls=[
                    (
                        "send_email",
                        {"to": "ana@example.test", "subject": "Status", "body": "On track."},
                    )
                ]
            ),
            "Sent 'Status' to ana@example.test.",
        ]
    }


def hashes() -> dict[str, Any]:
    """Graph hash of every golden graph (what a fresh process must reproduce)."""
    from kir import compile_graph

    return {name: compile_graph(make()).graph_hash for name, make in GRAPHS.items()}
