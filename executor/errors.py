"""Errors of the engine. Each names the run, and the node or gate where it applies."""

from __future__ import annotations

from substrate.errors import FoldlineError

__all__ = [
    "ExecutorError",
    "FoldError",
    "RunNotFound",
    "RunFenced",
    "GateError",
    "NodeError",
    "NondeterminismError",
]


class ExecutorError(FoldlineError):
    """Base of the engine's errors."""


class FoldError(ExecutorError):
    """An event cannot be folded into the state (out of order, or not understood)."""


class RunNotFound(ExecutorError):
    """No run with this id is in the store."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run {run_id!r} in the store")


class RunFenced(ExecutorError):
    """Another process took this run over; this one must stop writing to it."""


class GateError(ExecutorError):
    """A decision was refused: the gate is not open, already decided, or bound to other args."""


class NodeError(ExecutorError):
    """A node cannot run as configured (a bad binding value, an unknown tool, ...).

    Raised inside a handler it fails the node (and, without retries left, the run).
    """


class NondeterminismError(ExecutorError):
    """Re-running a recorded step produced something other than what was recorded.

    Raised by replay at the first regenerated event that differs from the recorded
    one. ``seq``, ``node`` and ``kind`` name the recorded event; ``path`` is the JSON
    path of the first differing field (``$.data.output.value``); ``recorded`` and
    ``regenerated`` are the two values there (abbreviated when long).
    """

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        seq: int | None = None,
        node: str | None = None,
        kind: str | None = None,
        path: str | None = None,
        recorded: str | None = None,
        regenerated: str | None = None,
    ) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.seq = seq
        self.node = node
        self.kind = kind
        self.path = path
        self.recorded = recorded
        self.regenerated = regenerated
