"""``golden verify``, ``golden record`` and ``lint``: keep recorded runs replayable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from executor.golden import CaseResult, case_dirs, verify_case
from executor.lint import lint_paths
from foldline.common import FAILED, CliError, console
from foldline.loader import add_import_paths
from foldline.render import fit_table
from substrate.errors import FoldlineError

__all__ = ["golden_app", "verify", "record", "lint", "RECORD_SCRIPT"]

#: The script that re-records the corpus, relative to the repository root.
RECORD_SCRIPT = Path("golden") / "record.py"

golden_app = typer.Typer(
    help="Check or re-record the golden corpus.",
    no_args_is_help=True,
)


@golden_app.command()
def verify(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="The corpus: directories holding case.toml.")
    ] = Path("golden"),
) -> None:
    """Replay every case and check it behaves as its case.toml expects."""
    if not directory.is_dir():
        raise CliError(f"no golden corpus at {directory} (a directory of cases)")
    add_import_paths()  # code nodes name `module:function`, importable from here
    cases = case_dirs(directory)
    if not cases:
        raise CliError(f"no golden cases under {directory} (directories holding case.toml)")
    results = [_verify(path) for path in cases]
    rows = [
        [
            Text(r.name),
            Text(r.expect),
            Text("ok", style="green") if r.ok else Text("FAIL", style="red"),
            Text(str(r.events)),
            Text(r.detail),
        ]
        for r in results
    ]
    con = console()
    columns = ("case", "expect", "result", "events", "detail")
    table = fit_table(columns, rows, con.width, right={"events"})
    con.print(table)
    failed = [r.name for r in results if not r.ok]
    if failed:
        con.print(
            Text(f"{len(failed)} of {len(results)} cases failed: {', '.join(failed)}", style="red")
        )
        raise typer.Exit(FAILED)
    con.print(Text(f"{len(results)} cases, all as expected"))


def _verify(path: Path) -> CaseResult:
    """One case; a case that does not even load is a failure of that case, not of all."""
    try:
        return verify_case(path)
    except FoldlineError as exc:
        return CaseResult(path.name, path, "?", False, 0, f"does not load: {exc}")


@golden_app.command()
def record(
    regen: Annotated[
        bool,
        typer.Option("--regen", help="Really rewrite the recorded cases (review the diff after)."),
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", metavar="DIR", help="Write the cases here instead.")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", metavar="CASE", help="Record only this case. Repeatable."),
    ] = None,
) -> None:
    """Re-record the golden corpus with golden/record.py (needs --regen)."""
    if not regen:
        raise CliError(
            "golden record rewrites recorded runs that must never change by accident: "
            "pass --regen to do it, then review the diff"
        )
    if not RECORD_SCRIPT.is_file():
        raise CliError(f"no {RECORD_SCRIPT} here: run this from the repository root")
    argv = [sys.executable, str(RECORD_SCRIPT), "--regen"]
    if out is not None:
        argv += ["--out", str(out)]
    if only:
        argv += ["--only", *only]
    code = subprocess.run(argv, check=False).returncode
    if code:
        raise CliError(f"{RECORD_SCRIPT} exited with status {code}", FAILED)


def lint(
    paths: Annotated[
        list[Path], typer.Argument(metavar="PATH", help="Python files or directories.")
    ],
) -> None:
    """Find clock, randomness and network reads that bypass ports.

    Such reads make replay diverge: go through ctx.now(), ctx.random(), ...
    Exit 1 if anything is found.
    """
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise CliError(f"no such file or directory: {', '.join(missing)}")
    findings = lint_paths(paths)
    con = console()
    for finding in findings:
        con.print(Text(str(finding)))
    if findings:
        count = len(findings)
        con.print(Text(f"{count} finding{'s' if count != 1 else ''}", style="red"))
        raise typer.Exit(FAILED)
    con.print(Text("no findings"))
