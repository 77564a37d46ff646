"""The fold: the state of a run is a function of its log, and of nothing else.

:class:`RunState` is built by applying events one at a time, in log order. Each
``apply`` does a constant amount of work (plus the frontier's update, which touches
only the successors of the instance that ended), never re-reads the log and never
does I/O, so a run's state can be rebuilt from its log by any process, and the state
built live equals the state folded from the log read back (a property test).

>>> # state = RunState(compiled, "run-1"); for ev in store.read("run-1"): state.apply(ev)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import msgspec

from executor.errors import FoldError
from executor.frontier import Frontier, GraphView, Place, SingleNode
from kir.compile import CompiledGraph
from kir.schema import MapConfig, Node, SubgraphConfig
from substrate.events import (
    BudgetExceeded,
    BudgetRaised,
    ClockRead,
    ErrorInfo,
    Event,
    GateDecided,
    GateOpened,
    LogHeader,
    ModelCalled,
    ModelRequested,
    NodeCompleted,
    NodeFailed,
    NodeSkipped,
    NodeStarted,
    Payload,
    RunCancelled,
    RunCancelRequested,
    RunCompleted,
    RunFailed,
    RunResumed,
    RunStarted,
    RunWaiting,
    SignalReceived,
    ToolRequested,
    ToolReturned,
)

__all__ = [
    "RunStatus",
    "CallRecord",
    "Instance",
    "Gate",
    "Budget",
    "RunState",
    "fold",
    "gate_id",
]

RunStatus = Literal["new", "running", "waiting", "completed", "failed", "cancelled"]
InstanceStatus = Literal["pending", "running", "completed", "failed", "skipped"]

#: Node kinds whose instances open scopes when they start. (A config's ``kind`` is a
#: plain field: checking it is cheaper than ``isinstance`` on a pydantic class.)
_COMPOSITE_KINDS = frozenset({"map", "subgraph"})


def gate_id(key: str, call: int) -> str:
    """The id of the gate opened by call ``call`` of instance ``key``."""
    return f"{key}#{call}"


@dataclass(eq=False)
class CallRecord:
    """What the log holds for one journaled call of an instance."""

    requested: ModelRequested | ToolRequested | None = None
    answer: ModelCalled | ToolReturned | ClockRead | None = None
    #: How often the call was requested: a tool call run again after its unknown-outcome
    #: gate was approved is requested again first (engine behaviour 2).
    requests: int = 0


#: The calls of an instance that made none: shared, and read-only so that it stays empty.
_NO_CALLS: Mapping[int, CallRecord] = MappingProxyType({})


class Instance(msgspec.Struct, eq=False, gc=False):
    """One node instance, as the log tells it.

    A msgspec struct (never encoded) rather than a dataclass: a long map makes one per
    item, and a struct is built by C code, several times faster than running an __init__.
    Not tracked by the cycle collector (``gc=False``): an instance holds only values from
    the log, never anything that refers back to it, so it cannot be part of a cycle.
    """

    key: str
    status: InstanceStatus = "pending"
    attempt: int = 0
    started_at: int | None = None
    ended_at: int | None = None
    #: First call index of the current attempt: a retry never reuses an old answer.
    call_base: int = 0
    #: call index -> what the log holds for it (read-only: use :meth:`call` to add one).
    calls: Mapping[int, CallRecord] = _NO_CALLS
    output: Payload | None = None
    route: list[str] | None = None
    error: ErrorInfo | None = None
    retry_at: int | None = None
    items: int | None = None
    cost_usd: float = 0.0
    tokens: int = 0
    model_calls: int = 0

    def call(self, index: int) -> CallRecord:
        calls = self.calls
        rec = calls.get(index)
        if rec is None:
            if not isinstance(calls, dict):
                calls = self.calls = {}
            rec = calls[index] = CallRecord()
        return rec

    @property
    def next_call(self) -> int:
        return max(self.calls, default=-1) + 1


@dataclass(eq=False)
class Gate:
    """A gate: opened by an instance, decided (or not yet) by a human."""

    id: str
    node: str
    opened: GateOpened
    opened_at: int
    decided: GateDecided | None = None
    decided_at: int | None = None


@dataclass(eq=False)
class Budget:
    """Caps and spend. ``reserved`` is the worst case of calls requested and not answered."""

    usd: float | None = None
    tokens: int | None = None
    calls: int | None = None
    on_exceed: Literal["wait", "fail"] = "wait"
    spent_usd: float = 0.0
    spent_tokens: int = 0
    spent_calls: int = 0
    reserved_usd: float = 0.0
    reserved_tokens: int = 0
    reserved_calls: int = 0


class _Instances(Mapping[str, "Instance"]):
    """The instances of a run by key, read-only: each is kept by its frontier place
    (:attr:`~executor.frontier.Place.inst`), in the order the places were made."""

    __slots__ = ("_places",)

    def __init__(self, places: Mapping[str, Place]) -> None:
        self._places = places

    def __getitem__(self, key: str) -> Instance:
        place = self._places.get(key)
        if place is None or place.inst is None:
            raise KeyError(key)
        return place.inst

    def get(self, key: str, default: Any = None) -> Any:
        place = self._places.get(key)
        return default if place is None or place.inst is None else place.inst

    def __contains__(self, key: object) -> bool:
        place = self._places.get(key)  # type: ignore[call-overload]
        return place is not None and place.inst is not None

    def __iter__(self) -> Iterator[str]:
        return (k for k, p in self._places.items() if p.inst is not None)

    def __len__(self) -> int:
        return sum(p.inst is not None for p in self._places.values())


class RunState:
    """The folded state of one run.

    Attributes:
        graph: the compiled graph the run executes.
        frontier: the incremental runnable set.
        instances: node instance key -> :class:`Instance` (a read-only view: each instance
            is kept by its frontier place).
        gates: gate id -> :class:`Gate`.
        applied: number of events applied (for the growth test).
    """

    def __init__(self, graph: CompiledGraph, run_id: str) -> None:
        self.graph = graph
        self.run_id = run_id
        self.status: RunStatus = "new"
        #: Whether the status is completed, failed or cancelled (kept with the status: the
        #: engine asks several times a step).
        self.terminal = False
        self.next_seq = 0
        self.seed = ""
        self.inputs: Payload | None = None
        self.header: LogHeader | None = None
        self.options: dict[str, Any] = {}
        self.started_at: int | None = None
        self.ended_at: int | None = None
        self.last_at = 0
        self.output: Payload | None = None
        self.error: ErrorInfo | None = None
        self.failed_node: str | None = None
        self.waiting_on: list[str] = []
        self.waiting_until: int | None = None
        self.cancel_requested = False
        self.cancel_reason = ""
        self.resumes = 0
        self.frontier = Frontier()
        self._places = self.frontier.places  # for the handlers of the most common events
        self.instances: Mapping[str, Instance] = _Instances(self._places)
        self.gates: dict[str, Gate] = {}
        self.signals: dict[str, list[Payload]] = {}
        self.budget = Budget()
        self.last_budget_exceeded: BudgetExceeded | None = None
        self.applied = 0

    # -- the fold -------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Fold one event into the state (the engine folds each event it emits so).

        Raises:
            FoldError: the event is out of sequence or of a kind the fold does not know.
        """
        seq = self.next_seq
        if event.seq != seq:
            raise self._out_of_sequence(event, seq)
        data = event.data
        handler = _HANDLERS.get(type(data))
        if handler is None:
            raise self._unknown_kind(event)
        handler(self, event, data)
        self.next_seq = seq + 1
        self.last_at = event.at
        self.applied += 1

    def apply_all(self, events: Iterable[Event]) -> RunState:
        """Fold events in order (what :meth:`apply` does for each, in one loop).

        Raises:
            FoldError: as :meth:`apply`; the events before the bad one stay applied.
        """
        handlers = _HANDLERS
        seq = start = self.next_seq
        last_at = self.last_at
        try:
            for event in events:
                if event.seq != seq:
                    raise self._out_of_sequence(event, seq)
                data = event.data
                handler = handlers.get(type(data))
                if handler is None:
                    raise self._unknown_kind(event)
                handler(self, event, data)
                seq += 1
                last_at = event.at
        finally:
            # Counters are kept in locals while the loop runs; no handler reads them.
            self.next_seq = seq
            self.last_at = last_at
            self.applied += seq - start
        return self

    def _out_of_sequence(self, event: Event, seq: int) -> FoldError:
        return FoldError(
            f"run {self.run_id!r}: event seq {event.seq} applied where seq {seq} was expected"
        )

    def _unknown_kind(self, event: Event) -> FoldError:
        return FoldError(
            f"run {self.run_id!r} seq {event.seq}: no fold for event kind {event.kind!r}"
        )

    # -- lookups --------------------------------------------------------------------

    def instance(self, key: str) -> Instance:
        """The instance ``key``, made (pending) if it has none yet.

        Raises:
            FoldError: the run has not reached ``key``.
        """
        place = self._places.get(key)
        if place is None:
            raise FoldError(f"run {self.run_id!r}: no node instance {key!r} has been reached")
        inst = place.inst
        if inst is None:
            inst = place.inst = Instance(key)
        return inst

    def node(self, key: str) -> Node:
        """The KIR node an instance runs."""
        return self.frontier.node_at(key)

    def scope_graph(self, key: str) -> GraphView:
        """The graph of the scope an instance belongs to."""
        return self.frontier.node_of(key)[0].graph

    @property
    def open_gates(self) -> list[Gate]:
        return [g for g in self.gates.values() if g.decided is None]

    @property
    def in_flight(self) -> list[str]:
        """Instances started and not ended (or failed and awaiting a retry)."""
        return [
            k
            for k, p in self._places.items()
            if p.inst is not None and p.inst.status in ("running", "failed")
        ]

    # -- event handlers ---------------------------------------------------------------

    def _run_started(self, ev: Event, d: RunStarted) -> None:
        if self.status != "new":
            raise FoldError(f"run {self.run_id!r} seq {ev.seq}: run.started twice")
        if d.graph_hash != self.graph.graph_hash:
            raise FoldError(
                f"run {self.run_id!r}: log was recorded with graph {d.graph_hash[:12]}, "
                f"not {self.graph.graph_hash[:12]}"
            )
        self.status = "running"
        self.seed = d.seed
        self.inputs = d.inputs
        self.header = d.header
        self.options = d.options
        self.started_at = ev.at
        caps = d.options.get("budget") or {}
        self.budget.usd = caps.get("usd")
        self.budget.tokens = caps.get("tokens")
        self.budget.calls = caps.get("calls")
        self.budget.on_exceed = caps.get("on_exceed", "wait")
        self.frontier.open_scope("", self.graph, (), None)

    def _run_resumed(self, ev: Event, d: RunResumed) -> None:
        self.resumes += 1
        if not self.terminal:
            self.status = "running"
            self.waiting_on = []
            self.waiting_until = None

    def _cancel_requested(self, ev: Event, d: RunCancelRequested) -> None:
        self.cancel_requested = True
        self.cancel_reason = d.reason

    def _run_completed(self, ev: Event, d: RunCompleted) -> None:
        self.status = "completed"
        self.terminal = True
        self.output = d.output
        self.ended_at = ev.at

    def _run_failed(self, ev: Event, d: RunFailed) -> None:
        self.status = "failed"
        self.terminal = True
        self.error = d.error
        self.failed_node = d.node
        self.ended_at = ev.at

    def _run_waiting(self, ev: Event, d: RunWaiting) -> None:
        self.status = "waiting"
        self.waiting_on = list(d.on)
        self.waiting_until = d.until

    def _run_cancelled(self, ev: Event, d: RunCancelled) -> None:
        self.status = "cancelled"
        self.terminal = True
        self.ended_at = ev.at

    def _node_started(self, ev: Event, d: NodeStarted) -> None:
        # Every node instance has a node.started and a node.completed: they are most of
        # a long log. Their common case (a first attempt; a completion of a known
        # instance) is folded without a further call.
        place = self._places.get(ev.node)  # type: ignore[arg-type]  # None: no such place
        if place is None or d.attempt != 1 or place.inst is not None:
            self._node_restarted(ev, d)
            return
        place.status = "running"  # what frontier.started does
        inst = place.inst = Instance(place.key, "running", 1, ev.at)
        fan = place.fan
        graph = fan.body if fan is not None else place.scope.graph  # type: ignore[union-attr]
        node = graph.nodes[place.node_id]
        if node.config.kind in _COMPOSITE_KINDS:
            self._open_composite(inst, node, d)

    def _node_restarted(self, ev: Event, d: NodeStarted) -> None:
        """node.started other than a first attempt's (a retry), or one that is wrong."""
        key = self._key(ev)
        node = self.frontier.started(key)
        attempt = d.attempt
        place = self._places[key]
        inst = place.inst
        if inst is None:
            inst = place.inst = Instance(key, "running", attempt, ev.at)
        else:
            inst.status = "running"
            inst.attempt = attempt
            inst.call_base = inst.next_call
            inst.error = None
            inst.retry_at = None
            if inst.started_at is None:
                inst.started_at = ev.at
        if attempt == 1 and node.config.kind in _COMPOSITE_KINDS:
            self._open_composite(inst, node, d)

    def _open_composite(self, inst: Instance, node: Node, d: NodeStarted) -> None:
        """A map or subgraph instance started: open its scopes."""
        key, config, fr = inst.key, node.config, self.frontier
        if isinstance(config, MapConfig):
            inst.items = d.items or 0
            body = self._map_body(key, config)
            fr.open_map(key, body, inst.items, config.max_concurrency)
        elif isinstance(config, SubgraphConfig):
            sub = self.scope_graph(key).subgraphs[config.graph]
            fr.open_scope(key + "/", sub, fr.order_keys[key], key)

    def _map_body(self, key: str, config: MapConfig) -> GraphView:
        parent = self.scope_graph(key)
        if config.graph is not None:
            body: GraphView = parent.subgraphs[config.graph]
            return body
        assert config.node is not None  # guaranteed by MapConfig's validator
        return SingleNode(config.node, parent.subgraphs, parent.tools)

    def _node_completed(self, ev: Event, d: NodeCompleted) -> None:
        place = self._places.get(ev.node)  # type: ignore[arg-type]  # None: no such place
        if place is None or (inst := place.inst) is None:
            inst = self.instance(self._key(ev))
            place = self._places[inst.key]
        inst.status = "completed"
        inst.output = d.output
        inst.route = d.route
        inst.ended_at = ev.at
        self.frontier.done_at(place, d.route, False)

    def _node_failed(self, ev: Event, d: NodeFailed) -> None:
        inst = self.instance(self._key(ev))
        inst.status = "failed"
        inst.error = d.error
        inst.retry_at = d.retry_at
        inst.ended_at = ev.at

    def _node_skipped(self, ev: Event, d: NodeSkipped) -> None:
        key = self._key(ev)
        inst = self.instance(key)
        inst.status = "skipped"
        inst.ended_at = ev.at
        self.frontier.done(key, None, skipped=True)

    def _model_requested(self, ev: Event, d: ModelRequested) -> None:
        rec = self.instance(self._key(ev)).call(d.call)
        if rec.requested is None:
            rec.requested = d
            b = self.budget
            b.reserved_usd += d.max_cost_usd
            b.reserved_tokens += d.max_tokens
            b.reserved_calls += 1

    def _model_called(self, ev: Event, d: ModelCalled) -> None:
        inst = self.instance(self._key(ev))
        rec = inst.call(d.call)
        rec.answer = d
        b = self.budget
        req = rec.requested
        if isinstance(req, ModelRequested):
            b.reserved_usd -= req.max_cost_usd
            b.reserved_tokens -= req.max_tokens
            b.reserved_calls -= 1
        tokens = d.usage.input_tokens + d.usage.output_tokens
        b.spent_usd += d.cost_usd
        b.spent_tokens += tokens
        b.spent_calls += 1
        inst.cost_usd += d.cost_usd
        inst.tokens += tokens
        inst.model_calls += 1

    def _tool_requested(self, ev: Event, d: ToolRequested) -> None:
        rec = self.instance(self._key(ev)).call(d.call)
        rec.requested = d
        rec.requests += 1

    def _tool_returned(self, ev: Event, d: ToolReturned) -> None:
        self.instance(self._key(ev)).call(d.call).answer = d

    def _clock_read(self, ev: Event, d: ClockRead) -> None:
        self.instance(self._key(ev)).call(d.call).answer = d

    def _gate_opened(self, ev: Event, d: GateOpened) -> None:
        if d.gate in self.gates:
            raise FoldError(f"run {self.run_id!r} seq {ev.seq}: gate {d.gate!r} opened twice")
        self.gates[d.gate] = Gate(d.gate, self._key(ev), d, ev.at)

    def _gate_decided(self, ev: Event, d: GateDecided) -> None:
        gate = self.gates.get(d.gate)
        if gate is None:
            raise FoldError(f"run {self.run_id!r} seq {ev.seq}: gate {d.gate!r} was never opened")
        if gate.decided is not None:
            raise FoldError(f"run {self.run_id!r} seq {ev.seq}: gate {d.gate!r} decided twice")
        gate.decided = d
        gate.decided_at = ev.at

    def _signal_received(self, ev: Event, d: SignalReceived) -> None:
        self.signals.setdefault(d.name, []).append(d.payload)

    def _budget_exceeded(self, ev: Event, d: BudgetExceeded) -> None:
        self.last_budget_exceeded = d

    def _budget_raised(self, ev: Event, d: BudgetRaised) -> None:
        b = self.budget
        if d.usd is not None:
            b.usd = d.usd
        if d.tokens is not None:
            b.tokens = d.tokens
        if d.calls is not None:
            b.calls = d.calls
        self.last_budget_exceeded = None

    def _key(self, ev: Event) -> str:
        key = ev.node
        if key is None:
            raise FoldError(f"run {self.run_id!r} seq {ev.seq}: {ev.kind} without a node")
        if key not in self.frontier.places:
            raise FoldError(
                f"run {self.run_id!r} seq {ev.seq}: {ev.kind} for node instance {key!r}, "
                "which the run has not reached"
            )
        return key

    # -- comparison -----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the state holds, as plain values (two equal folds give equal snapshots)."""
        b = self.budget
        return {
            "status": self.status,
            "next_seq": self.next_seq,
            "seed": self.seed,
            "inputs": self.inputs,
            "output": self.output,
            "error": self.error,
            "waiting": [self.waiting_on, self.waiting_until],
            "cancel": [self.cancel_requested, self.cancel_reason],
            "resumes": self.resumes,
            "budget": [
                b.usd,
                b.tokens,
                b.calls,
                b.on_exceed,
                round(b.spent_usd, 12),
                b.spent_tokens,
                b.spent_calls,
                round(b.reserved_usd, 12),
                b.reserved_tokens,
                b.reserved_calls,
            ],
            "instances": {
                k: [
                    i.status,
                    i.attempt,
                    i.call_base,
                    i.output,
                    i.route,
                    i.error,
                    i.retry_at,
                    i.items,
                    i.started_at,
                    i.ended_at,
                    i.tokens,
                    i.model_calls,
                    {n: [c.requested, c.answer] for n, c in sorted(i.calls.items())},
                ]
                for k, i in sorted(self.instances.items())
            },
            "gates": {
                g.id: [g.node, g.opened, g.decided, g.opened_at, g.decided_at]
                for g in self.gates.values()
            },
            "signals": self.signals,
            "frontier": {
                "status": dict(sorted(self.frontier.status.items())),
                "scopes": sorted(self.frontier.scopes),
                "root_done": self.frontier.root_done,
            },
        }


#: The fold of each event kind: ``handler(state, event, data)``. Plain functions, not
#: bound methods kept on the state: a state that held its own methods would be a
#: reference cycle, freed only by the cycle collector.
_HANDLERS: dict[type[Any], Callable[[RunState, Event, Any], None]] = {
    RunStarted: RunState._run_started,
    RunResumed: RunState._run_resumed,
    RunCancelRequested: RunState._cancel_requested,
    RunCompleted: RunState._run_completed,
    RunFailed: RunState._run_failed,
    RunWaiting: RunState._run_waiting,
    RunCancelled: RunState._run_cancelled,
    NodeStarted: RunState._node_started,
    NodeCompleted: RunState._node_completed,
    NodeFailed: RunState._node_failed,
    NodeSkipped: RunState._node_skipped,
    ModelRequested: RunState._model_requested,
    ModelCalled: RunState._model_called,
    ToolRequested: RunState._tool_requested,
    ToolReturned: RunState._tool_returned,
    ClockRead: RunState._clock_read,
    GateOpened: RunState._gate_opened,
    GateDecided: RunState._gate_decided,
    SignalReceived: RunState._signal_received,
    BudgetExceeded: RunState._budget_exceeded,
    BudgetRaised: RunState._budget_raised,
}


def fold(state: RunState, event: Event) -> RunState:
    """``state`` with ``event`` applied (the state is updated in place and returned)."""
    state.apply(event)
    return state
