"""The chaos workload: a >=100-node mixed graph, and a worker process that runs or resumes it.

``python -m tests.executor.chaos DB RUN_ID SIDE_DIR`` starts the run if it does not exist,
else resumes it, and prints the final status as one JSON line. The scripted model bills
each answered call by appending ``node#index`` to ``SIDE_DIR/billed``; the non-idempotent
tool ``notify`` appends its idempotency key and result to ``SIDE_DIR/notified`` (the side
effect the ledger must never repeat). The parent SIGKILLs workers at random moments.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from kir import Edge, Graph, Node, ToolSpec
from kir.schema import AgentConfig, CodeConfig, LlmConfig, MapConfig, RouterConfig, ToolConfig
from substrate import CallKey, MockModel, MockReply, ModelRequest

FNS = "tests.executor.fns"


def build_graph() -> Graph:
    """110 top-level nodes plus 24 map items: code, llm, agent, map, router, tools."""
    nodes: list[Node] = [
        Node(id="seed", config=CodeConfig(function=f"{FNS}:mix"), inputs={"x": "$input.x"})
    ]
    edges: list[Edge] = []
    lanes = 6
    prev = ["seed"] * lanes
    for layer in range(17):
        for lane in range(lanes):
            nid = f"L{layer}_{lane}"
            kind = (layer + lane) % 6
            src = prev[lane]
            if kind == 0:
                node = Node(id=nid, config=LlmConfig(model="mock:m", prompt=f"{nid} {{v}}"), inputs={"v": src})
            elif kind == 1:
                node = Node(
                    id=nid,
                    config=AgentConfig(model="mock:m", instructions=f"{nid}", tools=["lookup", "notify"], max_turns=4),
                    inputs={"v": src},
                )
            elif kind == 2:
                node = Node(id=nid, config=ToolConfig(tool="lookup", args={"q": f"{nid}:{{v}}"}), inputs={"v": src})
            elif kind == 3:
                node = Node(id=nid, config=ToolConfig(tool="notify", args={"msg": f"{nid}"}), inputs={"v": src})
            else:
                node = Node(id=nid, config=CodeConfig(function=f"{FNS}:mix"), inputs={"v": src})
            nodes.append(node)
            edges.append(Edge(src, nid))
            prev[lane] = nid
        if layer == 8:
            # A router in lane 0 picks one of two branches; the other is skipped.
            nodes.append(
                Node(id="route", config=RouterConfig(labels=["even", "odd"], condition="'even' if v % 2 == 0 else 'odd'"), inputs={"v": "seed"})
            )
            edges.append(Edge("seed", "route"))
            for label in ("even", "odd"):
                nodes.append(Node(id=f"br_{label}", config=CodeConfig(function=f"{FNS}:mix"), inputs={"v": "seed"}))
                edges.append(Edge("route", f"br_{label}", when=label))
    nodes.append(
        Node(
            id="fan",
            config=MapConfig(
                over="$input.items",
                node=Node(id="each", config=LlmConfig(model="mock:m", prompt="item {i}"), inputs={"i": "$item"}),
                max_concurrency=6,
            ),
        )
    )
    edges.append(Edge("seed", "fan"))
    join_inputs = {f"l{lane}": prev[lane] for lane in range(lanes)}
    join_inputs |= {"fan": "fan", "even": "br_even", "odd": "br_odd"}
    nodes.append(Node(id="join", config=CodeConfig(function=f"{FNS}:join"), inputs=join_inputs))
    for src in [*prev, "fan", "br_even", "br_odd"]:
        edges.append(Edge(src, "join"))
    return Graph(
        nodes=nodes,
        edges=edges,
        tools=[ToolSpec(name="lookup", idempotent=True), ToolSpec(name="notify", idempotent=False)],
        output="join",
    )


INPUTS = {"x": 7, "items": list(range(24))}


def _append(path: Path, line: str) -> None:
    # One write per line; O_APPEND makes it atomic against a SIGKILL.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def model(side: Path) -> MockModel:
    def script(req: ModelRequest, key: CallKey) -> MockReply | str:
        node = key.node
        if node.startswith("L") and req.tools:  # an agent: lookup, notify, then answer
            if key.index == 0:
                return MockReply(tool_calls=[("lookup", {"q": node})])
            if key.index == 2:
                return MockReply(tool_calls=[("notify", {"msg": node})])
            return f"{node} done"
        return f"{node}:{len(req.messages[-1].content)}"

    def bill(req: ModelRequest, key: CallKey, resp: Any) -> None:
        _append(side / "billed", f"{key.node}#{key.index}")

    def latency(key: CallKey) -> float:
        return 0.001 + (hash((key.node, key.index)) % 3) * 0.001

    return MockModel(script, on_call=bill, latency=latency)


def tools(side: Path) -> dict[str, Any]:
    async def lookup(q: str) -> str:
        await asyncio.sleep(0.001)
        return f"found {q}"

    def notify(msg: str, idempotency_key: str) -> str:
        result = f"notified {msg}"
        _append(side / "notified", json.dumps([idempotency_key, result]))
        return result

    return {"lookup": lookup, "notify": notify}


def main(db: str, run_id: str, side_dir: str) -> None:
    from executor.api import arun, aresume
    from executor.schedule import EngineOptions
    from substrate import SQLiteStore

    side = Path(side_dir)
    store = SQLiteStore(db)
    options = EngineOptions(max_concurrency=8, poll_interval_s=5.0)
    print("ready", flush=True)
    if store.head(run_id).next_seq == 0:
        res = asyncio.run(arun(build_graph(), INPUTS, store=store, model=model(side), tools=tools(side), run_id=run_id, seed="c" * 32, options=options))
    else:
        res = asyncio.run(aresume(run_id, store=store, model=model(side), tools=tools(side), options=options))
    print(json.dumps({"status": res.status, "gates": [[g.id, g.reason] for g in res.gates], "error": res.error}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
