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
    """Re-running a recorded step produced something other than what was recorded."""
