"""Errors of the authoring front-ends.

:class:`DslError` is an authoring mistake, found while a crew or a graph is being
compiled; its message names the agent, task, tool or node at fault and says how to
fix it. The other two are outcomes at run time, not mistakes: :class:`ReviewRejected`
is the failure a compiled crew records when a human rejects a task's output in review,
and :class:`ToolArgsInvalid` is what an agent is told when it calls a tool with
arguments that do not fit the tool's schema.
"""

from __future__ import annotations

from substrate.errors import FoldlineError

__all__ = ["DslError", "ReviewRejected", "ToolArgsInvalid"]


class DslError(FoldlineError):
    """A crew, task, agent, tool or graph-builder call cannot be compiled to KIR."""


class ReviewRejected(FoldlineError):
    """A human rejected a task's output in review; the crew stops there."""


class ToolArgsInvalid(FoldlineError):
    """A tool was called with arguments that do not fit its schema (the model sees this)."""
