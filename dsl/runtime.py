"""The few callables that compiled crews name in their ``code`` nodes.

A crew compiles to a plain :class:`kir.Graph`; where the lowering needs a step that no
other node kind can express, it adds a ``code`` node naming one of these functions
(``dsl.runtime:assigned``). They are pure: what they return or raise depends only on
their inputs, so a run that used them replays byte-identically.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from dsl.errors import ReviewRejected

__all__ = ["assigned", "rejected"]


def assigned(assignee: str, **outputs: Any) -> Any:
    """The output of the agent the manager assigned a task to.

    In a hierarchical crew each candidate agent's node is bound as ``by_<agent id>``;
    only the chosen one ran (the others were skipped), and ``assignee`` is the router's
    label, the chosen agent's id.
    """
    return outputs[f"by_{assignee}"]


def rejected(review: Mapping[str, Any], params: Mapping[str, Any]) -> NoReturn:
    """Fail the run: a human rejected task ``params["task"]`` in review.

    ``review`` is the gate's output (``decision``, ``by``, ``note``, ``answer``).
    """
    by = review.get("by") or "someone"
    note = review.get("note")
    raise ReviewRejected(
        f"task {params['task']!r} was rejected in review by {by}" + (f": {note}" if note else "")
    )
