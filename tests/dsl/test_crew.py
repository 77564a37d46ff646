"""Agent/Task/Crew: ids, the lowering of each process, inputs, tools, and runs on the executor."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from dsl import Agent, Crew, DslError, Task
from executor import approve, reject
from kir import AgentConfig, CodeConfig, GateConfig, Graph, Node, RouterConfig, compile_graph
from substrate import MemoryStore, MockModel, MockReply
from tests.dsl import crews


def edges(graph: Graph) -> list[tuple[str, str, str | None]]:
    return [(e.source, e.target, e.when) for e in graph.edges]


def node(graph: Graph, node_id: str) -> Node:
    return next(n for n in graph.nodes if n.id == node_id)


def agent_config(graph: Graph, node_id: str) -> AgentConfig:
    config = node(graph, node_id).config
    assert isinstance(config, AgentConfig)
    return config


W = Agent("Writer", "Write clearly", model="mock:w")


# -- ids -----------------------------------------------------------------------------------


def test_ids_are_slugs_of_names_and_descriptions() -> None:
    a = Agent("Senior Research Analyst!", model="mock:a")
    b = Agent("Writer", model="mock:b", name="Lead Writer")
    tasks = [
        Task("Write the intro, then stop.", agent=b),
        Task("Write the intro, then stop.", agent=b),
        Task("Check it.", agent=a, name="Write the intro, then stop"),
        Task("2 more drafts please", agent=b),
    ]
    graph = Crew([a, b], tasks, name="My Crew!").compile()
    assert graph.id == "my_crew"
    # An explicit name is claimed first; derived names take _2, _3... in crew order.
    assert [n.id for n in graph.nodes] == [
        "write_the_intro_then_stop_2",
        "write_the_intro_then_stop_3",
        "write_the_intro_then_stop",
        "task_2_more_drafts_please",
    ]
    assert (a.id, b.id) == ("senior_research_analyst", "lead_writer")


def test_ids_do_not_depend_on_object_identity_or_order_of_creation() -> None:
    first = crews.hierarchical().compile()
    crews.sequential()  # other crews created in between change no counter
    second = crews.hierarchical().compile()
    assert first == second
    assert compile_graph(first).graph_hash == compile_graph(second).graph_hash


# -- sequential ----------------------------------------------------------------------------


def test_sequential_chains_tasks_and_defaults_context_to_the_previous_task() -> None:
    graph = crews.sequential().compile()
    assert edges(graph) == [("research", "outline", None), ("outline", "article", None)]
    assert node(graph, "outline").inputs == {
        "audience": "$input.audience",  # from the writer's goal
        "research": "research",
        "topic": "$input.topic",
    }
    # context=[research, outline] replaces the default; both are upstream through the chain.
    assert node(graph, "article").inputs == {
        "audience": "$input.audience",
        "outline": "outline",
        "research": "research",
        "topic": "$input.topic",
    }
    assert graph.output == "article"


def test_empty_context_means_no_context_but_keeps_the_order() -> None:
    first = Task("One.", agent=W, name="one")
    graph = Crew([W], [first, Task("Two.", agent=W, name="two", context=[])]).compile()
    assert node(graph, "two").inputs == {}
    assert edges(graph) == [("one", "two", None)]


def test_agent_node_config() -> None:
    graph = crews.sequential().compile()
    research = agent_config(graph, "research")
    assert research.model == "mock:researcher"
    assert research.tools == ["search_web"]
    assert research.max_turns == 4
    assert research.instructions == (
        "You are Senior Researcher.\n"
        "Your goal: Find what is reliably known about {topic}\n"
        "You check every claim against two sources.\n"
        "\n"
        "Your task:\n"
        "List the key facts about {topic}.\n"
        "\n"
        "What to deliver:\n"
        "Five bullet points\n"
        "\n"
        "The user message is a JSON object with your inputs: topic (a crew input)."
    )
    outline = agent_config(graph, "outline")
    assert outline.params == {"temperature": 0.3}
    assert outline.output_schema == crews.Outline.model_json_schema()


def test_texts_are_dedented() -> None:
    t = Task(
        """
        Write a haiku
            about {topic}.
        """,
        agent=W,
        name="haiku",
    )
    graph = Crew([W], [t]).compile()
    assert (
        "Your task:\nWrite a haiku\n    about {topic}.\n"
        in agent_config(graph, "haiku").instructions
    )


def test_task_tools_replace_the_agents() -> None:
    researcher = crews.researcher()
    t = Task("Email.", agent=researcher, name="mail", tools=[crews.send_email])
    crew = Crew([researcher], [t])
    graph = crew.compile()
    assert agent_config(graph, "mail").tools == ["send_email"]
    # Every tool of the crew is declared (and served by crew.tools()).
    assert [s.name for s in graph.tools] == ["search_web", "send_email"]
    assert sorted(crew.tools()) == ["search_web", "send_email"]


def test_retry_and_timeout_reach_the_node() -> None:
    from kir import RetryPolicy

    policy = RetryPolicy(max_attempts=3)
    graph = Crew([W], [Task("Go.", agent=W, name="go", retry=policy, timeout_s=30)]).compile()
    assert (node(graph, "go").retry, node(graph, "go").timeout_s) == (policy, 30)


# -- parallel ------------------------------------------------------------------------------


def test_parallel_orders_only_by_context_and_joins() -> None:
    graph = crews.parallel().compile()
    assert edges(graph) == [
        ("market", "summary", None),
        ("tech", "summary", None),
        ("risks", "summary", None),
        ("summary", "crew-join", None),
    ]
    join = node(graph, "crew-join")
    assert join.config == CodeConfig(function="builtins:dict")
    assert join.inputs == {t: t for t in ("market", "tech", "risks", "summary")}
    assert graph.output == "crew-join"
    assert compile_graph(graph).entry == ("market", "risks", "tech")


def test_parallel_tasks_without_context_all_feed_the_join() -> None:
    tasks = [Task(f"Task {i}.", agent=W, name=f"t{i}") for i in range(3)]
    graph = Crew([W], tasks, "parallel").compile()
    assert edges(graph) == [(f"t{i}", "crew-join", None) for i in range(3)]


# -- hierarchical --------------------------------------------------------------------------


def test_hierarchical_routes_unassigned_tasks_through_the_manager() -> None:
    graph = crews.hierarchical().compile()
    agents = ["senior_researcher", "writer", "editor"]
    assign = node(graph, "draft-assign")
    assert isinstance(assign.config, RouterConfig)
    assert (assign.config.labels, assign.config.model) == (agents, "mock:manager")
    assert assign.inputs == {"audience": "$input.audience", "topic": "$input.topic"}
    merge = node(graph, "draft")
    assert merge.config == CodeConfig(function="dsl.runtime:assigned")
    assert merge.inputs == {"assignee": "draft-assign"} | {
        f"by_{a}": f"draft-by-{a}" for a in agents
    }
    assert [e for e in edges(graph) if "draft" in e[0] or "draft" in e[1]] == [
        *[("draft-assign", f"draft-by-{a}", a) for a in agents],
        *[(f"draft-by-{a}", "draft", None) for a in agents],
        ("sources", "draft-assign", None),
        ("draft", "proofread", None),
    ]
    # Each candidate does the task as itself, with the task's context.
    branch = agent_config(graph, "draft-by-writer")
    assert branch.model == "mock:writer"
    assert node(graph, "draft-by-editor").inputs["sources"] == "sources"
    # A task with an agent is not routed.
    assert isinstance(node(graph, "proofread").config, AgentConfig)
    assert graph.output == "proofread"


def test_hierarchical_with_only_a_manager_model() -> None:
    graph = Crew([W], [Task("Go.", name="go")], "hierarchical", manager_model="mock:boss").compile()
    config = node(graph, "go-assign").config
    assert isinstance(config, RouterConfig)
    assert config.model == "mock:boss"
    assert config.prompt is not None
    assert config.prompt.startswith("You manage a crew of agents.")


# -- human review --------------------------------------------------------------------------


def test_human_review_adds_a_gate_and_a_rejection_that_fails() -> None:
    graph = crews.review().compile()
    assert edges(graph) == [
        ("draft", "draft-review", None),
        ("draft-review", "draft-rejected", "reject"),
        ("draft-review", "publish", "approve"),
    ]
    gate = node(graph, "draft-review")
    assert gate.config == GateConfig(question="Approve the output of task 'draft'?\n\n{output}")
    assert gate.inputs == {"output": "draft"}
    rejected = node(graph, "draft-rejected")
    assert rejected.config == CodeConfig(function="dsl.runtime:rejected", params={"task": "draft"})
    assert node(graph, "publish").inputs == {"draft": "draft"}


def test_review_in_a_parallel_crew_feeds_the_join_from_the_gate() -> None:
    a = Task("A.", agent=W, name="a", human_review=True)
    graph = Crew([W], [a, Task("B.", agent=W, name="b")], "parallel").compile()
    assert ("a-review", "crew-join", "approve") in edges(graph)
    assert ("b", "crew-join", None) in edges(graph)
    assert node(graph, "crew-join").inputs == {"a": "a", "b": "b"}


# -- inputs --------------------------------------------------------------------------------


def test_inputs_schema_is_inferred_from_placeholders() -> None:
    graph = crews.sequential().compile()
    assert graph.inputs_schema == {
        "type": "object",
        "properties": {"audience": {}, "topic": {}},
        "required": ["audience", "topic"],
    }
    assert Crew([W], [Task("No placeholders.", agent=W)]).compile().inputs_schema is None


class Inputs(BaseModel):
    topic: str
    audience: str = "everyone"


def test_a_given_inputs_schema_is_the_graphs() -> None:
    crew = crews.sequential()
    graph = crew.compile(Inputs)
    assert graph.inputs_schema == Inputs.model_json_schema()
    again = Crew(crew.agents, crew.tasks, name="article", inputs_schema=Inputs).compile()
    assert again == graph


def test_example_inputs_only_check() -> None:
    crew = crews.sequential()
    assert crew.compile(inputs={"topic": "t", "audience": "a", "extra": 1}) == crew.compile()


def test_placeholders_with_fields_bind_the_whole_input() -> None:
    t = Task("Write to {user.name} about {topic}.", agent=W, name="t")
    graph = Crew([W], [t]).compile(inputs={"user": {"name": "Ana"}, "topic": "x"})
    assert node(graph, "t").inputs == {"topic": "$input.topic", "user": "$input.user"}
    assert "Write to {user.name} about {topic}." in agent_config(graph, "t").instructions


def test_literal_braces_are_escaped_by_doubling() -> None:
    t = Task('Answer as JSON: {{"ok": true}}', agent=W, name="t")
    assert Crew([W], [t]).compile().inputs_schema is None


# -- runs ----------------------------------------------------------------------------------


def run_crew(crew: Crew, inputs: dict[str, Any], script: Any) -> Any:
    return crew.run(inputs, store=MemoryStore(), model=MockModel(script, by_turn=True))


def test_sequential_crew_runs() -> None:
    script: dict[str, list[MockReply | str]] = {
        "research": [MockReply(tool_calls=[("search_web", {"query": "tides"})]), "- two a day"],
        "outline": ['{"title": "Tides", "sections": ["Why", "When", "Where"]}'],
        "article": ["Tides come twice a day."],
    }
    seen: list[Any] = []
    model = MockModel(script, by_turn=True, on_call=lambda req, key, resp: seen.append(req))
    result = crews.sequential().run(
        {"topic": "tides", "audience": "kids"}, store=MemoryStore(), model=model
    )
    assert (result.status, result.output, result.error) == (
        "completed",
        "Tides come twice a day.",
        None,
    )
    # The article's agent got the structured outline and the researched facts.
    last = seen[-1].messages[1].content
    assert '"outline":{"sections":["Why","When","Where"],"title":"Tides"}' in last
    assert '"research":"- two a day"' in last


def test_parallel_crew_runs_and_joins() -> None:
    script = {"market": ["big"], "tech": ["solid"], "risks": ["few"], "summary": ["fine"]}
    result = run_crew(crews.parallel(), {"topic": "fusion"}, script)
    assert result.status == "completed"
    assert result.output == {"market": "big", "risks": "few", "summary": "fine", "tech": "solid"}


def test_hierarchical_crew_runs_the_assigned_agent() -> None:
    script = {
        "sources-assign": ["senior_researcher"],
        "sources-by-senior_researcher": ["three sources"],
        "draft-assign": ["writer"],
        "draft-by-writer": ["a draft"],
        "proofread": ["a proofread draft"],
    }
    result = run_crew(crews.hierarchical(), {"topic": "tides", "audience": "kids"}, script)
    assert (result.status, result.output) == ("completed", "a proofread draft")


def test_rejected_review_fails_the_run() -> None:
    store = MemoryStore()
    crew = crews.review()
    first = crew.run(
        {"topic": "tides", "audience": "kids"},
        store=store,
        model=MockModel(crews.review_script(), by_turn=True),
    )
    assert first.status == "waiting"
    reject(store, first.run_id, first.gates[0].id, by="bob", note="too long")
    done = crew.resume(first.run_id, store=store, model=MockModel(crews.review_script()))
    assert (done.status, done.output) == ("failed", None)
    assert done.error == (
        "ReviewRejected: task 'draft' was rejected in review by bob: too long (node draft-rejected)"
    )


def test_approval_gated_tool_waits_for_its_exact_args() -> None:
    store = MemoryStore()
    crew = crews.approval_tool()
    inputs = {"recipient": "ana@example.test", "project": "tides"}
    first = crew.run(inputs, store=store, model=MockModel(crews.approval_script(), by_turn=True))
    assert first.status == "waiting"
    (gate,) = first.gates
    assert (gate.tool, gate.args) == (
        "send_email",
        {"to": "ana@example.test", "subject": "Status", "body": "On track."},
    )
    approve(store, first.run_id, gate.id, by="alice", args=gate.args)
    done = crew.resume(
        first.run_id, store=store, model=MockModel(crews.approval_script(), by_turn=True)
    )
    assert (done.status, done.output) == ("completed", "Sent 'Status' to ana@example.test.")


def test_run_checks_inputs_before_starting() -> None:
    store = MemoryStore()
    with pytest.raises(DslError, match=r"placeholder \{audience\} in its goal"):
        crews.sequential().run({"topic": "tides"}, store=store)
    assert store.list_runs() == []
