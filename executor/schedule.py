"""The engine: fold the log, compute the frontier, run it, append what happened, repeat.

``start`` appends ``run.started`` and then does exactly what ``resume`` does. Resuming
after a crash, in a brand-new process, is the same loop: the log is folded, instances
that were in flight are restarted (their journaled calls are answered from the log)
and the frontier is run. Nothing that completed runs again.

Commits. Events are buffered and committed before any external call (model, tool)
and whenever the loop is about to wait for running work, so a chain of pure nodes
costs one commit per node and completions that arrive together share one commit.
``tool.requested`` is committed durably (fsynced) before the tool runs.

Concurrent inputs. Another process may append an approval, a signal, a cancel or a
raised budget while the run is live. The engine's next append then fails with
``ConcurrentAppend``; it reads what it missed, re-folds, re-chains its pending events
after it and carries on. If what it missed shows another worker took the run over,
it stops (:class:`RunFenced`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import types
from collections.abc import Callable, Mapping
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import Context, copy_context
from dataclasses import dataclass
from typing import Any, Final, cast

import msgspec

from executor.context import NodeContext, Suspend
from executor.errors import ExecutorError, NodeError, NondeterminismError, RunFenced
from executor.fold import Instance, RunState
from executor.frontier import Place, Scope, SingleNode, item_prefix
from executor.nodes import HANDLERS, NodeResult, direct_code
from kir.binding import Binding, parse_binding
from kir.compile import CompiledGraph
from kir.errors import KirError
from kir.schema import CodeConfig, MapConfig, Node, RetryPolicy, SubgraphConfig
from kir.template import lookup
from substrate.blobs import pack, unpack
from substrate.codec import digest, encode, encode_finite
from substrate.errors import ConcurrentAppend, FoldlineError
from substrate.events import (
    DERIVATION_KINDS,
    BudgetExceeded,
    ClockRead,
    ErrorInfo,
    Event,
    EventData,
    Head,
    Inline,
    LogHeader,
    NodeCompleted,
    NodeFailed,
    NodeSkipped,
    NodeStarted,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunResumed,
    RunStarted,
    RunWaiting,
)
from substrate.live import SeededIds, SeededRng
from substrate.ports import Clock, ModelPort, ModelRequest, ToolPort
from substrate.stores.base import EventStore

__all__ = [
    "EngineOptions",
    "EngineStats",
    "Engine",
    "BudgetStop",
    "NodeTimeout",
    "EXECUTOR_FLAGS",
    "SUPPORTED_FLAGS",
    "backoff_us",
    "check_flags",
]

#: Behaviour flags recorded in every run's log header; replay runs an old log with the
#: behaviour it was recorded under.
#:
#: ``engine``: 1, the first behaviour; 2, a tool call run again after its unknown-outcome
#: gate was approved is requested again (``tool.requested``) before it runs, and a death
#: during that run opens a further gate (``.outcome.2``, …) instead of running it again.
EXECUTOR_FLAGS: dict[str, Any] = {"engine": 2}
#: Every value of each flag this engine can run: the behaviours it keeps. A header that
#: lacks a flag means its oldest behaviour (the first value here).
SUPPORTED_FLAGS: dict[str, tuple[Any, ...]] = {"engine": (1, 2)}


def check_flags(run_id: str, header: LogHeader | None) -> None:
    """Refuse a run recorded under engine behaviour this engine does not have.

    A flag it does not know, or a value it does not keep (a newer engine's), means the
    log was written by another Foldline: resuming would mix two behaviours in one run,
    and a replay would report divergences that are not in the code under test.

    Raises:
        ExecutorError: naming the run, the flags it was recorded with and those this
            engine runs.
    """
    flags = header.flags if header is not None else {}
    foreign = {k: v for k, v in flags.items() if v not in SUPPORTED_FLAGS.get(k, ())}
    if foreign:
        runs = ", ".join(f"{k}={'|'.join(map(str, v))}" for k, v in SUPPORTED_FLAGS.items())
        raise ExecutorError(
            f"run {run_id!r} was recorded with engine behaviour flags {foreign} that this "
            f"Foldline does not have (it runs {runs}); resume or replay it with the Foldline "
            f"that recorded it"
        )


class BudgetStop(ExecutorError):
    """A call was refused by the budget and the run is configured to fail."""


class NodeTimeout(NodeError):
    """A node attempt ran past its ``timeout_s`` (wall clock: an input on replay)."""


#: What a binding is, for error text: a name, or (instance key, input name, source) of
#: an input (the text is built only for an error or a path: the common case builds none).
_What = str | tuple[str, str, str]

#: The data of a first attempt's node.started (immutable, so one serves every event).
_FIRST_START: Final = NodeStarted()

#: Not read from the blob store yet (see :meth:`Engine._output`).
_UNREAD: Any = object()


#: What a handler ended with: ("ok", NodeResult), ("suspend", Suspend) or ("error", exc).
Outcome = tuple[str, Any]
#: A handler that ended, to be recorded: its instance key and its outcome, or its task
#: (whose result is taken when it is recorded, so what the task raised is raised there).
Finished = tuple[str, "Outcome | asyncio.Future[Outcome]"]


def _text(what: _What) -> str:
    if isinstance(what, str):
        return what
    key, name, source = what
    return f"node {key!r} input {name!r} ({source})"


@dataclass(frozen=True)
class EngineOptions:
    """How the engine schedules.

    Attributes:
        max_concurrency: handlers running at once.
        poll_interval_s: while waiting on running work, how often to look for inputs
            appended by other processes (approvals, cancels, signals).
        max_inline_wait_s: a timer due within this long is slept through in-process;
            a later one leaves the run ``waiting`` (no process needs to stay alive).
        worker: recorded in ``run.resumed``; defaults to ``host:pid``.
        thread_wait_s: when nothing runs but plain ``code`` functions in worker threads,
            the loop's thread blocks on them this long before it leaves the wait to the
            event loop. Most return within it, and their result is then taken without a
            wake-up through the loop: a sync step on the memory store, which has no
            commit to overlap the call with, cost about 40% less with it in the runs of
            ``docs/EXECUTOR.md``. Other coroutines of the caller's loop wait at most this
            long; 0 turns it off.
    """

    max_concurrency: int = 16
    poll_interval_s: float = 0.5
    max_inline_wait_s: float = 1.0
    worker: str = ""
    thread_wait_s: float = 0.0002


@dataclass
class EngineStats:
    """Work counters, for tests that assert growth rather than time."""

    appends: int = 0
    reads: int = 0
    rebases: int = 0


def backoff_us(policy: RetryPolicy, attempt: int) -> int:
    """Delay before the attempt after ``attempt``, in µs (no jitter: it is replayed)."""
    if policy.backoff == "fixed":
        delay = policy.initial_delay_s
    else:
        delay = policy.initial_delay_s * policy.multiplier ** (attempt - 1)
    return int(min(delay, policy.max_delay_s) * 1_000_000)


@dataclass
class _Parked:
    suspend: Suspend
    backoff: bool = False


class _Pending(msgspec.Struct):
    """The batch not yet committed (a struct: one is made per commit, by C code)."""

    events: list[Event] = msgspec.field(default_factory=list)
    bodies: list[bytes] = msgspec.field(default_factory=list)
    hashes: list[str] = msgspec.field(default_factory=list)
    blobs: dict[str, bytes] = msgspec.field(default_factory=dict)


class Engine:
    """Drives one run against a store and a set of ports."""

    def __init__(
        self,
        store: EventStore,
        state: RunState,
        *,
        model: ModelPort,
        tools: ToolPort,
        clock: Clock,
        options: EngineOptions = EngineOptions(),
        head: Head | None = None,
    ) -> None:
        self.store = store
        self.state = state
        self.graph: CompiledGraph = state.graph
        self.run_id = state.run_id
        self.model = model
        self.tools = tools
        self.clock = clock
        self.options = options
        #: Node timeouts are wall-clock; replay serves recorded ones instead.
        self.enforce_timeouts = True
        self.max_concurrency = int(state.options.get("max_concurrency", options.max_concurrency))
        self.stats = EngineStats()
        self.ids = SeededIds(state.seed)
        self.rng = SeededRng(state.seed)
        self._committed = head if head is not None else Head(state.next_seq, None)
        #: The head after the pending batch: the next seq and the last event's hash (two
        #: fields rather than a Head, which would be made again for every event).
        self._seq, self._prev = self._committed.next_seq, self._committed.hash
        self._pending = _Pending()
        #: Handlers running as tasks (they suspended on a real wait), to their instance keys.
        self._tasks: dict[asyncio.Future[Outcome], str] = {}
        #: Handlers that ended without ever suspending, by instance key: (key, outcome),
        #: to be recorded where a task's would be.
        self._ended: dict[str, tuple[str, Outcome]] = {}
        #: Plain ``code`` functions running in a worker thread (see :meth:`_spawn`), by
        #: instance key; each future's result is the handler's outcome.
        self._threads: dict[str, Future[Outcome]] = {}
        self._executor: ThreadPoolExecutor | None = None
        #: The calls submitted to the workers that have not returned yet.
        self._running: set[Future[Outcome]] = set()
        #: The loop :meth:`drive` runs in and its thread (handlers run there).
        self.loop: asyncio.AbstractEventLoop
        self.loop_thread: int
        self._parked: dict[str, _Parked] = {}
        #: Outputs read from the blob store, by instance key.
        self._values: dict[str, Any] = {}
        self._scope_inputs: dict[str, Any] = {}
        self._items: dict[str, list[Any]] = {}

    # -- the log ------------------------------------------------------------------------

    def emit(
        self,
        node: str | None,
        data: EventData,
        *,
        blobs: Mapping[str, bytes] | None = None,
        at: int | None = None,
        finite: bool = False,
    ) -> Event:
        """Seal ``data`` onto the head, append it to the pending batch and fold it into
        the state. ``finite``: ``data`` is known to hold no NaN or infinity (its payload
        is from :func:`~substrate.blobs.pack`), so its bytes need no scan for them."""
        seq = self._seq
        when = self.clock.now() if at is None else at
        event = Event(seq, when, data.KIND, node, data, self._prev)
        body = encode_finite(event) if finite else encode(event)
        return self._push(event, body, digest(body), blobs)

    def _push(
        self, event: Event, body: bytes, hash_: str, blobs: Mapping[str, bytes] | None
    ) -> Event:
        """Put a sealed event at the head: into the pending batch, and folded."""
        self._seq = event.seq + 1
        self._prev = hash_
        p = self._pending
        p.events.append(event)
        p.bodies.append(body)
        p.hashes.append(hash_)
        if blobs:
            p.blobs.update(blobs)
        self.state.apply(event)
        return event

    async def commit(self, *, durable: bool = False) -> None:
        """Commit the pending batch (re-chained after any concurrent inputs)."""
        self._commit(durable)

    def _commit(self, durable: bool = False) -> None:
        while True:
            p = self._pending
            if not p.events:
                if durable and self.store.durability == "process":
                    self.store.sync()
                return
            try:
                self.store.append(
                    self.run_id,
                    p.events[0].seq,
                    p.events,
                    bodies=p.bodies,
                    hashes=p.hashes,
                    blobs=p.blobs or None,
                    durable=durable,
                )
            except ConcurrentAppend:
                self._rebase()
                continue
            self.stats.appends += 1
            self._committed = Head(self._seq, self._prev)
            self._pending = _Pending()
            return

    def _rebase(self) -> None:
        """Fold what other processes appended, then re-chain our pending events after it."""
        self.stats.rebases += 1
        self.stats.reads += 1
        missed = self.store.read(self.run_id, self._committed.next_seq)
        for ev in missed:
            if isinstance(ev.data, RunResumed) or ev.kind in DERIVATION_KINDS:
                raise RunFenced(
                    f"run {self.run_id!r} was taken over by another process "
                    f"({ev.kind} at seq {ev.seq}); this process stops"
                )
        self.stats.reads += 1
        log = self.store.read(self.run_id)
        state = RunState(self.graph, self.run_id).apply_all(log)
        drafts = [
            (e.at, e.node, e.data)
            for e in self._pending.events
            if not isinstance(e.data, RunWaiting)
        ]
        blobs = self._pending.blobs
        self.state = state
        self._committed = Head(state.next_seq, self.store.head(self.run_id).hash)
        self._seq, self._prev = self._committed.next_seq, self._committed.hash
        self._pending = _Pending(blobs=dict(blobs))
        for at, node, data in drafts:
            self.emit(node, data, at=at)

    async def _poll_inputs(self) -> None:
        """Look for events other processes appended while we waited on work."""
        self.stats.reads += 1
        if self.store.head(self.run_id).next_seq > self._committed.next_seq:
            await self.commit()  # flushes our pending first; rebases on the conflict
            if self.store.head(self.run_id).next_seq > self._committed.next_seq:
                self._rebase()

    # -- values -------------------------------------------------------------------------

    def get_blob(self, digest: str) -> bytes:
        """A blob, from the batch not yet committed or from the store."""
        pending = self._pending.blobs.get(digest)
        return pending if pending is not None else self.store.get_blob(digest)

    def value_of(self, key: str) -> Any:
        """The output of an instance (None if it was skipped or has none, or not yet)."""
        place = self.state.frontier.places.get(key)
        return None if place is None else self._output(place.inst)

    def _output(self, inst: Instance | None) -> Any:
        """The output of ``inst``: an inline one is the value itself; one in the blob store
        is read once, then kept in ``_values``."""
        if inst is None or inst.output is None:
            return None
        output = inst.output
        if type(output) is Inline:
            return output.value
        value = self._values.get(inst.key, _UNREAD)
        if value is _UNREAD:
            value = self._values[inst.key] = unpack(output, self.get_blob)
        return value

    def _scope_input(self, prefix: str) -> Any:
        if prefix in self._scope_inputs:
            return self._scope_inputs[prefix]
        fr = self.state.frontier
        scope = fr.scopes[prefix]
        owner = scope.owner
        if owner is None:
            assert self.state.inputs is not None
            value = unpack(self.state.inputs, self.get_blob)
        elif scope.item is None:  # a subgraph: its node's inputs are its run input
            value = self.resolve_inputs(owner)
        elif isinstance(scope.graph, SingleNode):
            value = self._scope_input(fr.where[owner][0])
        else:
            value = {
                **self.resolve_inputs(owner),
                "item": self._map_items(owner)[scope.item],
                "index": scope.item,
            }
        self._scope_inputs[prefix] = value
        return value

    def _resolve(self, binding: Binding, scope: Scope, what: _What) -> Any:
        """The value ``binding`` reads in ``scope``; ``what`` names it in errors."""
        fr = self.state.frontier
        source = binding.source
        if source == "input":
            base = self._scope_input(scope.prefix)
        elif source == "item" or source == "index":
            item_scope = scope
            while item_scope.item is None and item_scope.owner is not None:
                item_scope = fr.scopes[fr.where[item_scope.owner][0]]
            if item_scope.item is None or item_scope.owner is None:
                raise NodeError(
                    f"{_text(what)}: ${binding.source} is only defined inside a map body"
                )
            return self._item_binding(binding, item_scope.owner, item_scope.item, what)
        else:
            assert binding.node is not None
            node_prefix = scope.prefix
            if isinstance(scope.graph, SingleNode) and scope.owner is not None:
                node_prefix = fr.where[scope.owner][0]  # an inline body reads its map's scope
            base = self.value_of(node_prefix + binding.node)
            if base is None and binding.path:
                return None  # an untaken branch: its fields are None
        return _at_path(base, binding, what) if binding.path else base

    def _item_binding(self, binding: Binding, owner: str, index: int, what: _What) -> Any:
        """``$item`` (and its path) or ``$index`` of item ``index`` of map ``owner``."""
        if binding.source == "index":
            return index
        base = (self._items.get(owner) or self._map_items(owner))[index]
        return _at_path(base, binding, what) if binding.path else base

    def resolve_inputs(self, key: str) -> dict[str, Any]:
        """The inputs of instance ``key``, from its bindings."""
        fr = self.state.frontier
        return self._inputs_of(fr.places[key], fr.node_at(key))

    def _inputs_of(self, place: Place, node: Node) -> dict[str, Any]:
        """The inputs of the instance at ``place``, which runs ``node``.

        The node of a one-node map item reads ``$item`` and ``$index`` from its place:
        its scope is made only if another binding needs it.
        """
        key = place.key
        fan = place.fan
        out = {}
        for name, source in node.inputs.items():
            binding = parse_binding(source)
            if fan is not None and (binding.source == "item" or binding.source == "index"):
                out[name] = self._item_binding(binding, fan.key, place.item, (key, name, source))
            else:
                scope = place.scope or self.state.frontier.node_of(key)[0]
                out[name] = self._resolve(binding, scope, (key, name, source))
        return out

    def _map_items(self, key: str) -> list[Any]:
        items = self._items.get(key)
        if items is None:
            scope, node_id = self.state.frontier.node_of(key)
            config = scope.graph.nodes[node_id].config
            assert isinstance(config, MapConfig)
            value = self._resolve(
                parse_binding(config.over), scope, f"map {key!r} over ({config.over})"
            )
            if not isinstance(value, list):
                raise NodeError(
                    f"map {key!r}: 'over' ({config.over}) must be a list, "
                    f"got {type(value).__name__}"
                )
            items = self._items[key] = value
        return items

    def scope_output(self, prefix: str) -> Any:
        """The output of a finished scope: its graph's ``output`` binding, or its sinks'."""
        scope = self.state.frontier.scopes[prefix]
        g = scope.graph
        if isinstance(g, SingleNode):
            return self.value_of(prefix + g.node.id)
        assert isinstance(g, CompiledGraph)
        if g.graph.output is not None:
            return self._resolve(parse_binding(g.graph.output), scope, f"graph {g.id!r} output")
        return {n: self.value_of(prefix + n) for n in g.order if not g.successors[n]}

    def _composite_output(self, key: str) -> Any:
        node = self.state.node(key)
        if isinstance(node.config, SubgraphConfig):
            return self.scope_output(key + "/")
        count = self.state.instances[key].items or 0
        fan = self.state.frontier.fanouts.get(key)
        if fan is not None and fan.leaf is not None:  # one-node items: that node's outputs
            output = self._output
            return [output(place.inst) for place in self.state.frontier.item_places(key)]
        return [self.scope_output(item_prefix(key, i)) for i in range(count)]

    # -- budget -------------------------------------------------------------------------

    def worst_case(self, key: str, request: ModelRequest) -> tuple[int, float]:
        """Most tokens and USD the call can cost (0, 0 when the model cannot say)."""
        estimate = getattr(self.model, "estimate", None)
        if estimate is None:
            b = self.state.budget
            if b.usd is not None or b.tokens is not None:
                raise NodeError(
                    f"node {key!r}: model {request.model!r} gives no worst-case estimate, "
                    "so the run's budget cannot be enforced before the call"
                )
            return 0, 0.0
        tokens, cost = estimate(request)
        return int(tokens), float(cost)

    def check_budget(self, key: str, max_tokens: int, max_cost: float) -> None:
        """Refuse (record ``budget.exceeded`` and suspend or stop) a call that could overspend."""
        b = self.state.budget
        checks = (
            ("usd", b.usd, b.spent_usd + b.reserved_usd, max_cost),
            ("tokens", b.tokens, b.spent_tokens + b.reserved_tokens, max_tokens),
            ("calls", b.calls, b.spent_calls + b.reserved_calls, 1),
        )
        for limit, cap, spent, add in checks:
            if cap is not None and spent + add > cap + 1e-12:
                self.emit(
                    key,
                    BudgetExceeded(
                        limit=limit,  # type: ignore[arg-type]
                        cap=float(cap),
                        spent=float(spent),
                        requested=float(add),
                        # A literal, not the string read from the options: msgspec leaves a
                        # default out only when it is the very default object.
                        action="fail" if b.on_exceed == "fail" else "wait",
                        max_tokens=max_tokens,
                        max_cost_usd=max_cost,
                    ),
                )
                if b.on_exceed == "fail":
                    raise BudgetStop(
                        f"run {self.run_id!r} node {key!r}: a model call could cost {add:g} "
                        f"{limit} with {spent:g} of {cap:g} already spent or reserved"
                    )
                raise Suspend("budget")

    # -- the loop -----------------------------------------------------------------------

    async def start(
        self,
        inputs: Any,
        *,
        seed: str,
        options: Mapping[str, Any],
        header: LogHeader | None = None,
    ) -> None:
        """Record ``run.started`` and run."""
        check_flags(self.run_id, header)
        blobs: dict[str, bytes] = {}
        self.emit(
            None,
            RunStarted(
                graph_hash=self.graph.graph_hash,
                inputs=pack(inputs, blobs),
                seed=seed,
                header=header or LogHeader(flags=dict(EXECUTOR_FLAGS)),
                options=dict(options),
            ),
            blobs=blobs,
        )
        self.max_concurrency = int(self.state.options.get("max_concurrency", self.max_concurrency))
        self.ids = SeededIds(seed)
        self.rng = SeededRng(seed)
        await self.drive()

    async def resume(self) -> None:
        """Take the run over after another process stopped, and run it."""
        if self.state.terminal:
            return
        check_flags(self.run_id, self.state.header)
        worker = self.options.worker or f"{socket.gethostname()}:{os.getpid()}"
        self.emit(None, RunResumed(worker=worker))
        await self.drive()

    async def drive(self) -> None:
        """The loop: restart what was in flight, then step until done or waiting."""
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        state = self.state
        for key in sorted(state.in_flight, key=lambda k: state.frontier.order_keys[k]):
            node = state.node(key)
            if node.kind in ("map", "subgraph"):
                continue
            inst = state.instances[key]
            if inst.status == "failed":
                if inst.retry_at is not None:
                    self._parked[key] = _Parked(Suspend("backoff", until=inst.retry_at), True)
            else:
                self._spawn(state.frontier.places[key], node)
        try:
            while True:
                self._step()
                self._commit()
                if self.state.terminal:
                    return
                if not self._tasks and not self._ended and not self._threads:
                    if await self._idle():
                        continue
                    return
                if self._threads and not self._tasks and not self._ended:
                    self._wait_threads_briefly()
                for key, outcome in self._finished() or await self._wait_tasks():
                    self._finish(key, outcome)
        finally:
            await self._cancel_tasks()
            if self._executor is not None:
                # Idle workers are joined: nothing of the run outlives it. A call still
                # running (the run ended around it) is left to end on its own, as a
                # cancelled ``asyncio.to_thread`` is.
                self._executor.shutdown(wait=not self._running, cancel_futures=True)
                self._executor = None

    def _finished(self) -> list[Finished]:
        """Handlers already ended, in the order to record them: those that ended without
        suspending need no trip through the loop (nor a coroutine to wait), nor do the
        worker threads that are done by now (a step's thread runs while its start is
        committed: most are)."""
        done: list[Finished] = list(self._ended.values())
        self._ended.clear()
        if self._threads:
            done += self._threads_done()
        if self._tasks:
            done += [(k, t) for t, k in self._tasks.items() if t.done()]
        if len(done) > 1:
            done.sort(key=lambda kv: self._order(kv[0]))
        return done

    def _threads_done(self) -> list[tuple[str, Outcome]]:
        """The worker threads that are done, taken off ``_threads``, with their outcomes."""
        threads = self._threads
        done = [(k, f.result()) for k, f in threads.items() if f.done()]
        for key, _ in done:
            del threads[key]
        return done

    def _wait_threads_briefly(self) -> None:
        """Block on the worker threads for at most ``thread_wait_s``, until one is done.

        Only when nothing else runs: no handler of this run is kept waiting. A call that
        returns within the wait is taken by :meth:`_finished` at once; a longer one goes
        to the loop (:meth:`_wait_tasks`).
        """
        wait_s = self.options.thread_wait_s
        if wait_s > 0:
            futures.wait(self._threads.values(), wait_s, futures.FIRST_COMPLETED)

    def _threads_to_tasks(self) -> None:
        """Wait for the worker threads as the loop waits for tasks (their outcomes then
        come back through the loop, as ``asyncio.to_thread``'s do)."""
        for key, future in self._threads.items():
            self._tasks[asyncio.wrap_future(future, loop=self.loop)] = key
        self._threads.clear()

    def _submit(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Future[Outcome]:
        """Call a plain ``code`` function in a worker thread, in a copy of this context.

        The workers are made when first needed, as many as ``asyncio.to_thread``'s
        default pool has, and end with :meth:`drive`.
        """
        if self._executor is None:
            self._executor = ThreadPoolExecutor(thread_name_prefix="foldline-code")
        future = self._executor.submit(_call, copy_context(), fn, kwargs)
        self._running.add(future)
        future.add_done_callback(self._running.discard)  # in the worker: set ops are atomic
        return future

    async def _wait_tasks(self) -> list[Finished]:
        """Tasks that finished, in the order to record them; [] after a poll for inputs."""
        if self._threads:
            self._threads_to_tasks()
        finished, _ = await asyncio.wait(
            set(self._tasks),
            timeout=self.options.poll_interval_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not finished:
            await self._poll_inputs()
        tasks = self._tasks
        return sorted(((tasks[t], t) for t in finished), key=lambda kt: self._order(kt[0]))

    def _order(self, key: str) -> tuple[tuple[int, ...], str]:
        return self.state.frontier.order_keys[key], key

    async def _idle(self) -> bool:
        """Nothing runs. Sleep through a near timer (True), or record waiting (False)."""
        if not self._parked:
            self.emit(
                None,
                RunFailed(error=ErrorInfo("Stalled", "no node can run and nothing is awaited")),
            )
            await self.commit()
            return False
        until = [p.suspend.until for p in self._parked.values() if p.suspend.until is not None]
        soonest = min(until) if until else None
        if soonest is not None and await self._sleep_until(soonest):
            return True
        on = sorted({p.suspend.on for p in self._parked.values()})
        self.emit(None, RunWaiting(on=on, until=soonest))
        seq = self._seq
        await self.commit()
        # A concurrent input dropped our run.waiting: look again rather than stop.
        return self.state.next_seq != seq or self.state.status != "waiting"

    async def _sleep_until(self, when: int) -> bool:
        """Sleep through a timer due within ``max_inline_wait_s`` (True), or not (False)."""
        delay = (when - self.clock.now()) / 1e6
        if delay > self.options.max_inline_wait_s:
            return False
        await asyncio.sleep(max(delay, 0.0))
        return True

    @property
    def behaviour(self) -> int:
        """The engine behaviour the run was recorded under (its header's ``engine``
        flag; 1 when the header has none), which it keeps for its whole life."""
        header = self.state.header
        flags = header.flags if header is not None else EXECUTOR_FLAGS
        return int(flags.get("engine", SUPPORTED_FLAGS["engine"][0]))

    @property
    def key_base(self) -> str:
        """What idempotency keys are derived from: the id the run was started under.

        Recorded in ``run.started``, so a run imported under another id, or forked,
        derives the same keys (and replays); a fork's calls dedupe against the original's.
        """
        return str(self.state.options.get("idempotency_base", self.run_id))

    async def before_emit(self, key: str) -> None:
        """Called by a handler about to record something; replay holds it until its turn."""
        del key

    def read_clock(self, key: str, call: int) -> int:
        """The value of clock reading ``call`` of instance ``key`` (journaled by the caller)."""
        del key, call
        return self.clock.now()

    def _time_ready(self, key: str, suspend: Suspend, backoff: bool) -> bool:
        """Whether a timer or a retry backoff is due."""
        del key, backoff
        assert suspend.until is not None
        return self.clock.now() >= suspend.until

    def _step(self) -> None:
        st = self.state
        if st.terminal:
            return
        if st.cancel_requested:
            for task in self._tasks:
                task.cancel()
            self._tasks.clear()
            self._ended.clear()
            self._drop_threads()
            self._parked.clear()
            self.emit(None, RunCancelled(reason=st.cancel_reason))
            return
        fr = st.frontier
        while True:
            while fr.skippable or fr.composites_done:
                while fr.skippable:
                    self.emit(
                        fr.skippable.popleft(), NodeSkipped(reason="no incoming edge was taken")
                    )
                while fr.composites_done:
                    key = fr.composites_done.popleft()
                    try:
                        output = self._composite_output(key)
                    except FoldlineError as exc:
                        self._fail(key, exc, retry=False)
                        return
                    self._complete(key, NodeResult(output))
            if fr.root_done:
                blobs: dict[str, bytes] = {}
                try:
                    output = self.scope_output("")
                except FoldlineError as exc:
                    self.emit(None, RunFailed(error=ErrorInfo(type(exc).__name__, str(exc))))
                    return
                self.emit(None, RunCompleted(output=pack(output, blobs)), blobs=blobs)
                return
            if self._parked:
                self._wake_parked()
            while (
                not st.terminal
                and len(self._tasks) + len(self._ended) + len(self._threads) < self.max_concurrency
            ):
                ready = fr.pop_ready()
                if ready is None:
                    break
                self._start(ready)
            # Starting a composite can finish it at once (an empty map): go round again.
            if st.terminal or not (fr.skippable or fr.composites_done):
                return

    def _start(self, place: Place) -> None:
        key = place.key
        fan = place.fan
        graph = fan.body if fan is not None else place.scope.graph  # type: ignore[union-attr]
        node = graph.nodes[place.node_id]
        # The fold makes the instance from node.started, on its fast path for a first
        # attempt; an instance the place already has is restarted.
        inst = place.inst
        config = type(node.config)
        if config is MapConfig:
            try:
                items = self._map_items(key)
            except FoldlineError as exc:
                self.emit(key, NodeStarted())
                self._fail(key, exc, retry=False)
                return
            self.emit(key, NodeStarted(items=len(items)))
        elif config is SubgraphConfig:
            self.emit(key, NodeStarted())
        else:
            start = _FIRST_START if inst is None else NodeStarted(inst.attempt + 1)
            self.emit(key, start, finite=True)  # ints
            self._spawn(place, node)

    def _spawn(self, place: Place, node: Node) -> None:
        """Run a handler eagerly: to its end, or to its first real suspension.

        A handler that never waits (pure async code, a journaled answer, a port that
        answers at once) costs no task: its outcome waits in ``_ended``, recorded by the
        loop exactly where a task's would be. One that waits continues as a task from
        where it stopped.

        A ``code`` node whose callable needs no context (:func:`~executor.nodes.direct_code`)
        has no handler: its callable's own coroutine is stepped here, on its inputs (and
        ``params``), which is what ``run_code`` would do, minus the context. A plain
        function is handed to a worker thread, as ``run_code`` would; its future waits in
        ``_threads``, looked at without a trip through the loop (see :meth:`_finished`).
        """
        key = place.key
        config = node.config
        direct = None
        if type(config) is CodeConfig and (node.timeout_s is None or not self.enforce_timeouts):
            direct = direct_code(config.function)
        if direct is None:
            coro = self._run_handler(place, node)
            try:
                yielded = coro.send(None)
            except StopIteration as stop:
                self._ended[key] = (key, stop.value)
                return
            task: asyncio.Future[Outcome] = asyncio.ensure_future(_resume(coro, yielded))
        else:
            fn, with_params, is_async = direct
            try:
                kwargs = self._inputs_of(place, node)
                if with_params:
                    kwargs["params"] = config.params  # type: ignore[union-attr]
                if not is_async:
                    self._threads[key] = self._submit(fn, kwargs)
                    return
                code = fn(**kwargs)
                yielded = code.send(None)
            except StopIteration as stop:
                self._ended[key] = (key, ("ok", NodeResult(stop.value)))
                return
            except (Suspend, Exception) as exc:  # not CancelledError: that one propagates
                self._ended[key] = (key, _stopped(exc))
                return
            task = asyncio.ensure_future(_code_outcome(code, yielded))
        self._tasks[task] = key

    async def _run_handler(self, place: Place, node: Node) -> tuple[str, Any]:
        key = place.key
        try:
            fan = place.fan
            graph = fan.body if fan is not None else place.scope.graph  # type: ignore[union-attr]
            ctx = NodeContext(self, key, node, self._inputs_of(place, node), graph.tools)
            handler = HANDLERS[node.kind]
            if node.timeout_s is not None and self.enforce_timeouts:
                try:
                    result = await asyncio.wait_for(handler(ctx), node.timeout_s)
                except TimeoutError:
                    return "error", self.timeout_error(key, node)
            else:
                result = await handler(ctx)
            return "ok", result
        except (Suspend, Exception) as exc:  # not CancelledError: that one propagates
            return _stopped(exc)

    def timeout_error(self, key: str, node: Node) -> NodeTimeout:
        attempt = self.state.instance(key).attempt
        return NodeTimeout(f"node {key!r} timed out after {node.timeout_s}s (attempt {attempt})")

    def _finish(self, key: str, ended: Outcome | asyncio.Future[Outcome]) -> None:
        """Record what a handler ended with."""
        if type(ended) is tuple:
            if self.state.terminal:
                return
            outcome: Outcome = ended
        else:
            task = cast("asyncio.Future[Outcome]", ended)
            del self._tasks[task]
            if self.state.terminal or task.cancelled():
                return
            outcome = task.result()
        kind, value = outcome
        if kind == "ok":  # the common case, without a call
            self._complete(key, value)
        else:
            self._finish_result(key, kind, value)

    def _finish_result(self, key: str, kind: str, value: Any) -> None:
        if self.state.terminal:
            return
        if kind == "ok":
            self._complete(key, value)
        elif kind == "suspend":
            self._parked[key] = _Parked(value)
        elif isinstance(value, RunFenced):
            raise value
        else:
            self._fail(key, value, retry=not isinstance(value, (BudgetStop, NondeterminismError)))

    def _complete(self, key: str, result: NodeResult) -> None:
        try:
            # A blob goes straight to the batch the event goes to (pack adds it only
            # once the value has encoded).
            payload = pack(result.output, self._pending.blobs)
        except FoldlineError as exc:
            self._fail(key, exc, retry=False)
            return
        # The payload was checked by pack; a route is labels (strings).
        self.emit(key, NodeCompleted(payload, result.route), finite=True)

    def _fail(self, key: str, exc: BaseException, *, retry: bool) -> None:
        node = self.state.node(key)
        inst = self.state.instance(key)
        attempt = max(inst.attempt, 1)
        error = ErrorInfo(type(exc).__name__, str(exc))
        policy = node.retry
        if retry and attempt < policy.max_attempts:
            at = self.clock.now()
            retry_at = at + backoff_us(policy, attempt)
            self.emit(key, NodeFailed(error=error, attempt=attempt, retry_at=retry_at), at=at)
            self._parked[key] = _Parked(Suspend("backoff", until=retry_at), backoff=True)
            return
        self.emit(key, NodeFailed(error=error, attempt=attempt))
        self.emit(None, RunFailed(error=error, node=key))

    def _wake_parked(self) -> None:
        if not self._parked:
            return
        st = self.state
        for key in sorted(self._parked, key=self._order):
            parked = self._parked[key]
            s = parked.suspend
            ready = False
            if s.until is not None:
                ready = self._time_ready(key, s, parked.backoff)
            elif s.on.startswith("signal:"):
                ready = bool(st.signals.get(s.on[len("signal:") :]))
            elif s.on == "budget":
                ready = st.last_budget_exceeded is None
            else:
                gate = st.gates.get(s.on)
                ready = gate is not None and gate.decided is not None
            if not ready:
                continue
            del self._parked[key]
            if parked.backoff:
                self.emit(key, NodeStarted(attempt=st.instance(key).attempt + 1))
            elif s.timer_call is not None:
                self.emit(
                    key, ClockRead(call=s.timer_call, value=self.read_clock(key, s.timer_call))
                )
            self._spawn(st.frontier.places[key], st.node(key))

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._ended.clear()
        self._drop_threads()

    def _drop_threads(self) -> None:
        """Forget the worker threads' calls: one not begun never runs; one that has
        begun runs on and its outcome is not recorded (as a cancelled ``to_thread``'s)."""
        for future in self._threads.values():
            future.cancel()
        self._threads.clear()


def _at_path(base: Any, binding: Binding, what: _What) -> Any:
    """What ``binding``'s path reads in ``base``."""
    try:
        return lookup(base, binding.path, what=_text(what))
    except KirError as exc:
        raise NodeError(str(exc)) from None


def _call(context: Context, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Outcome:
    """In a worker thread: the outcome of a plain ``code`` function, called in a copy of
    the engine's context (what ``asyncio.to_thread`` does, then ``run_code``)."""
    try:
        return "ok", NodeResult(context.run(fn, **kwargs))
    except (Suspend, Exception) as exc:
        return _stopped(exc)


def _stopped(exc: BaseException) -> tuple[str, Any]:
    """The outcome of a handler that raised: suspended (waiting on something), or failed."""
    return ("suspend" if isinstance(exc, Suspend) else "error"), exc


async def _code_outcome(coro: Any, yielded: Any) -> tuple[str, Any]:
    """The outcome of a ``code`` callable's coroutine that was stepped by hand and
    yielded ``yielded`` (see :meth:`Engine._spawn`)."""
    try:
        return "ok", NodeResult(await _resume(coro, yielded))
    except (Suspend, Exception) as exc:  # not CancelledError: that one propagates
        return _stopped(exc)


@types.coroutine
def _resume(coro: Any, yielded: Any) -> Any:
    """Continue a coroutine that was started by hand and yielded ``yielded``.

    What ``yield from coro`` does, minus its first step (already taken): every value
    the coroutine yields goes to the task driving us, every value or exception sent in
    goes to the coroutine.
    """
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            yielded = coro.send(sent)
        except StopIteration as stop:
            return stop.value
