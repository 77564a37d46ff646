"""The ``foldline`` command.

Exit codes: 0 ok; 1 a run failed; 2 usage or bad input. Errors are one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from foldline import __version__
from substrate import FoldlineError, open_store

__all__ = ["app", "main"]

DEFAULT_STORE = ".foldline/runs.db"

app = typer.Typer(
    name="foldline",
    help=(
        "Durable execution for LLM agents: every run is an event log that replays byte-identically."
    ),
    no_args_is_help=True,
    add_completion=True,
)
console = Console()


def _fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, no traceback, and the exit code."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        console.print(f"foldline {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Durable execution for LLM agents."""


def _store_url(store: str | None) -> str:
    url = store or os.environ.get("FOLDLINE_STORE") or DEFAULT_STORE
    if url == DEFAULT_STORE:
        Path(DEFAULT_STORE).parent.mkdir(parents=True, exist_ok=True)
    return url


@app.command()
def demo(
    mock: Annotated[
        bool, typer.Option("--mock", help="Use the scripted model (no API key).")
    ] = False,
    store: Annotated[
        str | None,
        typer.Option(
            "--store", help="Store URL (default: $FOLDLINE_STORE, then ./.foldline/runs.db)."
        ),
    ] = None,
    steps: Annotated[int, typer.Option(min=1, max=1000, help="Model calls to record.")] = 3,
) -> None:
    """Record a small run with the scripted model, read it back and verify its hash chain."""
    from foldline.demo import run_demo

    if not mock:
        _fail("no model provider is configured yet; run the demo with --mock")
        raise typer.Exit(2)
    try:
        st = open_store(_store_url(store))
        try:
            result = run_demo(st, steps)
        finally:
            st.close()
    except FoldlineError as exc:
        _fail(str(exc))
    table = Table(title=f"run {result.run_id}")
    for col in ("seq", "kind", "node", "prev"):
        table.add_column(col)
    for ev in result.events:
        table.add_row(str(ev.seq), ev.kind, ev.node or "", (ev.prev or "-")[:12])
    console.print(table)
    console.print(
        f"{len(result.events)} events, hash chain verified; {result.blobs} blob(s) for "
        f"{steps} identical prompts; "
        f"{result.tokens} tokens, ${result.cost_usd:.6f} (mock prices)",
        soft_wrap=True,
    )


def main() -> None:
    """Console-script entry point."""
    app()
