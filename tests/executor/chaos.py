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
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from executor.api import approve, load_graph, reject, result_of
from executor.context import outcome_gate_id
from executor.fold import RunState
from executor.replay import replay
from kir import Edge, Graph, Node, ToolSpec
from kir.schema import AgentConfig, CodeConfig, LlmConfig, MapConfig, RouterConfig, ToolConfig
from substrate import CallKey, MockModel, MockReply, ModelRequest, SQLiteStore
from substrate.events import GateOpened, ModelCalled, RunResumed, ToolRequested, ToolReturned

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
                node = Node(
                    id=nid,
                    config=LlmConfig(model="mock:m", prompt=f"{nid} {{v}}"),
                    inputs={"v": src},
                )
            elif kind == 1:
                node = Node(
                    id=nid,
                    config=AgentConfig(
                        model="mock:m",
                        instructions=f"{nid}",
                        tools=["lookup", "notify"],
                        max_turns=4,
                    ),
                    inputs={"v": src},
                )
            elif kind == 2:
                node = Node(
                    id=nid,
                    config=ToolConfig(tool="lookup", args={"q": f"{nid}:{{v}}"}),
                    inputs={"v": src},
                )
            elif kind == 3:
                node = Node(
                    id=nid,
                    config=ToolConfig(tool="notify", args={"msg": f"{nid}"}),
                    inputs={"v": src},
                )
            else:
                node = Node(id=nid, config=CodeConfig(function=f"{FNS}:mix"), inputs={"v": src})
            nodes.append(node)
            edges.append(Edge(src, nid))
            prev[lane] = nid
        if layer == 8:
            # A router in lane 0 picks one of two branches; the other is skipped.
            nodes.append(
                Node(
                    id="route",
                    config=RouterConfig(
                        labels=["even", "odd"], condition="'even' if v % 2 == 0 else 'odd'"
                    ),
                    inputs={"v": "seed"},
                )
            )
            edges.append(Edge("seed", "route"))
            for label in ("even", "odd"):
                nodes.append(
                    Node(
                        id=f"br_{label}",
                        config=CodeConfig(function=f"{FNS}:mix"),
                        inputs={"v": "seed"},
                    )
                )
                edges.append(Edge("route", f"br_{label}", when=label))
    nodes.append(
        Node(
            id="fan",
            config=MapConfig(
                over="$input.items",
                node=Node(
                    id="each",
                    config=LlmConfig(model="mock:m", prompt="item {i}"),
                    inputs={"i": "$item"},
                ),
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
        if (side / HOLD).exists():  # the parent kills the worker here: done, not returned
            (side / HELD).touch()
            time.sleep(120)
        return result

    return {"lookup": lookup, "notify": notify}


ROOT = Path(__file__).resolve().parents[2]
#: Handlers a worker runs at once: at most this many model calls are answered and not yet
#: committed when it is killed.
MAX_MODEL_CALLS_IN_FLIGHT = 8
#: While this file is in a run's side directory, ``notify`` holds after its side effect
#: and touches ``HELD``: the parent kills the worker there, where the outcome is ambiguous.
HOLD = "hold-notify"
HELD = "held-in-notify"


def _worker(db: Path, run_id: str, side: Path) -> subprocess.Popen[bytes]:
    """A worker process. Its pipes are unbuffered bytes: reading the ``ready`` line then
    takes nothing more from the pipe, and ``communicate`` gets every later byte (a
    buffered reader could hold the result line too when the worker finishes at once,
    and ``communicate`` reads past that buffer)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.executor.chaos", str(db), run_id, str(side)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )


def _finish(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    raw_out, raw_err = proc.communicate(timeout=120)
    lines = raw_out.decode().strip().splitlines()
    assert proc.returncode == 0, raw_err.decode()[-3000:]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _settle_gates(db: Path, run_id: str, side: Path, gates: list[list[str]]) -> None:
    """Answer unknown-outcome gates from the tool's own ledger, as an operator would."""
    notified = _ledger(side)
    with SQLiteStore(db) as store:
        log = store.read(run_id)
        for gate_id, reason in gates:
            assert reason == "unknown-outcome", (gate_id, reason)
            opened = next(
                e for e in log if isinstance(e.data, GateOpened) and e.data.gate == gate_id
            )
            node = opened.node
            call = int(gate_id.split("#")[1].split(".")[0])
            req = next(
                e.data
                for e in log
                if isinstance(e.data, ToolRequested) and e.node == node and e.data.call == call
            )
            if req.idempotency_key in notified:
                reject(store, run_id, gate_id, by="chaos", answer=notified[req.idempotency_key])
            else:
                approve(store, run_id, gate_id, by="chaos")


def _ledger(side: Path) -> dict[str, str]:
    path = side / "notified"
    if not path.exists():
        return {}
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    keys = Counter(k for k, _ in entries)
    assert max(keys.values(), default=0) <= 1, (
        f"a non-idempotent tool ran twice: {keys.most_common(3)}"
    )
    return dict(entries)


def _reference(tmp: Path) -> Any:
    side = tmp / "ref"
    side.mkdir()
    db = tmp / "ref.db"
    res = _finish(_worker(db, "ref", side))
    assert res["status"] == "completed", res
    with SQLiteStore(db) as store:
        graph, log = load_graph(store, "ref")
        state = RunState(graph, "ref").apply_all(log)
        assert len(state.instances) >= 100
        return result_of(state, store).output


def run_chaos(tmp_path: Path, *, kills: int, seed: int, max_delay_s: float = 0.5) -> dict[str, Any]:
    """Kill workers ``kills`` times at random moments; check every run. Returns a report."""
    kills_wanted = kills
    rnd = random.Random(seed)
    expected = _reference(tmp_path)
    kills = 0
    replayed = 0
    window_rebills = 0
    outcome_gates = 0
    runs = 0
    while kills < kills_wanted:
        runs += 1
        run_id = f"chaos-{runs}"
        side = tmp_path / run_id
        side.mkdir()
        db = tmp_path / f"{run_id}.db"
        killed_here = 0
        # Calls the provider billed whose answer died with a killed worker, found at
        # each kill: billed then, and not in the log.
        in_window: Counter[str] = Counter()
        if runs == 1:  # the first kill lands inside a non-idempotent tool, after its effect
            (side / HOLD).touch()
        while True:
            billed_before = _billed(side)
            proc = _worker(db, run_id, side)
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"ready\n"
            if (side / HOLD).exists():
                deadline = time.monotonic() + 60
                while not (side / HELD).exists() and time.monotonic() < deadline:
                    assert proc.poll() is None, "the run ended before it called notify"
                    time.sleep(0.002)
                assert (side / HELD).exists(), "notify was not reached within 60 s"
                (side / HOLD).unlink()
            else:
                # Kill at a random moment of the run (some kills land after it finished).
                deadline = time.monotonic() + rnd.uniform(0.0, max_delay_s)
                while time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(0.002)
            if proc.poll() is None and kills < kills_wanted:
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=30)
                kills += 1
                killed_here += 1
                in_window += _died_with_worker(db, run_id, side, billed_before)
                continue
            res = _finish(proc)
            if res["status"] == "waiting":
                _settle_gates(db, run_id, side, res["gates"])
                continue
            assert res["status"] == "completed", (seed, res)
            break
        with SQLiteStore(db) as store:
            graph, log = load_graph(store, run_id)
            state = RunState(graph, run_id).apply_all(log)
            assert result_of(state, store).output == expected, f"seed {seed}"
            # SIGKILLed any number of times, the run still replays byte-identically.
            report = replay(store, run_id)
            assert report.events == len(log), f"seed {seed}"
            replayed += 1
        window_rebills += _check_billing(log, side, in_window, killed_here, seed)
        outcome_gates += _check_ledger(log, side, seed)
    assert kills >= kills_wanted
    # The first kill, inside notify after its effect, is one such call at least.
    assert outcome_gates >= min(kills, 1), f"seed {seed}: no unknown-outcome gate"
    return {
        "seed": seed,
        "kills": kills,
        "runs": runs,
        "replayed": replayed,
        "rebilled_in_window": window_rebills,
        "unknown_outcome_gates": outcome_gates,
    }


def _billed(side: Path) -> Counter[str]:
    path = side / "billed"
    return Counter(path.read_text().split()) if path.exists() else Counter()


def _recorded(log: list[Any]) -> Counter[str]:
    return Counter(f"{e.node}#{e.data.call}" for e in log if isinstance(e.data, ModelCalled))


def _died_with_worker(db: Path, run_id: str, side: Path, before: Counter[str]) -> Counter[str]:
    """Right after a kill: the calls the killed worker had billed whose answer is not in
    the log (answered, and not yet committed)."""
    with SQLiteStore(db) as store:
        recorded = _recorded(store.read(run_id))
    billed = _billed(side) - before
    return Counter({call: n for call, n in billed.items() if call not in recorded})


def _check_billing(
    log: list[Any], side: Path, in_window: Counter[str], kills: int, seed: int
) -> int:
    """What the provider billed is exactly what the log records, plus the calls found
    answered and not yet committed when a worker was killed (``in_window``): their answer
    died with the process, and the resumed run asked again (and recorded that answer)."""
    recorded = _recorded(log)
    billed = _billed(side)
    assert max(recorded.values()) == 1, f"seed {seed}: a call recorded twice"
    assert billed == recorded + in_window, (
        f"seed {seed}: billed {sorted((billed - recorded - in_window).elements())} beyond "
        f"the log and the kills' windows, or {sorted((recorded - billed).elements())} "
        f"recorded and never billed"
    )
    assert set(in_window) <= set(recorded), f"seed {seed}: a killed call was never made again"
    rebilled = in_window.total()
    assert rebilled <= kills * MAX_MODEL_CALLS_IN_FLIGHT, f"seed {seed}: {rebilled} for {kills}"
    return rebilled


def _check_ledger(log: list[Any], side: Path, seed: int) -> int:
    """Every non-idempotent call interrupted by a death became an unknown-outcome gate.
    Returns how many did."""
    _ledger(side)  # at most once per key
    returned = {(e.node, e.data.call) for e in log if isinstance(e.data, ToolReturned)}
    outcome_gates = {
        e.data.gate
        for e in log
        if isinstance(e.data, GateOpened) and e.data.reason == "unknown-outcome"
    }
    # Each request of a call (a call run again after an approved gate is requested
    # again) that a death interrupted before the next request or the result has its own
    # gate: .outcome for the first, .outcome.2 for the second, ...
    requests: dict[tuple[str, int], list[int]] = {}
    for e in log:
        if isinstance(e.data, ToolRequested) and e.data.tool == "notify":
            requests.setdefault((e.node, e.data.call), []).append(e.seq)
    returned_at = {(e.node, e.data.call): e.seq for e in log if isinstance(e.data, ToolReturned)}
    resumes = [e.seq for e in log if isinstance(e.data, RunResumed)]
    for (node, call), seqs in requests.items():
        ends: list[int | None] = [*seqs[1:], returned_at.get((node, call))]
        for n, (seq, end) in enumerate(zip(seqs, ends, strict=True), start=1):
            interrupted = any(seq < r and (end is None or r < end) for r in resumes)
            gate = outcome_gate_id(node, call, n)
            assert (gate in outcome_gates) == interrupted, (seed, node, call, n)
        last = outcome_gate_id(node, call, len(seqs))
        assert (node, call) in returned or last in outcome_gates, (seed, node, call)
    return len(outcome_gates)


def main(db: str, run_id: str, side_dir: str) -> None:
    from executor.api import aresume, arun
    from executor.schedule import EngineOptions
    from substrate import SQLiteStore

    side = Path(side_dir)
    store = SQLiteStore(db)
    options = EngineOptions(max_concurrency=MAX_MODEL_CALLS_IN_FLIGHT, poll_interval_s=5.0)
    print("ready", flush=True)
    if store.head(run_id).next_seq == 0:
        res = asyncio.run(
            arun(
                build_graph(),
                INPUTS,
                store=store,
                model=model(side),
                tools=tools(side),
                run_id=run_id,
                seed="c" * 32,
                options=options,
            )
        )
    else:
        res = asyncio.run(
            aresume(run_id, store=store, model=model(side), tools=tools(side), options=options)
        )
    print(
        json.dumps(
            {
                "status": res.status,
                "gates": [[g.id, g.reason] for g in res.gates],
                "error": res.error,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
