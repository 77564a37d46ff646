"""``replay``, ``diff``, ``fork``, ``export`` and ``import``: work with recorded runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from executor.api import load_graph
from executor.api import resume as resume_run
from executor.bundle import export_run, import_run, read_bundle
from executor.errors import NondeterminismError
from executor.replay import diff as diff_runs
from executor.replay import fork as fork_run
from executor.replay import replay as replay_run
from foldline.commands.runs import FileOption, MockOption, RunId, check_run_id
from foldline.common import FAILED, CliError, StoreOption, console, open_session
from foldline.loader import add_import_paths, choose_model, program_for_run
from foldline.render import compact, print_outcome
from foldline.view import view_log, view_run
from substrate.mock import MockModel

__all__ = ["replay", "diff", "fork", "export", "import_", "PROGRESS_MIN_EVENTS"]

#: Logs at least this long get a progress bar (on a terminal) while they replay.
PROGRESS_MIN_EVENTS = 2000


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int, int], None] | None]:
    con = console(err=True)
    if total < PROGRESS_MIN_EVENTS or not con.is_terminal:
        yield None
        return
    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=con, transient=True) as bar:
        task = bar.add_task("replay", total=total)

        def update(done: int, of: int) -> None:
            bar.update(task, completed=done, total=of)

        yield update


def replay(run_id: RunId, store: StoreOption = None) -> None:
    """Replay a run from its log and check it byte for byte.

    Every input is served from the log and live ports are forbidden; each
    regenerated event must equal the recorded one. Exit 1 at the first difference.
    """
    with open_session(store, run_id=run_id) as st:
        view, log = view_run(st, run_id)
        # Code nodes name their callables `module:function`: import them as the run did.
        add_import_paths(Path(view.source) if view.source else None)
        try:
            with _progress(len(log)) as progress:
                report = replay_run(st, run_id, progress=progress)
        except NondeterminismError as exc:
            _print_divergence(run_id, exc)
            raise typer.Exit(FAILED) from None
    resumes = f", across {report.resumes} resume{'s' if report.resumes != 1 else ''}"
    tail = "" if report.complete else " (the log ends mid-run: a crash nobody resumed)"
    console().print(
        Text(
            f"identical: run {run_id} replayed {report.events} events byte for byte"
            f"{resumes if report.resumes else ''}; status {report.status}{tail}"
        )
    )


def _print_divergence(run_id: str, exc: NondeterminismError) -> None:
    con = console()
    if exc.seq is None:
        con.print(Text(f"diverged: {exc}", style="red"))
        return
    where = ", ".join(p for p in (exc.kind, f"node {exc.node}" if exc.node else None) if p)
    con.print(Text(f"diverged: run {run_id} at seq {exc.seq} ({where})", style="red"))
    con.print(Text(f"  field        {exc.path or '$'}"))
    con.print(Text(f"  recorded     {exc.recorded}"))
    con.print(Text(f"  regenerated  {exc.regenerated}"))


def diff(
    a: Annotated[str, typer.Argument(metavar="A", help="A run id.")],
    b: Annotated[str, typer.Argument(metavar="B", help="Another run id.")],
    store: StoreOption = None,
    store_b: Annotated[
        str | None,
        typer.Option("--store-b", metavar="URL", help="Read B from this store instead."),
    ] = None,
) -> None:
    """Compare two runs: first differing event, changed nodes.

    Exit 0 if the logs are the same, 1 if they differ.
    """
    with open_session(store, run_id=a) as st:
        if store_b is None:
            result = diff_runs(st, a, b)
        else:
            with open_session(store_b, run_id=b) as other:
                result = diff_runs(st, a, b, store_b=other)
    con = console()
    if result.first is None:
        con.print(Text(f"identical: runs {a} and {b} have the same events"))
        return
    f = result.first
    kinds = (
        f.kind_a
        if f.kind_a == f.kind_b
        else f"{f.kind_a or 'end of log'} vs {f.kind_b or 'end of log'}"
    )
    node = f", node {f.node}" if f.node else ""
    con.print(Text(f"first difference at seq {f.seq} ({kinds}{node}) at {f.path}"))
    con.print(Text(f"  {a}: {f.a}"))
    con.print(Text(f"  {b}: {f.b}"))
    if result.nodes:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("node", "field", a, b):
            table.add_column(col, overflow="ellipsis", max_width=50, no_wrap=True)
        for change in result.nodes:
            for name, (va, vb) in change.changes.items():
                table.add_row(Text(change.node), name, Text(compact(va)), Text(compact(vb)))
        con.print()
        con.print(table)
    raise typer.Exit(FAILED)


def fork(
    run_id: RunId,
    at: Annotated[
        int,
        typer.Option("--at", metavar="SEQ", help="Keep the events before SEQ, then go on live."),
    ],
    new_id: Annotated[
        str | None, typer.Option("--run-id", metavar="ID", help="Id of the new run.")
    ] = None,
    mock: MockOption = False,
    file: FileOption = None,
    store: StoreOption = None,
) -> None:
    """Copy a run's first events into a new run and go on live.

    Nothing before SEQ is re-executed or re-billed.
    """
    if new_id is not None:
        check_run_id(new_id)
    with open_session(store, run_id=run_id) as st:
        compiled, log = load_graph(st, run_id)
        view = view_log(st, run_id, log)
        if not 1 <= at <= len(log):
            raise CliError(
                f"--at {at} is outside run {run_id!r}: pick a seq from 1 to {len(log)} "
                "(seq 0 is run.started)"
            )
        program = program_for_run(run_id, view.source, file)
        model = choose_model(
            compiled.graph,
            program.mock_model if program else MockModel,
            mock or view.labels.get("mock") == "1",
            f"run {run_id}",
        )
        new = fork_run(st, run_id, at=at, new_run_id=new_id)
        console().print(Text(f"forked run {run_id} at seq {at} as {new}"))
        resume_run(new, store=st, model=model, tools=program.tools if program else None)
        new_view, _ = view_run(st, new)
    print_outcome(console(), new_view)
    if new_view.status == "failed":
        raise typer.Exit(FAILED)


def _case_values(pairs: list[str]) -> dict[str, str | int | bool]:
    case: dict[str, str | int | bool] = {}
    for raw in pairs:
        key, sep, value = raw.partition("=")
        if not sep or not key.strip():
            raise CliError(f"bad --case {raw!r}: expected KEY=VALUE (for example description=...)")
        if value in ("true", "false"):
            case[key.strip()] = value == "true"
        elif value.lstrip("-").isdigit():
            case[key.strip()] = int(value)
        else:
            case[key.strip()] = value
    return case


def export(
    run_id: RunId,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Where to write the bundle.")],
    case: Annotated[
        list[str] | None,
        typer.Option(
            "--case", metavar="KEY=VALUE", help="A key for case.toml (e.g. description=...)."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a bundle already in DIR.")
    ] = False,
    store: StoreOption = None,
) -> None:
    """Write a run as a bundle directory of plain files.

    DIR gets graph.json, events.jsonl (canonical bytes, one event a line), blobs/
    and case.toml.
    """
    values = _case_values(case or [])
    with open_session(store, run_id=run_id) as st:
        path = export_run(st, run_id, directory, case=values or None, overwrite=overwrite)
        view, _ = view_run(st, run_id)
    console().print(Text(f"exported run {run_id} ({view.events} events) to {path}"))


def import_(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="A bundle directory.")],
    run_id: Annotated[
        str | None,
        typer.Option("--run-id", metavar="ID", help="Id for the run (default: the bundle's)."),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Load a bundle directory into the store as a run."""
    if run_id is not None:
        check_run_id(run_id)
    bundle = read_bundle(directory)  # verify everything before the store is touched
    with open_session(store, create=True) as st:
        new = import_run(st, directory, run_id=run_id)
    console().print(Text(f"imported {directory} as run {new} ({len(bundle.events)} events)"))
