"""``demo``: record a small run with the scripted model and verify it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from foldline.common import CliError, StoreOption, console, open_session
from foldline.demo import run_demo

__all__ = ["demo"]


def demo(
    mock: Annotated[
        bool, typer.Option("--mock", help="Use the scripted model (no API key).")
    ] = False,
    store: StoreOption = None,
    steps: Annotated[int, typer.Option(min=1, max=1000, help="Model calls to record.")] = 3,
) -> None:
    """Record a small scripted run and verify its hash chain."""
    if not mock:
        raise CliError("no model provider is configured yet; run the demo with --mock")
    with open_session(store, create=True) as st:
        result = run_demo(st, steps)
    table = Table(title=f"run {result.run_id}")
    for col in ("seq", "kind", "node", "prev"):
        table.add_column(col)
    for ev in result.events:
        table.add_row(str(ev.seq), ev.kind, ev.node or "", (ev.prev or "-")[:12])
    con = console()
    con.print(table)
    con.print(
        f"{len(result.events)} events, hash chain verified; {result.blobs} blob(s) for "
        f"{steps} identical prompts; "
        f"{result.tokens} tokens, ${result.cost_usd:.6f} (mock prices)",
        soft_wrap=True,
    )
