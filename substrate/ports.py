"""Ports: the only doors through which nondeterminism enters a run.

Each port is a :class:`typing.Protocol` stated in a few lines. A port has a live
implementation (:mod:`substrate.live`, :mod:`substrate.mock`) and a replay
implementation (:mod:`substrate.recorded`) that serves the answers a log holds
and refuses everything else. Model and tool calls carry a :class:`CallKey` —
(node instance, call index) — the same key the executor journals them under.

Ids and randomness are not inputs but derivations: they are drawn from the run's
seed and the call key (:class:`~substrate.live.SeededIds`,
:class:`~substrate.live.SeededRng`), so replay regenerates them from the seed
recorded in ``run.started``.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from substrate.events import ErrorInfo, Usage

__all__ = [
    "CallKey",
    "Clock",
    "Ids",
    "Rng",
    "ModelPort",
    "ToolPort",
    "Message",
    "ToolCallRequest",
    "ToolSchema",
    "ModelRequest",
    "ModelResponse",
    "ToolCall",
    "ToolResult",
]


class CallKey(msgspec.Struct, frozen=True, order=True):
    """Which call this is: call ``index`` of node instance ``node``."""

    node: str
    index: int


class ToolCallRequest(msgspec.Struct, frozen=True):
    """A model asking for a tool to be called."""

    id: str
    name: str
    args: dict[str, Any] = {}


class Message(msgspec.Struct, frozen=True, omit_defaults=True):
    """One chat message."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCallRequest] = []
    #: For ``role="tool"``: which request this message answers.
    tool_call_id: str | None = None
    name: str | None = None


class ToolSchema(msgspec.Struct, frozen=True):
    """A tool as a model sees it."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = {}


class ModelRequest(msgspec.Struct, frozen=True, omit_defaults=True):
    """A provider-neutral model call; its canonical hash is recorded with the answer."""

    #: ``provider:name``, e.g. ``mock:echo`` or ``openai:gpt-4o-mini``.
    model: str
    messages: list[Message]
    tools: list[ToolSchema] = []
    max_tokens: int | None = None
    temperature: float | None = None
    output_schema: dict[str, Any] | None = None
    params: dict[str, Any] = {}


class ModelResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """A model's answer, with usage and cost as billed."""

    content: str = ""
    tool_calls: list[ToolCallRequest] = []
    usage: Usage = Usage()
    cost_usd: float = 0.0
    model: str = ""
    finish_reason: str = "stop"


class ToolCall(msgspec.Struct, frozen=True):
    """A request to run a tool; ``idempotency_key`` is stable across retries and resumes."""

    name: str
    args: dict[str, Any]
    idempotency_key: str


class ToolResult(msgspec.Struct, frozen=True, omit_defaults=True):
    """A tool's outcome: a value, or an error."""

    value: Any = None
    error: ErrorInfo | None = None


@runtime_checkable
class Clock(Protocol):
    """Wall-clock time."""

    def now(self) -> int:
        """Microseconds since the Unix epoch."""
        ...


@runtime_checkable
class Ids(Protocol):
    """Identifiers derived from (node instance, call index)."""

    def new_id(self, key: CallKey) -> str:
        """A UUID-formatted id, the same for the same seed and key."""
        ...


@runtime_checkable
class Rng(Protocol):
    """Random draws derived from (node instance, call index)."""

    def random(self, key: CallKey) -> float:
        """A float in [0, 1)."""
        ...

    def randbelow(self, key: CallKey, n: int) -> int:
        """An int in [0, n)."""
        ...


@runtime_checkable
class ModelPort(Protocol):
    """Something that answers model calls."""

    async def complete(self, request: ModelRequest, key: CallKey) -> ModelResponse:
        """Answer ``request``; ``key`` is the journal key of the call."""
        ...


@runtime_checkable
class ToolPort(Protocol):
    """Something that runs tools."""

    async def call(self, request: ToolCall, key: CallKey) -> ToolResult:
        """Run the tool; an exception inside the tool comes back as ``ToolResult.error``."""
        ...
