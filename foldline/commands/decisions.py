"""``approve``, ``reject``, ``answer``, ``signal`` and ``cancel``: inputs from a human.

Each appends one input event to the run's log (from any process, while the run waits
or while another process drives it) and never drives the run itself; ``resume`` does.
``cancel`` is the exception that proves it: a waiting run has no process to notice
the request, so ``cancel`` takes it over just long enough to record ``run.cancelled``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.text import Text

from executor.api import answer as answer_gate
from executor.api import approve as approve_gate
from executor.api import cancel as cancel_run
from executor.api import fold_log, load_graph, raise_budget, result_of
from executor.api import reject as reject_gate
from executor.api import resume as resume_run
from executor.api import signal as signal_run
from foldline.commands.runs import RunId
from foldline.common import CliError, StoreOption, console, open_session
from foldline.render import command, compact, ended, waiting_lines
from foldline.view import RunView, view_run
from substrate.mock import MockModel

__all__ = ["approve", "reject", "answer", "signal", "budget", "cancel"]

GateId = Annotated[str, typer.Argument(metavar="GATE", help="The gate's id, as `show` lists it.")]
By = Annotated[str, typer.Option("--by", metavar="NAME", help="Who decides (recorded in the log).")]
Note = Annotated[str, typer.Option("--note", help="Why (recorded in the log).")]


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value, parse_constant=_no_constant)
    except ValueError:
        return value


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _who(by: str) -> str:
    if not by.strip():
        raise CliError("--by must name who decides")
    return by


def _after(view: RunView, did: str) -> None:
    """Say what was recorded and what to do next."""
    con = console()
    con.print(Text(did))
    for line in waiting_lines(view):
        con.print(Text(line))


def approve(
    run_id: RunId, gate: GateId, by: By, note: Note = "", store: StoreOption = None
) -> None:
    """Approve an open gate, bound to the args `show` lists.

    For a tool approval the decision carries the hash of the exact args the gate
    shows: the tool never runs with others. Run `foldline resume RUN` next.
    """
    _who(by)
    with open_session(store, run_id=run_id) as st:
        compiled, log = load_graph(st, run_id)
        # Bind the approval to the exact args the gate carries, which `show` printed.
        gates = result_of(fold_log(compiled, run_id, log), st).gates
        info = next((g for g in gates if g.id == gate), None)
        args = info.args if info is not None and info.tool is not None else None
        approve_gate(st, run_id, gate, by=by, note=note, args=args)
        view, _ = view_run(st, run_id)
    call = f": {info.tool} {compact(args, 200)}" if info is not None and info.tool else ""
    _after(view, f"approved gate {gate} of run {run_id} as {by}{call}")


def reject(
    run_id: RunId,
    gate: GateId,
    by: By,
    note: Note = "",
    answer: Annotated[
        str | None,
        typer.Option(
            "--answer",
            metavar="VALUE",
            help="For an unknown-outcome gate: the tool's result (JSON, else text).",
        ),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Reject an open gate; the agent is told and carries on.

    For an unknown-outcome gate, rejecting means "it did happen" and --answer is
    the tool's result.
    """
    _who(by)
    value = None if answer is None else _json_or_text(answer)
    with open_session(store, run_id=run_id) as st:
        reject_gate(st, run_id, gate, by=by, note=note, answer=value)
        view, _ = view_run(st, run_id)
    _after(view, f"rejected gate {gate} of run {run_id} as {by}")


def answer(
    run_id: RunId,
    gate: GateId,
    value: Annotated[str, typer.Argument(metavar="VALUE", help="The answer: JSON, else text.")],
    by: By,
    note: Note = "",
    store: StoreOption = None,
) -> None:
    """Answer a question gate."""
    _who(by)
    with open_session(store, run_id=run_id) as st:
        answer_gate(st, run_id, gate, _json_or_text(value), by=by, note=note)
        view, _ = view_run(st, run_id)
    _after(view, f"answered gate {gate} of run {run_id} as {by}: {compact(value)}")


def signal(
    run_id: RunId,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The signal's name.")],
    payload: Annotated[
        str | None, typer.Argument(metavar="PAYLOAD", help="Its payload: JSON, else text.")
    ] = None,
    store: StoreOption = None,
) -> None:
    """Send a named signal to a run."""
    if not name.strip():
        raise CliError("a signal needs a name")
    value = None if payload is None else _json_or_text(payload)
    with open_session(store, run_id=run_id) as st:
        signal_run(st, run_id, name, value)
        view, _ = view_run(st, run_id)
    _after(view, f"sent signal {name} to run {run_id}")


def budget(
    run_id: RunId,
    by: By,
    usd: Annotated[
        float | None, typer.Option("--usd", min=0, metavar="USD", help="New cap on cost.")
    ] = None,
    tokens: Annotated[
        int | None, typer.Option("--tokens", min=0, metavar="N", help="New cap on tokens.")
    ] = None,
    calls: Annotated[
        int | None, typer.Option("--calls", min=0, metavar="N", help="New cap on model calls.")
    ] = None,
    store: StoreOption = None,
) -> None:
    """Raise a run's budget caps.

    A run waiting on its budget carries on at `foldline resume RUN`.
    """
    _who(by)
    caps = {"usd": usd, "tokens": tokens, "calls": calls}
    given = {k: v for k, v in caps.items() if v is not None}
    if not given:
        raise CliError("give at least one new cap: --usd, --tokens or --calls")
    with open_session(store, run_id=run_id) as st:
        raise_budget(st, run_id, usd=usd, tokens=tokens, calls=calls, by=by)
        view, _ = view_run(st, run_id)
    shown = ", ".join(f"{k} {v:g}" for k, v in given.items())
    _after(view, f"set the budget of run {run_id} to {shown} as {by}")


def cancel(
    run_id: RunId,
    by: Annotated[str, typer.Option("--by", metavar="NAME", help="Who cancels.")] = "",
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    store: StoreOption = None,
) -> None:
    """Cancel a run.

    A waiting run is cancelled at once; a run another process drives stops at its
    next step.
    """
    with open_session(store, run_id=run_id) as st:
        view, _ = view_run(st, run_id)
        if view.terminal:
            raise CliError(f"run {run_id!r} {ended(view.status)}; there is nothing to cancel")
        cancel_run(st, run_id, by=by, reason=reason)
        if view.status == "waiting":
            # Nobody drives a waiting run: take it over to record run.cancelled. The
            # engine cancels before it starts anything, so no tool or model is used.
            resume_run(run_id, store=st, model=MockModel([]), tools={})
        view, _ = view_run(st, run_id)
    if view.status == "cancelled":
        console().print(Text(f"cancelled run {run_id}"))
    else:
        console().print(
            Text(
                f"asked run {run_id} to cancel; the process driving it stops at its next "
                "step (or: " + command("foldline", "resume", run_id) + ")"
            )
        )
