"""A deterministic, scripted model provider (``mock:``) and a scripted clock.

Tests and ``--mock`` runs use :class:`MockModel`: the only fake in Foldline, since
no model runs offline. It answers from a script — a list of replies consumed in
order, a dict of such lists per node, or a function — or echoes the last user
message. Token counts are a fixed function of the text (about four characters a
token) and cost comes from a per-million-token price, so usage and billing are
exercised exactly as with a real provider.

>>> import asyncio
>>> from substrate.ports import CallKey, Message, ModelRequest
>>> m = MockModel(["hello"])
>>> r = asyncio.run(m.complete(ModelRequest("mock:x", [Message("user", "hi")]), CallKey("n", 0)))
>>> (r.content, r.usage.input_tokens, r.usage.output_tokens)
('hello', 1, 2)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import msgspec

from substrate.errors import ScriptExhausted
from substrate.events import Usage
from substrate.ports import CallKey, ModelRequest, ModelResponse, ToolCallRequest

__all__ = ["MockReply", "MockModel", "StepClock", "count_tokens"]


class MockReply(msgspec.Struct, frozen=True):
    """One scripted answer: text and/or tool calls.

    ``tool_calls`` items are ``(name, args)`` pairs; their ids are derived from the
    call key so they are stable across runs.
    """

    content: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = []
    #: Override the computed usage, e.g. to test budgets with exact numbers.
    usage: Usage | None = None


Script: TypeAlias = (
    Sequence[MockReply | str]
    | Mapping[str, Sequence[MockReply | str]]
    | Callable[[ModelRequest, CallKey], MockReply | str]
    | None
)


def count_tokens(text: str) -> int:
    """The mock's tokenizer: one token per four characters, at least one."""
    return max(1, (len(text) + 3) // 4)


class MockModel:
    """A scripted model port.

    Args:
        script: replies in call order; or a dict from node id (the part of the
            node instance key before any ``[``) to replies, with ``"*"`` as the
            fallback list; or a function of (request, key). ``None`` echoes the
            last user message.
        price_in: USD per million input tokens.
        price_out: USD per million output tokens.
        latency: seconds to wait before answering, per call (lets tests vary the
            completion order of concurrent calls deterministically).
        on_call: called once per answered call, e.g. to count what was billed.
        by_turn: pick a node's reply by the conversation, not by a cursor: the reply
            for a request is the one at index = the number of assistant messages the
            request already holds. Such a script answers the same in any process, so
            a run resumed elsewhere (``foldline resume --mock``) gets the right replies.
    """

    def __init__(
        self,
        script: Script = None,
        *,
        price_in: float = 1.0,
        price_out: float = 2.0,
        latency: Callable[[CallKey], float] | None = None,
        on_call: Callable[[ModelRequest, CallKey, ModelResponse], None] | None = None,
        by_turn: bool = False,
    ) -> None:
        self.script = script
        self.by_turn = by_turn
        self.price_in = price_in
        self.price_out = price_out
        self.latency = latency
        self.on_call = on_call
        self.calls = 0
        self._cursor: dict[str, int] = {}

    def _next_reply(self, request: ModelRequest, key: CallKey) -> MockReply | str:
        script = self.script
        if script is None:
            last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
            return last
        if callable(script):
            return script(request, key)
        if isinstance(script, Mapping):
            node = key.node.split("[", 1)[0]
            lane = node if node in script else "*"
            replies = script.get(lane)
            if replies is None:
                raise ScriptExhausted(f"mock model has no script for node {node!r} and no '*'")
        else:
            lane, replies = "", script
        if self.by_turn:
            i = sum(1 for m in request.messages if m.role == "assistant")
        else:
            i = self._cursor.get(lane, 0)
        if i >= len(replies):
            raise ScriptExhausted(
                f"mock model script {'for ' + repr(lane) + ' ' if lane else ''}has "
                f"{len(replies)} replies; call {i + 1} (node {key.node!r}) has none"
            )
        self._cursor[lane] = i + 1
        return replies[i]

    @staticmethod
    def _input_tokens(request: ModelRequest) -> int:
        return sum(count_tokens(m.content) for m in request.messages)

    def estimate(self, request: ModelRequest) -> tuple[int, float]:
        """Worst case of a call: (tokens, USD), from its prompt and ``max_tokens``.

        Without ``max_tokens`` there is no bound on the answer; 4096 tokens is assumed.
        """
        tokens_in = self._input_tokens(request)
        tokens_out = request.max_tokens if request.max_tokens is not None else 4096
        cost = (tokens_in * self.price_in + tokens_out * self.price_out) / 1e6
        return tokens_in + tokens_out, cost

    async def complete(self, request: ModelRequest, key: CallKey) -> ModelResponse:
        if self.latency is not None:
            await asyncio.sleep(self.latency(key))
        reply = self._next_reply(request, key)
        if isinstance(reply, str):
            reply = MockReply(reply)
        calls = [
            ToolCallRequest(f"call_{key.index}_{i}", name, dict(args))
            for i, (name, args) in enumerate(reply.tool_calls)
        ]
        usage = reply.usage or Usage(
            input_tokens=self._input_tokens(request),
            output_tokens=count_tokens(reply.content)
            + sum(count_tokens(n) + count_tokens(repr(a)) for n, a in reply.tool_calls),
        )
        content, finish = reply.content, "tool_calls" if calls else "stop"
        if request.max_tokens is not None and usage.output_tokens > request.max_tokens:
            # Like a real provider: generation stops at max_tokens, and that is what is billed.
            usage = Usage(usage.input_tokens, request.max_tokens)
            content, finish = content[: request.max_tokens * 4], "length"
        cost = (usage.input_tokens * self.price_in + usage.output_tokens * self.price_out) / 1e6
        response = ModelResponse(
            content=content,
            tool_calls=calls,
            usage=usage,
            cost_usd=cost,
            model=request.model,
            finish_reason=finish,
        )
        self.calls += 1
        if self.on_call is not None:
            self.on_call(request, key, response)
        return response


class StepClock:
    """A clock for tests: starts at ``start`` and advances ``step`` µs per reading."""

    def __init__(self, start: int = 1_700_000_000_000_000, step: int = 1000) -> None:
        self._t = start
        self.step = step

    def now(self) -> int:
        t = self._t
        self._t += self.step
        return t
