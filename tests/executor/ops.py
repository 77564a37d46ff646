"""An ops agent for the approval test, driven by separate processes.

``python -m tests.executor.ops start|approve|approve-other|resume DB RUN SIDE_DIR``

The agent reads the cluster state (``get_state``, idempotent) and then wants
``apply_manifest`` (requires approval) with ``{"deployment": "web", "replicas": 3}``.
``apply_manifest`` appends the args it ran with to ``SIDE_DIR/applied``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from kir import Graph, Node, ToolSpec
from kir.schema import AgentConfig
from substrate import MockModel, MockReply

MANIFEST = {"deployment": "web", "replicas": 3}


def graph() -> Graph:
    return Graph(
        nodes=[
            Node(
                id="ops",
                config=AgentConfig(
                    model="mock:ops",
                    instructions="You keep the cluster at the desired state: {goal}",
                    tools=["get_state", "apply_manifest"],
                    max_turns=6,
                ),
                inputs={"goal": "$input.goal"},
            )
        ],
        tools=[
            ToolSpec(name="get_state", idempotent=True, description="Read the cluster state"),
            ToolSpec(name="apply_manifest", requires_approval=True, description="Apply a manifest"),
        ],
        output="ops",
    )


def model() -> MockModel:
    return MockModel(
        [
            MockReply(tool_calls=[("get_state", {})]),
            MockReply(tool_calls=[("apply_manifest", MANIFEST)]),
            "web scaled to 3 replicas",
        ]
    )


def tools(side: Path) -> dict[str, Any]:
    def get_state() -> dict[str, Any]:
        return {"web": {"replicas": 1}}

    def apply_manifest(deployment: str, replicas: int) -> str:
        with open(side / "applied", "a") as f:
            f.write(json.dumps({"deployment": deployment, "replicas": replicas}) + "\n")
        return "applied"

    return {"get_state": get_state, "apply_manifest": apply_manifest}


def main(cmd: str, db: str, run_id: str, side_dir: str) -> None:
    from executor.api import approve, resume, run
    from executor.errors import GateError
    from substrate import SQLiteStore

    store = SQLiteStore(db)
    side = Path(side_dir)
    if cmd == "start":
        res = run(
            graph(),
            {"goal": "web at 3 replicas"},
            store=store,
            model=model(),
            tools=tools(side),
            run_id=run_id,
        )
        out: dict[str, Any] = {
            "status": res.status,
            "gates": [[g.id, g.tool, g.args] for g in res.gates],
        }
    elif cmd in ("approve", "approve-other"):
        gate = os.environ["GATE"]
        args = MANIFEST if cmd == "approve" else {**MANIFEST, "replicas": 30}
        try:
            approve(store, run_id, gate, by="alice", args=args)
            out = {"approved": True}
        except GateError as exc:
            out = {"approved": False, "error": str(exc)}
    else:
        res = resume(
            run_id, store=store, model=MockModel(["web scaled to 3 replicas"]), tools=tools(side)
        )
        out = {"status": res.status, "output": res.output}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
