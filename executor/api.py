"""The Python API: run a graph, resume a run, decide gates, signal, cancel, raise a budget.

The engine is async; every entry point has an ``a``-prefixed coroutine and a thin sync
wrapper (``run`` wraps ``arun``). Decisions (``approve``, ``reject``, ``signal``,
``cancel``, ``raise_budget``) only append an input event, from any process, retrying
on ``ConcurrentAppend``; they do not drive the run — ``resume`` does.

>>> # result = run(graph, {"topic": "tides"}, store=SQLiteStore("runs.db"), model=MockModel())
>>> # result.status, result.output, result.cost_usd, result.gates
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from executor.errors import ExecutorError, GateError, RunNotFound
from executor.fold import RunState, RunStatus
from executor.schedule import Engine, EngineOptions, EngineStats
from kir.compile import CompiledGraph, compile_graph, load_compiled
from kir.errors import GraphInvalid
from kir.schema import Graph
from substrate.blobs import pack, unpack
from substrate.codec import digest, hash_value
from substrate.errors import ConcurrentAppend
from substrate.events import (
    BudgetRaised,
    Event,
    EventData,
    GateDecided,
    GateOpened,
    RunCancelRequested,
    RunStarted,
    SignalReceived,
    seal,
)
from substrate.gcpause import gc_paused
from substrate.live import PythonTools, SystemClock, new_seed
from substrate.mock import MockModel
from substrate.ports import Clock, ModelPort, ToolPort
from substrate.stores.base import EventStore, SealedLog

__all__ = [
    "GateInfo",
    "RunResult",
    "Budget",
    "arun",
    "run",
    "aresume",
    "resume",
    "approve",
    "reject",
    "answer",
    "signal",
    "cancel",
    "raise_budget",
    "load_graph",
    "load_sealed",
    "fold_log",
    "load_state",
    "result_of",
]


@dataclass(frozen=True)
class Budget:
    """Per-run caps, checked before each model call. ``None`` is no cap."""

    usd: float | None = None
    tokens: int | None = None
    calls: int | None = None
    on_exceed: Literal["wait", "fail"] = "wait"

    def to_options(self) -> dict[str, Any]:
        caps: dict[str, Any] = {"on_exceed": self.on_exceed}
        for name in ("usd", "tokens", "calls"):
            value = getattr(self, name)
            if value is not None:
                caps[name] = value
        return caps


@dataclass(frozen=True)
class GateInfo:
    """An open gate: what it asks, and for tool approvals the exact call it is bound to."""

    id: str
    node: str
    reason: str
    question: str
    tool: str | None = None
    args: Any = None
    args_hash: str | None = None


@dataclass(frozen=True)
class RunResult:
    """Where a run stands."""

    run_id: str
    status: RunStatus
    output: Any = None
    error: str | None = None
    cost_usd: float = 0.0
    tokens: int = 0
    model_calls: int = 0
    gates: list[GateInfo] = field(default_factory=list)
    waiting_on: list[str] = field(default_factory=list)
    events: int = 0
    stats: EngineStats | None = None


ToolsArg = ToolPort | Mapping[str, Callable[..., Any]] | None


def _tools(tools: ToolsArg) -> ToolPort:
    if tools is None:
        return PythonTools({})
    if isinstance(tools, Mapping):
        return PythonTools(tools)
    return tools


def _compiled(graph: Graph | CompiledGraph) -> CompiledGraph:
    return graph if isinstance(graph, CompiledGraph) else compile_graph(graph)


def result_of(state: RunState, store: EventStore, stats: EngineStats | None = None) -> RunResult:
    """A :class:`RunResult` from a folded state."""
    output = unpack(state.output, store.get_blob) if state.output is not None else None
    gates = []
    for g in state.open_gates:
        args = None if g.opened.args is None else unpack(g.opened.args, store.get_blob)
        gates.append(
            GateInfo(
                g.id,
                g.node,
                g.opened.reason,
                g.opened.question,
                g.opened.tool,
                args,
                g.opened.args_hash,
            )
        )
    error = None
    if state.error is not None:
        where = f" (node {state.failed_node})" if state.failed_node else ""
        error = f"{state.error.type}: {state.error.message}{where}"
    b = state.budget
    return RunResult(
        run_id=state.run_id,
        status=state.status,
        output=output,
        error=error,
        cost_usd=b.spent_usd,
        tokens=b.spent_tokens,
        model_calls=b.spent_calls,
        gates=gates,
        waiting_on=list(state.waiting_on),
        events=state.next_seq,
        stats=stats,
    )


async def arun(
    graph: Graph | CompiledGraph,
    inputs: Any = None,
    *,
    store: EventStore,
    model: ModelPort | None = None,
    tools: ToolsArg = None,
    clock: Clock | None = None,
    run_id: str | None = None,
    seed: str | None = None,
    budget: Budget | None = None,
    options: EngineOptions = EngineOptions(),
    labels: Mapping[str, str] | None = None,
) -> RunResult:
    """Start a run of ``graph`` and drive it until it completes, fails or waits.

    ``labels`` are recorded in ``run.started`` (for example the file the graph came
    from, so that another process can find its tools to resume it).
    """
    compiled = _compiled(graph)
    seed = seed or new_seed()
    run_id = run_id or f"run-{seed[:16]}"
    if store.head(run_id).next_seq:
        raise ExecutorError(f"run {run_id!r} already exists in the store")
    store.put_graph(compiled.graph_hash, compiled.canonical)
    state = RunState(compiled, run_id)
    engine = Engine(
        store,
        state,
        model=model or MockModel(),
        tools=_tools(tools),
        clock=clock or SystemClock(),
        options=options,
    )
    run_options: dict[str, Any] = {}
    if budget is not None:
        run_options["budget"] = budget.to_options()
    if labels:
        run_options["labels"] = {str(k): str(v) for k, v in labels.items()}
    run_options["max_concurrency"] = options.max_concurrency
    run_options["idempotency_base"] = run_id
    await engine.start({} if inputs is None else inputs, seed=seed, options=run_options)
    return result_of(engine.state, store, engine.stats)


def run(graph: Graph | CompiledGraph, inputs: Any = None, **kwargs: Any) -> RunResult:
    """Sync wrapper of :func:`arun`."""
    return asyncio.run(arun(graph, inputs, **kwargs))


_COMPILED: dict[str, CompiledGraph] = {}
_COMPILED_MAX = 64


def _graph_by_hash(store: EventStore, graph_hash: str, run_id: str) -> CompiledGraph:
    compiled = _COMPILED.get(graph_hash)
    if compiled is None:
        body = store.get_graph(graph_hash)
        if digest(body) != graph_hash:
            raise ExecutorError(
                f"run {run_id!r}: the stored graph does not hash to the recorded "
                f"{graph_hash[:12]} (the store is damaged)"
            )
        try:
            compiled = load_compiled(body)
        except GraphInvalid as exc:
            raise ExecutorError(f"run {run_id!r}: the stored graph is not valid: {exc}") from None
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[graph_hash] = compiled
    return compiled


def load_graph(store: EventStore, run_id: str) -> tuple[CompiledGraph, list[Event]]:
    """The compiled graph a run was started with, and the run's log."""
    with gc_paused():
        log = store.read(run_id)
    return _graph_of(store, run_id, log), log


def load_sealed(store: EventStore, run_id: str) -> tuple[CompiledGraph, SealedLog]:
    """:func:`load_graph`, the log with its stored bytes and hashes (for replay)."""
    with gc_paused():
        log = store.read_sealed(run_id)
    return _graph_of(store, run_id, log.events), log


def _graph_of(store: EventStore, run_id: str, log: list[Event]) -> CompiledGraph:
    if not log:
        raise RunNotFound(run_id)
    first = log[0].data
    if not isinstance(first, RunStarted):
        raise ExecutorError(f"run {run_id!r} does not begin with run.started")
    return _graph_by_hash(store, first.graph_hash, run_id)


def fold_log(graph: CompiledGraph, run_id: str, log: list[Event]) -> RunState:
    """The state of a run, folded from its log."""
    with gc_paused():
        return RunState(graph, run_id).apply_all(log)


def load_state(store: EventStore, run_id: str) -> RunState:
    """The state of a run, folded from its log as the log is read, a chunk at a time.

    What ``fold_log(*load_graph(store, run_id))`` gives, without holding the whole log:
    each chunk is folded while it is still in the CPU's caches, then freed.
    """
    state: RunState | None = None
    with gc_paused():
        for chunk in store.read_chunks(run_id):
            if state is None:
                first = chunk[0].data
                if not isinstance(first, RunStarted):
                    raise ExecutorError(f"run {run_id!r} does not begin with run.started")
                state = RunState(_graph_by_hash(store, first.graph_hash, run_id), run_id)
            state.apply_all(chunk)
    if state is None:
        raise RunNotFound(run_id)
    return state


async def aresume(
    run_id: str,
    *,
    store: EventStore,
    model: ModelPort | None = None,
    tools: ToolsArg = None,
    clock: Clock | None = None,
    options: EngineOptions = EngineOptions(),
) -> RunResult:
    """Take a run over (after a crash, or once what it waited on arrived) and drive it."""
    state = load_state(store, run_id)
    if state.terminal:
        return result_of(state, store)
    engine = Engine(
        store,
        state,
        model=model or MockModel(),
        tools=_tools(tools),
        clock=clock or SystemClock(),
        options=options,
        head=store.head(run_id),
    )
    await engine.resume()
    return result_of(engine.state, store, engine.stats)


def resume(run_id: str, **kwargs: Any) -> RunResult:
    """Sync wrapper of :func:`aresume`."""
    return asyncio.run(aresume(run_id, **kwargs))


# -- inputs from any process -------------------------------------------------------------


def _append_input(
    store: EventStore,
    run_id: str,
    clock: Clock | None,
    make: Callable[[list[Event]], tuple[str | None, EventData, dict[str, bytes]]],
    attempts: int = 20,
) -> None:
    """Read the log, build an input event from it, append at the head; retry on a race."""
    clock = clock or SystemClock()
    for _ in range(attempts):
        log = store.read(run_id)
        if not log:
            raise RunNotFound(run_id)
        node, data, blobs = make(log)
        head = store.head(run_id)
        if head.next_seq != len(log):
            continue
        events, bodies, _ = seal(head, [(clock.now(), node, data)])
        try:
            store.append(run_id, head.next_seq, events, bodies=bodies, blobs=blobs or None)
            return
        except ConcurrentAppend:
            continue
    raise ExecutorError(f"run {run_id!r}: could not append after {attempts} concurrent writes")


def _terminal(log: list[Event]) -> str | None:
    for ev in reversed(log):
        if ev.kind in ("run.completed", "run.failed", "run.cancelled"):
            return ev.kind.split(".")[1]
    return None


def _decide(
    store: EventStore,
    run_id: str,
    gate: str,
    decision: Literal["approve", "reject", "answer"],
    *,
    by: str,
    note: str,
    answer: Any,
    args: Any,
    clock: Clock | None,
) -> None:
    def make(log: list[Event]) -> tuple[str | None, EventData, dict[str, bytes]]:
        opened: GateOpened | None = None
        node: str | None = None
        for ev in log:
            if isinstance(ev.data, GateOpened) and ev.data.gate == gate:
                opened, node = ev.data, ev.node
            elif isinstance(ev.data, GateDecided) and ev.data.gate == gate:
                raise GateError(
                    f"run {run_id!r}: gate {gate!r} was already decided "
                    f"({ev.data.decision} by {ev.data.by or 'someone'})"
                )
        if opened is None:
            open_ids = [
                e.data.gate
                for e in log
                if isinstance(e.data, GateOpened)
                and not any(
                    isinstance(d.data, GateDecided) and d.data.gate == e.data.gate for d in log
                )
            ]
            hint = f" (open gates: {', '.join(open_ids)})" if open_ids else " (no gate is open)"
            raise GateError(f"run {run_id!r}: gate {gate!r} is not open{hint}")
        ended = _terminal(log)
        if ended:
            raise GateError(f"run {run_id!r} has {ended}; gate {gate!r} can no longer be decided")
        args_hash = opened.args_hash
        if args is not None and opened.tool is not None and hash_value(args) != opened.args_hash:
            raise GateError(
                f"run {run_id!r}: gate {gate!r} asks about {opened.tool!r} with other args "
                f"(hash {opened.args_hash}); an approval is bound to the exact call"
            )
        if decision == "answer" and opened.answer_schema is None:
            raise GateError(f"run {run_id!r}: gate {gate!r} takes approve/reject, not an answer")
        return (
            node,
            GateDecided(
                gate=gate,
                decision=decision,
                by=by,
                note=note,
                answer=answer,
                args_hash=args_hash,
            ),
            {},
        )

    _append_input(store, run_id, clock, make)


def approve(
    store: EventStore,
    run_id: str,
    gate: str,
    *,
    by: str,
    note: str = "",
    args: Any = None,
    clock: Clock | None = None,
) -> None:
    """Approve an open gate.

    For a tool approval, pass the ``args`` you reviewed: the approval is refused if they
    are not exactly the args the gate is bound to.

    Raises:
        GateError: the gate is not open, was already decided, or is bound to other args.
    """
    _decide(store, run_id, gate, "approve", by=by, note=note, answer=None, args=args, clock=clock)


def reject(
    store: EventStore,
    run_id: str,
    gate: str,
    *,
    by: str,
    note: str = "",
    answer: Any = None,
    clock: Clock | None = None,
) -> None:
    """Reject an open gate.

    For an unknown-outcome gate, rejecting means "it did happen": the tool is not run
    again and ``answer`` becomes its result.
    """
    _decide(store, run_id, gate, "reject", by=by, note=note, answer=answer, args=None, clock=clock)


def answer(
    store: EventStore,
    run_id: str,
    gate: str,
    value: Any,
    *,
    by: str,
    note: str = "",
    clock: Clock | None = None,
) -> None:
    """Answer a question gate (one with an answer schema)."""
    _decide(store, run_id, gate, "answer", by=by, note=note, answer=value, args=None, clock=clock)


def _live(run_id: str, what: str) -> Callable[[list[Event]], None]:
    def check(log: list[Event]) -> None:
        ended = _terminal(log)
        if ended:
            raise ExecutorError(f"run {run_id!r} has {ended}; cannot {what}")

    return check


def signal(
    store: EventStore, run_id: str, name: str, payload: Any = None, *, clock: Clock | None = None
) -> None:
    """Deliver a named signal to a run."""

    def make(log: list[Event]) -> tuple[str | None, EventData, dict[str, bytes]]:
        _live(run_id, f"signal {name!r}")(log)
        blobs: dict[str, bytes] = {}
        return None, SignalReceived(name=name, payload=pack(payload, blobs)), blobs

    _append_input(store, run_id, clock, make)


def cancel(
    store: EventStore, run_id: str, *, by: str = "", reason: str = "", clock: Clock | None = None
) -> None:
    """Ask a run to stop. A live engine stops at its next step; a waiting run on ``resume``."""

    def make(log: list[Event]) -> tuple[str | None, EventData, dict[str, bytes]]:
        _live(run_id, "cancel it")(log)
        return None, RunCancelRequested(by=by, reason=reason), {}

    _append_input(store, run_id, clock, make)


def raise_budget(
    store: EventStore,
    run_id: str,
    *,
    usd: float | None = None,
    tokens: int | None = None,
    calls: int | None = None,
    by: str = "",
    clock: Clock | None = None,
) -> None:
    """Set new caps for a run (``None`` keeps a cap); resume it to carry on."""

    def make(log: list[Event]) -> tuple[str | None, EventData, dict[str, bytes]]:
        _live(run_id, "raise its budget")(log)
        return None, BudgetRaised(usd=usd, tokens=tokens, calls=calls, by=by), {}

    _append_input(store, run_id, clock, make)
