"""What ``ls`` and ``show`` tell about a run, read straight from its log.

Run-level facts (status, spend, gates, output, error) are recorded in ``run.*``,
``model.called`` and ``gate.*`` events, so one pass over the log gets them without
compiling the graph: ``ls`` stays fast over many runs and works for any log, even
one whose graph is not in the store. The pass follows the same rules as
:class:`executor.fold.RunState` for these facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from executor.errors import RunNotFound
from substrate.blobs import unpack
from substrate.codec import decode
from substrate.errors import FoldlineError
from substrate.events import (
    BlobRef,
    BudgetExceeded,
    BudgetRaised,
    Event,
    GateDecided,
    GateOpened,
    Inline,
    ModelCalled,
    RunCancelled,
    RunCancelRequested,
    RunCompleted,
    RunFailed,
    RunResumed,
    RunStarted,
    RunWaiting,
    SignalReceived,
)
from substrate.stores.base import EventStore

__all__ = ["GateView", "RunView", "view_run", "view_log", "event_json", "payload_value"]

_TERMINAL = ("completed", "failed", "cancelled")


@dataclass
class GateView:
    """A gate and, once decided, its decision."""

    id: str
    node: str | None
    reason: str
    question: str
    tool: str | None
    args: Any
    opened_seq: int
    opened_at: int
    decision: str | None = None
    by: str = ""
    note: str = ""
    answer: Any = None
    decided_at: int | None = None


@dataclass
class RunView:
    """A run as ``ls`` and ``show`` present it."""

    run_id: str
    graph_hash: str | None = None
    graph_id: str | None = None
    status: str = "new"
    started_at: int | None = None
    ended_at: int | None = None
    last_at: int = 0
    events: int = 0
    cost_usd: float = 0.0
    tokens: int = 0
    model_calls: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    inputs: Any = None
    output: Any = None
    error: str | None = None
    waiting_on: list[str] = field(default_factory=list)
    #: Earliest time (µs) a timer the run waits on fires.
    waiting_until: int | None = None
    #: Names of the signals the run has received.
    signals: set[str] = field(default_factory=set)
    #: A budget raise arrived since the run last stopped to wait.
    budget_raised: bool = False
    #: The last call refused for the budget's sake.
    budget_exceeded: BudgetExceeded | None = None
    gates: list[GateView] = field(default_factory=list)
    resumes: int = 0
    cancel_requested: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in _TERMINAL

    @property
    def open_gates(self) -> list[GateView]:
        if self.terminal:
            return []
        return [g for g in self.gates if g.decision is None]

    @property
    def duration_us(self) -> int | None:
        """Start to end (or to the last event, for a run that has not ended)."""
        if self.started_at is None:
            return None
        return (self.ended_at if self.ended_at is not None else self.last_at) - self.started_at

    @property
    def source(self) -> str | None:
        return self.labels.get("source")

    @property
    def name(self) -> str:
        """The graph's id, or the file it came from when the id is the default."""
        if self.source and self.graph_id in (None, "main"):
            return self.source.rsplit("/", 1)[-1]
        return self.graph_id or "?"


def payload_value(payload: Any, store: EventStore) -> Any:
    """The value an event payload carries (a blob that cannot be read shows as a note)."""
    if isinstance(payload, Inline):
        return payload.value
    if isinstance(payload, BlobRef):
        try:
            return unpack(payload, store.get_blob)
        except FoldlineError as exc:
            return f"<blob {payload.digest[:12]} unreadable: {exc}>"
    return payload


def view_run(store: EventStore, run_id: str) -> tuple[RunView, list[Event]]:
    """Read ``run_id`` and summarize it.

    Raises:
        RunNotFound: the store has no such run.
    """
    log = store.read(run_id)
    if not log:
        raise RunNotFound(run_id)
    return view_log(store, run_id, log), log


def view_log(store: EventStore, run_id: str, log: list[Event]) -> RunView:
    """Summarize a run's log."""
    view = RunView(run_id, events=len(log))
    gates: dict[str, GateView] = {}
    for ev in log:
        d = ev.data
        view.last_at = ev.at
        if isinstance(d, RunStarted):
            view.status = "running"
            view.started_at = ev.at
            view.graph_hash = d.graph_hash
            labels = d.options.get("labels")
            if isinstance(labels, dict):
                view.labels = {str(k): str(v) for k, v in labels.items()}
            view.inputs = payload_value(d.inputs, store)
        elif isinstance(d, ModelCalled):
            view.cost_usd += d.cost_usd
            view.tokens += d.usage.input_tokens + d.usage.output_tokens
            view.model_calls += 1
        elif isinstance(d, GateOpened):
            gates[d.gate] = GateView(
                d.gate,
                ev.node,
                d.reason,
                d.question,
                d.tool,
                None if d.args is None else payload_value(d.args, store),
                ev.seq,
                ev.at,
            )
        elif isinstance(d, GateDecided) and d.gate in gates:
            g = gates[d.gate]
            g.decision, g.by, g.note, g.answer, g.decided_at = (
                d.decision,
                d.by,
                d.note,
                d.answer,
                ev.at,
            )
        elif isinstance(d, RunWaiting):
            view.status = "waiting"
            view.waiting_on = list(d.on)
            view.waiting_until = d.until
            view.budget_raised = False
        elif isinstance(d, RunResumed):
            view.resumes += 1
            if not view.terminal:
                view.status = "running"
                view.waiting_on = []
                view.waiting_until = None
        elif isinstance(d, BudgetExceeded):
            view.budget_exceeded = d
        elif isinstance(d, BudgetRaised):
            view.budget_raised = True
        elif isinstance(d, SignalReceived):
            view.signals.add(d.name)
        elif isinstance(d, RunCancelRequested):
            view.cancel_requested = True
        elif isinstance(d, RunCompleted):
            view.status, view.ended_at = "completed", ev.at
            view.output = payload_value(d.output, store)
        elif isinstance(d, RunFailed):
            view.status, view.ended_at = "failed", ev.at
            where = f" (node {d.node})" if d.node else ""
            view.error = f"{d.error.type}: {d.error.message}{where}"
        elif isinstance(d, RunCancelled):
            view.status, view.ended_at = "cancelled", ev.at
    view.gates = list(gates.values())
    if view.graph_hash is not None:
        view.graph_id = _graph_id(store, view.graph_hash)
    return view


_GRAPH_IDS: dict[str, str | None] = {}


def _graph_id(store: EventStore, graph_hash: str) -> str | None:
    if graph_hash not in _GRAPH_IDS:
        try:
            data = decode(store.get_graph(graph_hash))
        except FoldlineError:
            return None  # not cached: another store may hold it
        _GRAPH_IDS[graph_hash] = data.get("id") if isinstance(data, dict) else None
    return _GRAPH_IDS[graph_hash]


def event_json(ev: Event, store: EventStore) -> dict[str, Any]:
    """An event as plain JSON values, its payloads decoded (``show --json``)."""
    data: dict[str, Any] = {}
    for name in ev.data.__struct_fields__:
        value = getattr(ev.data, name)
        if isinstance(value, Inline | BlobRef):
            data[name] = payload_value(value, store)
        else:
            data[name] = msgspec.to_builtins(value)
    return {
        "seq": ev.seq,
        "at": ev.at,
        "kind": ev.kind,
        "node": ev.node,
        "data": data,
        "prev": ev.prev,
    }
