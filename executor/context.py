"""What a node handler sees: its inputs and journaled ports.

Every port call a handler makes gets the next *call index* of its node instance and
is journaled under (instance, index). If the log already holds the answer, it is
returned — never re-billed, never re-executed. Otherwise the engine commits what it
has pending, calls the live port, and commits the answer before the handler uses it.

The services are consulted here, before a call leaves the process:

* **budget** — a model call whose worst case (prompt tokens + ``max_tokens`` at the
  known price) could exceed a cap is not made; ``budget.exceeded`` is recorded and
  the run waits (raise the cap and resume) or fails, as configured.
* **approval** — a tool marked ``requires_approval`` opens a gate bound to the tool
  and the hash of its exact args; the tool runs only once a human approved that.
* **side-effect ledger** — ``tool.requested`` is committed (and fsynced) before a
  tool runs, with an idempotency key = hash(run, instance, call index). After a
  crash, a requested call with no result is re-run if the tool is idempotent, and
  otherwise becomes an ``unknown-outcome`` gate: a human says whether it happened.

A handler that must wait for a human, a timer, a signal or a budget raises
:class:`Suspend`; the engine parks it and re-runs it from the start when the
awaited input arrives (its journaled calls are answered from the log).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import msgspec

from executor.errors import NodeError, NondeterminismError
from executor.fold import CallRecord, Gate, gate_id
from kir.schema import Node, ToolSpec
from substrate.blobs import pack, unpack
from substrate.codec import hash_value, to_builtins
from substrate.events import (
    ClockRead,
    ErrorInfo,
    GateOpened,
    ModelCalled,
    ModelRequested,
    ToolRequested,
    ToolReturned,
)
from substrate.ports import CallKey, ModelRequest, ModelResponse, ToolCall, ToolResult

if TYPE_CHECKING:
    from executor.schedule import Engine

__all__ = ["Suspend", "Decision", "NodeContext", "outcome_gate_id"]

T = TypeVar("T")


class Suspend(BaseException):
    """Raised inside a handler that must wait; the engine parks the instance.

    A ``BaseException`` so that a user's ``except Exception`` cannot swallow it.
    """

    def __init__(self, on: str, *, until: int | None = None, timer_call: int | None = None):
        super().__init__(on)
        self.on = on
        self.until = until
        self.timer_call = timer_call


@dataclass(frozen=True)
class Decision:
    """A human's decision on a gate."""

    gate: str
    decision: Literal["approve", "reject", "answer"]
    by: str
    note: str
    answer: Any


def outcome_gate_id(key: str, call: int, request: int = 1) -> str:
    """The id of the unknown-outcome gate of call ``call`` of instance ``key``: of its
    first request, or (``.outcome.2``, …) of a later one, made to run it again."""
    suffix = "" if request == 1 else f".{request}"
    return f"{gate_id(key, call)}.outcome{suffix}"


class NodeContext:
    """The journaled view a handler has of the world.

    Attributes:
        run_id: the run.
        key: the node instance key.
        node: the KIR node.
        inputs: the node's resolved inputs.
        attempt: the attempt number (1 for the first).
        tools: the tool specs the node may call, by name.
    """

    def __init__(
        self,
        engine: Engine,
        key: str,
        node: Node,
        inputs: Mapping[str, Any],
        tools: Mapping[str, ToolSpec],
    ) -> None:
        self._engine = engine
        self.run_id = engine.run_id
        self.key = key
        self.node = node
        self.inputs = dict(inputs)
        self.tools = tools
        inst = engine.state.instance(key)
        self.attempt = inst.attempt
        self._next_call = inst.call_base
        self._loop = engine.loop
        self._loop_thread = engine.loop_thread

    # -- journal ----------------------------------------------------------------------

    def _take(self) -> tuple[int, CallRecord | None]:
        index = self._next_call
        self._next_call += 1
        return index, self._engine.state.instance(self.key).calls.get(index)

    def _value(self, payload: Any) -> Any:
        return unpack(payload, self._engine.get_blob)

    def _sync(self, coro_fn: Callable[[], Awaitable[T]]) -> T:
        """Run an engine coroutine from a worker thread (sync code nodes)."""
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("use the async method inside the event loop")
        return asyncio.run_coroutine_threadsafe(_call(coro_fn), self._loop).result()

    # -- ids, randomness, time ----------------------------------------------------------

    def new_id(self) -> str:
        """A UUID derived from the run seed and this call: the same on replay."""
        index, _ = self._take()
        return self._engine.ids.new_id(CallKey(self.key, index))

    def random(self) -> float:
        """A float in [0, 1) derived from the run seed and this call."""
        index, _ = self._take()
        return self._engine.rng.random(CallKey(self.key, index))

    def now(self) -> int:
        """The time (µs), read from the clock port once and journaled."""
        if threading.get_ident() != self._loop_thread:
            return self._sync(self._now_async)
        index, rec = self._take()
        if rec is not None and isinstance(rec.answer, ClockRead):
            return rec.answer.value
        value = self._engine.read_clock(self.key, index)
        self._engine.emit(self.key, ClockRead(call=index, value=value))
        return value

    async def _now_async(self) -> int:
        return self.now()

    async def sleep_until(self, deadline: int) -> int:
        """A durable timer: returns the time it fired at (≥ ``deadline``), or suspends."""
        index, rec = self._take()
        if rec is not None and isinstance(rec.answer, ClockRead):
            return rec.answer.value
        raise Suspend(f"timer:{self.key}", until=deadline, timer_call=index)

    async def wait_signal(self, name: str) -> Any:
        """The first signal ``name`` the run received (before or after this call)."""
        received = self._engine.state.signals.get(name)
        if received:
            return self._value(received[0])
        raise Suspend(f"signal:{name}")

    # -- gates --------------------------------------------------------------------------

    async def wait_gate(
        self, question: str, *, answer_schema: dict[str, Any] | None = None
    ) -> Decision:
        """Open a gate (once) and return the human's decision, or suspend until there is one."""
        index, _ = self._take()
        gid = gate_id(self.key, index)
        gate = await self._open_gate(
            GateOpened(
                gate=gid,
                reason="question" if answer_schema else "approval",
                question=question,
                answer_schema=answer_schema,
            )
        )
        return self._decided(gate)

    async def _open_gate(self, data: GateOpened, args: Any = None) -> Gate:
        state = self._engine.state
        gate = state.gates.get(data.gate)
        if gate is None:
            await self._engine.before_emit(self.key)
            blobs: dict[str, bytes] = {}
            if args is not None:
                data = msgspec.structs.replace(data, args=pack(args, blobs))
            self._engine.emit(self.key, data, blobs=blobs)
            gate = state.gates[data.gate]
        return gate

    def _bound(self, gate: Gate, index: int, tool: str, args_hash: str) -> None:
        """Refuse a tool call that is not the one its gate was opened for.

        A gate (and so its decision) is bound to the exact tool and args hash of the call
        that opened it. The same call index asking for another tool or other args (the
        node's code or inputs changed since) must not run under that decision."""
        opened = gate.opened
        if opened.tool is None or (opened.tool, opened.args_hash) == (tool, args_hash):
            return
        what = "tool" if opened.tool != tool else "args"
        raise NodeError(
            f"node {self.key!r}: gate {gate.id!r} is bound to tool {opened.tool!r} with args "
            f"hash {str(opened.args_hash)[:12]}, but call {index} now asks "
            f"for tool {tool!r} with args hash {args_hash[:12]} (other {what}); it is refused"
        )

    def _decided(self, gate: Gate) -> Decision:
        d = gate.decided
        if d is None:
            raise Suspend(gate.id)
        return Decision(gate.id, d.decision, d.by, d.note, d.answer)

    # -- models -------------------------------------------------------------------------

    async def call_model(self, request: ModelRequest) -> ModelResponse:
        """One journaled model call, checked against the budget before it is made."""
        engine = self._engine
        index, rec = self._take()
        request_hash = hash_value(request)
        if rec is not None and isinstance(rec.answer, ModelCalled):
            if rec.answer.request_hash != request_hash:
                raise NondeterminismError(
                    f"run {self.run_id!r} node {self.key!r} model call {index}: the request "
                    f"differs from the recorded one (hash {request_hash[:12]} vs "
                    f"{rec.answer.request_hash[:12]}); the node's code or inputs changed"
                )
            return _convert(self._value(rec.answer.response), ModelResponse)
        if rec is None or rec.requested is None:
            await engine.before_emit(self.key)
            max_tokens, max_cost = engine.worst_case(self.key, request)
            engine.check_budget(self.key, max_tokens, max_cost)
            engine.emit(
                self.key,
                ModelRequested(
                    call=index,
                    model=request.model,
                    request_hash=request_hash,
                    max_tokens=max_tokens,
                    max_cost_usd=max_cost,
                ),
            )
        await engine.commit()
        response = await engine.model.complete(request, CallKey(self.key, index))
        pending: dict[str, bytes] = {}
        engine.emit(
            self.key,
            ModelCalled(
                call=index,
                model=request.model,
                request_hash=request_hash,
                request=pack(to_builtins(request), pending),
                response=pack(to_builtins(response), pending),
                usage=response.usage,
                cost_usd=response.cost_usd,
            ),
            blobs=pending,
        )
        await engine.commit()
        return response

    def call_model_sync(self, request: ModelRequest) -> ModelResponse:
        """:meth:`call_model` for sync code nodes (they run in a worker thread)."""
        return self._sync(lambda: self.call_model(request))

    # -- tools --------------------------------------------------------------------------

    async def call_tool(self, name: str, args: Mapping[str, Any]) -> ToolResult:
        """One journaled tool call through the approval gate and the side-effect ledger.

        A rejected approval comes back as a ``ToolResult`` whose error is of type
        ``Rejected`` (so an agent learns of it and can carry on); the tool is not run.
        """
        engine = self._engine
        spec = self.tools.get(name)
        if spec is None:
            known = ", ".join(sorted(self.tools)) or "none"
            raise NodeError(f"node {self.key!r} calls undeclared tool {name!r} (declared: {known})")
        plain: dict[str, Any] = to_builtins(dict(args))
        index, rec = self._take()
        if rec is not None and isinstance(rec.answer, ToolReturned):
            return ToolResult(self._value(rec.answer.result), rec.answer.error)
        args_hash = hash_value(plain)
        if spec.requires_approval:
            gid = gate_id(self.key, index)
            gate = await self._open_gate(
                GateOpened(
                    gate=gid,
                    reason="approval",
                    question=f"Run tool {name!r} with these args?",
                    tool=name,
                    args_hash=args_hash,
                ),
                plain,
            )
            self._bound(gate, index, name, args_hash)
            decision = self._decided(gate)
            if decision.decision == "reject":
                by = f" by {decision.by}" if decision.by else ""
                note = f": {decision.note}" if decision.note else ""
                return ToolResult(error=ErrorInfo("Rejected", f"the call was rejected{by}{note}"))
        if rec is not None and isinstance(rec.requested, ToolRequested):
            # Requested before a crash, no result recorded: did it happen?
            if not spec.idempotent:
                asks_again = engine.behaviour >= 2
                gate = await self._open_gate(
                    GateOpened(
                        gate=outcome_gate_id(self.key, index, rec.requests if asks_again else 1),
                        reason="unknown-outcome",
                        question=(
                            f"The process stopped while tool {name!r} was running. "
                            "Approve to run it again (it did not happen); reject if it did "
                            "happen (the answer, if any, becomes its result)."
                        ),
                        tool=name,
                        args_hash=args_hash,
                    ),
                    plain,
                )
                self._bound(gate, index, name, args_hash)
                decision = self._decided(gate)
                if decision.decision == "reject":
                    return ToolResult(decision.answer)
                if asks_again:
                    # It did not happen: it is requested again before it runs again, so
                    # that a death during this run is one more unknown outcome (its own
                    # gate), not a second run under the same approval.
                    await engine.before_emit(self.key)
                    engine.emit(self.key, rec.requested)
        else:
            await engine.before_emit(self.key)
            pending: dict[str, bytes] = {}
            engine.emit(
                self.key,
                ToolRequested(
                    call=index,
                    tool=name,
                    args=pack(plain, pending),
                    args_hash=args_hash,
                    idempotency_key=hash_value([self._engine.key_base, self.key, index]),
                ),
                blobs=pending,
            )
        # The request is on stable storage before the side effect can happen.
        await engine.commit(durable=True)
        call = ToolCall(name, plain, hash_value([self._engine.key_base, self.key, index]))
        try:
            if spec.timeout_s is not None:
                result = await asyncio.wait_for(
                    engine.tools.call(call, CallKey(self.key, index)), spec.timeout_s
                )
            else:
                result = await engine.tools.call(call, CallKey(self.key, index))
        except TimeoutError:
            result = ToolResult(
                error=ErrorInfo("ToolTimeout", f"tool {name!r} took longer than {spec.timeout_s}s")
            )
        pending = {}
        engine.emit(
            self.key,
            ToolReturned(call=index, result=pack(result.value, pending), error=result.error),
            blobs=pending,
        )
        await engine.commit()
        return result

    def call_tool_sync(self, name: str, args: Mapping[str, Any]) -> ToolResult:
        """:meth:`call_tool` for sync code nodes."""
        return self._sync(lambda: self.call_tool(name, args))


async def _call(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()


def _convert(value: Any, type_: type[T]) -> T:
    return msgspec.convert(value, type_)
