"""An ops agent whose scaling tool needs a human's approval of each exact call.

Runs without an API key on the scripted model: it starts the run, which stops at the
approval gate before anything changes, approves the call it shows, and resumes::

    python examples/ops_agent.py                           # temp SQLite store
    foldline run examples/ops_agent.py --mock --input deployment=web --input replicas=3

The module exposes what ``foldline run`` loads: ``graph`` (the compiled crew),
``tools`` (name -> callable) and ``mock_script()`` (the scripted replies, by node).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from dsl import Agent, Crew, Task, tool
from executor import approve
from substrate import MockModel, MockReply, SQLiteStore

# A pretend cluster: deployment -> replicas. Tools must be deterministic here.
CLUSTER: dict[str, int] = {"web": 1, "worker": 2}


@tool(idempotent=True)
def get_deployment(name: str) -> dict[str, Any]:
    """Read the current state of a deployment.

    Args:
        name: the deployment, such as "web".
    """
    if name not in CLUSTER:
        raise ValueError(f"no deployment {name!r} (have: {', '.join(sorted(CLUSTER))})")
    return {"name": name, "replicas": CLUSTER[name]}


@tool(requires_approval=True, idempotent=True, timeout=60)
def scale_deployment(name: str, replicas: int) -> str:
    """Set how many replicas a deployment runs. A human approves each call.

    Args:
        name: the deployment, such as "web".
        replicas: the number of pods to run, 0 to 20.
    """
    if name not in CLUSTER:
        raise ValueError(f"no deployment {name!r}")
    if not 0 <= replicas <= 20:
        raise ValueError(f"replicas must be from 0 to 20, not {replicas}")
    before, CLUSTER[name] = CLUSTER[name], replicas
    return f"{name}: {before} -> {replicas} replicas"


sre = Agent(
    "Site Reliability Engineer",
    "Keep production deployments at their desired state",
    "You read the current state before you change anything, and change only what was asked.",
    model="openai:gpt-4o-mini",
    tools=[get_deployment, scale_deployment],
    max_turns=6,
)
ensure = Task(
    "Make sure deployment {deployment} runs {replicas} replicas.",
    "What you found and what you changed",
    agent=sre,
    name="ensure_replicas",
)

crew = Crew([sre], [ensure], name="ops_agent")
graph = crew.compile()
tools = crew.tools()
example_inputs = {"deployment": "web", "replicas": 3}


def mock_script() -> dict[str, list[MockReply | str]]:
    """What the scripted model answers, by node and turn."""
    return {
        "ensure_replicas": [
            MockReply(tool_calls=[("get_deployment", {"name": "web"})]),
            MockReply(tool_calls=[("scale_deployment", {"name": "web", "replicas": 3})]),
            "web ran 1 replica; it now runs 3.",
        ]
    }


def main(db: Path) -> None:
    with SQLiteStore(db) as store:
        first = crew.run(example_inputs, store=store, model=MockModel(mock_script(), by_turn=True))
        print(f"run: {first.run_id}")
        print(f"status: {first.status}")
        for gate in first.gates:
            print(f"gate {gate.id}: {gate.question} {gate.tool} {gate.args}")
        print(f"web replicas before approval: {CLUSTER['web']}")
        gate = first.gates[0]
        # A reviewer approves exactly the call shown; other args would be refused.
        approve(store, first.run_id, gate.id, by="ops-lead", args=gate.args)
        print(f"approved {gate.id} as ops-lead")
        done = crew.resume(first.run_id, store=store, model=MockModel(mock_script(), by_turn=True))
    print(f"status: {done.status}")
    print(f"web replicas after: {CLUSTER['web']}")
    print(f"output: {done.output}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "runs.db")
