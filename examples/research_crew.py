"""A research crew: a research analyst with a search tool, then a science writer.

Runs without an API key on the scripted model::

    python examples/research_crew.py                       # temp SQLite store
    foldline run examples/research_crew.py --mock --input topic=tides

The module exposes what ``foldline run`` loads: ``graph`` (the compiled crew),
``tools`` (name -> callable) and ``mock_script()`` (the scripted replies, by node).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from dsl import Agent, Crew, Task, tool
from substrate import MockModel, MockReply, SQLiteStore

# A tiny offline "web": tools must be deterministic here (no network, clock or randomness).
PAGES: dict[str, list[dict[str, str]]] = {
    "tides": [
        {"url": "https://ocean.example/tides", "text": "Most coasts get two high tides a day."},
        {"url": "https://moon.example/pull", "text": "The Moon's gravity raises the tides."},
        {"url": "https://sun.example/spring", "text": "Sun and Moon aligned give spring tides."},
    ],
}


@tool(idempotent=True)
def search_web(query: str, limit: int = 3) -> list[dict[str, str]]:
    """Search the web and return the top pages.

    Args:
        query: what to search for.
        limit: at most this many pages.
    """
    hits = [page for word in query.lower().split() for page in PAGES.get(word, [])]
    return hits[:limit]


researcher = Agent(
    "Research Analyst",
    "Find reliable facts about {topic}",
    "You cite a source for every fact and never guess.",
    model="openai:gpt-4o-mini",
    tools=[search_web],
    max_turns=5,
)
writer = Agent(
    "Science Writer",
    "Explain {topic} to curious readers",
    "You write short, vivid and accurate prose.",
    model="openai:gpt-4o-mini",
)
research = Task(
    "Search for the key facts about {topic} and list them with their sources.",
    "Bullet points, each with its source URL",
    agent=researcher,
    name="research",
)
article = Task(
    "Write a short article about {topic} from the research.",
    "Two paragraphs of plain prose",
    agent=writer,
    name="article",
)

crew = Crew([researcher, writer], [research, article], name="research_crew")
graph = crew.compile()
tools = crew.tools()
example_inputs = {"topic": "tides"}


def mock_script() -> dict[str, list[MockReply | str]]:
    """What the scripted model answers, by node and turn."""
    return {
        "research": [
            MockReply(tool_calls=[("search_web", {"query": "tides"})]),
            "- Most coasts get two high tides a day (https://ocean.example/tides)\n"
            "- The Moon's gravity raises the tides (https://moon.example/pull)\n"
            "- Sun and Moon aligned give spring tides (https://sun.example/spring)",
        ],
        "article": [
            "Twice a day the sea climbs the beach and slips away again: the Moon's gravity "
            "pulls the ocean into a bulge that the Earth turns through.\n\n"
            "When the Sun and the Moon line up, their pulls add up and the tides run "
            "highest: these are the spring tides."
        ],
    }


def main(db: Path) -> None:
    with SQLiteStore(db) as store:
        result = crew.run(example_inputs, store=store, model=MockModel(mock_script(), by_turn=True))
    print(f"run: {result.run_id}")
    print(f"status: {result.status}")
    print(f"model calls: {result.model_calls}")
    print(f"output:\n{result.output}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "runs.db")
