"""Replay ports: serve the answers a recorded log holds, and refuse everything else.

On replay live ports are forbidden. These implementations are built from the
recorded events (by the executor's replayer) and answer only the calls the
recorded run made; any other call raises :class:`~substrate.errors.ReplayMiss`,
which names the call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from substrate.errors import ReplayMiss
from substrate.ports import CallKey, ModelRequest, ModelResponse, ToolCall, ToolResult

__all__ = ["ReplayClock", "ReplayModel", "ReplayTools"]


class ReplayClock:
    """Serves recorded clock readings in the order they were taken."""

    def __init__(self, readings: Iterable[int]) -> None:
        self._readings = list(readings)
        self._next = 0

    def now(self) -> int:
        if self._next >= len(self._readings):
            raise ReplayMiss(
                f"clock read #{self._next} was not recorded "
                f"(the recorded run read the clock {len(self._readings)} times)"
            )
        value = self._readings[self._next]
        self._next += 1
        return value


class ReplayModel:
    """Serves recorded model answers by call key."""

    def __init__(self, answers: Mapping[CallKey, ModelResponse]) -> None:
        self._answers = dict(answers)

    async def complete(self, request: ModelRequest, key: CallKey) -> ModelResponse:
        try:
            return self._answers[key]
        except KeyError:
            raise ReplayMiss(
                f"model call {key.index} of node {key.node!r} ({request.model}) was not recorded"
            ) from None


class ReplayTools:
    """Serves recorded tool results by call key; never runs a tool."""

    def __init__(self, results: Mapping[CallKey, ToolResult]) -> None:
        self._results = dict(results)

    async def call(self, request: ToolCall, key: CallKey) -> ToolResult:
        try:
            return self._results[key]
        except KeyError:
            raise ReplayMiss(
                f"tool call {key.index} of node {key.node!r} ({request.name}) was not recorded"
            ) from None
