"""``run``, ``resume``, ``ls`` and ``show``: start runs, carry them on, look at them."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.text import Text

from executor.api import Budget, load_graph
from executor.api import resume as resume_run
from executor.api import run as start_run
from foldline.common import (
    FAILED,
    CliError,
    StoreOption,
    complete_run_ids,
    console,
    open_session,
    store_path,
    store_url,
)
from foldline.loader import (
    choose_model,
    load_program,
    missing_inputs,
    parse_inputs,
    program_for_run,
)
from foldline.render import (
    date_time,
    ended,
    print_next,
    print_outcome,
    print_view_header,
    runs_table,
    timeline_table,
)
from foldline.view import RunView, event_json, view_log, view_run
from substrate.mock import MockModel

__all__ = ["run", "resume", "ls", "show", "RunId", "MockOption", "FileOption"]

RunId = Annotated[
    str, typer.Argument(metavar="RUN", help="The run's id.", autocompletion=complete_run_ids)
]
MockOption = Annotated[
    bool,
    typer.Option("--mock", help="Answer model calls with the file's scripted mock (no API key)."),
]
FileOption = Annotated[
    str | None,
    typer.Option(
        "--file",
        metavar="FILE",
        help="Load tools and the mock from FILE instead of the file the run started from.",
    ),
]


def check_run_id(run_id: str, option: str = "--run-id") -> str:
    if not run_id or run_id != run_id.strip() or any(c.isspace() for c in run_id):
        raise CliError(f"bad {option} {run_id!r}: a run id is a non-empty word without spaces")
    return run_id


def _finish(view: RunView) -> None:
    print_outcome(console(), view)
    if view.status == "failed":
        raise typer.Exit(FAILED)


def run(
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE", help="A Python file that exposes `graph`, or a KIR graph .json."
        ),
    ],
    mock: MockOption = False,
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            metavar="KEY=VALUE",
            help="A run input; VALUE is read as JSON if it parses, else as text. Repeatable.",
        ),
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", metavar="ID", help="Id of the new run.")
    ] = None,
    max_usd: Annotated[
        float | None,
        typer.Option("--max-usd", min=0, metavar="USD", help="Budget: cap on cost."),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option("--max-tokens", min=0, metavar="N", help="Budget: cap on tokens."),
    ] = None,
    max_calls: Annotated[
        int | None,
        typer.Option("--max-calls", min=0, metavar="N", help="Budget: cap on model calls."),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Run a graph or crew from a Python file or a KIR JSON file.

    Prints the status, spend, and for a waiting run each open gate with the exact
    command that decides it. Exit 1 if the run failed.
    """
    if run_id is not None:
        check_run_id(run_id)
    program = load_program(file)
    values = parse_inputs(inputs or [])
    missing = missing_inputs(program.graph, values)
    if missing:
        flags = " ".join(f"--input {key}=VALUE" for key in missing)
        plural = "s" if len(missing) > 1 else ""
        raise CliError(f"{file} needs the input{plural} {', '.join(missing)}: pass {flags}")
    model = choose_model(program.graph, program.mock_model, mock, file)
    labels = {"source": str(program.path), "mock": "1" if mock else "0"}
    caps = (max_usd, max_tokens, max_calls)
    budget = None if caps == (None, None, None) else Budget(*caps)
    with open_session(store, create=True) as st:
        result = start_run(
            program.compiled,
            values,
            store=st,
            model=model,
            tools=program.tools,
            run_id=run_id,
            budget=budget,
            labels=labels,
        )
        view, _ = view_run(st, result.run_id)
    _finish(view)


def resume(
    run_id: RunId,
    mock: MockOption = False,
    file: FileOption = None,
    store: StoreOption = None,
) -> None:
    """Carry a run on after a crash or a decision.

    Reloads the tools and scripted model of the file the run started from (or
    --file), and drives the run until it completes, fails or waits again.
    """
    with open_session(store, run_id=run_id) as st:
        compiled, log = load_graph(st, run_id)
        view = view_log(st, run_id, log)
        if view.terminal:
            console().print(Text(f"run {run_id} {ended(view.status)}; there is nothing to resume"))
        else:
            program = program_for_run(run_id, view.source, file)
            model = choose_model(
                compiled.graph,
                program.mock_model if program else MockModel,
                mock or view.labels.get("mock") == "1",
                f"run {run_id}",
            )
            resume_run(run_id, store=st, model=model, tools=program.tools if program else None)
            view, _ = view_run(st, run_id)
    _finish(view)


def ls(
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help="Only runs with this status (running, waiting, completed, failed, cancelled).",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=0, help="Show at most N runs (0: all).")
    ] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead.")] = False,
    store: StoreOption = None,
) -> None:
    """List runs, newest first."""
    statuses = ("new", "running", "waiting", "completed", "failed", "cancelled")
    if status is not None and status not in statuses:
        raise CliError(f"bad --status {status!r}: expected one of {', '.join(statuses)}")
    path = store_path(store_url(store))
    if path is not None and not path.exists():
        if not as_json:
            console().print(f"no runs yet (no store at {path})")
        return
    views: list[RunView] = []
    with open_session(store) as st:
        for info in reversed(st.list_runs()):
            view, _ = view_run(st, info.run_id)
            if status is None or view.status == status:
                views.append(view)
            if limit and len(views) >= limit:
                break
    if as_json:
        for v in views:
            typer.echo(json.dumps(_run_json(v), ensure_ascii=False))
    elif views:
        console().print(runs_table(views))
    else:
        console().print("no runs" + (f" with status {status}" if status else ""))


def _run_json(view: RunView) -> dict[str, Any]:
    return {
        "run_id": view.run_id,
        "graph": view.graph_id,
        "graph_hash": view.graph_hash,
        "status": view.status,
        "started_at": view.started_at,
        "ended_at": view.ended_at,
        "duration_us": view.duration_us,
        "cost_usd": view.cost_usd,
        "tokens": view.tokens,
        "model_calls": view.model_calls,
        "events": view.events,
        "labels": view.labels,
        "waiting_on": view.waiting_on,
        "error": view.error,
    }


def show(
    run_id: RunId,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run and its events (decoded) as JSON.")
    ] = False,
    store: StoreOption = None,
) -> None:
    """Show a run: its timeline, open gates, and outcome."""
    with open_session(store, run_id=run_id) as st:
        view, log = view_run(st, run_id)
        if as_json:
            doc = _run_json(view) | {
                "started": date_time(view.started_at),
                "inputs": view.inputs,
                "output": view.output,
                "resumes": view.resumes,
                "cancel_requested": view.cancel_requested,
                "gates": [
                    {
                        "id": g.id,
                        "node": g.node,
                        "reason": g.reason,
                        "question": g.question,
                        "tool": g.tool,
                        "args": g.args,
                        "open": g in view.open_gates,
                        "decision": g.decision,
                        "by": g.by,
                        "note": g.note,
                        "answer": g.answer,
                    }
                    for g in view.gates
                ],
                "events": [event_json(ev, st) for ev in log],
            }
            typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
            return
        con = console()
        print_view_header(con, view)
        con.print()
        con.print(timeline_table(log, st, con.width))
        con.print()
        print_next(con, view)
