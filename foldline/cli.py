"""The ``foldline`` command.

Exit codes: 0 ok; 1 a run failed, a replay diverged, runs differ or lint found
something; 2 usage or bad input. Every error is one line on stderr, ``error: ...``,
naming what was wrong; ``--debug`` adds the traceback. The commands live in
:mod:`foldline.commands`, one module per family; this module is the app and the
one place errors become exit codes.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from executor.errors import NondeterminismError
from foldline import __version__
from foldline.commands import corpus, decisions, demo, history, runs
from foldline.common import FAILED, OK, USAGE, CliError
from foldline.loader import describe_kir_error
from kir.errors import KirError
from substrate.errors import FoldlineError

__all__ = ["app", "main"]

_DEBUG = "foldline.debug"


def _one_line(text: str) -> str:
    # GraphInvalid-style messages list their errors as "  - ..." lines.
    parts = (re.sub(r"^\s*(- )?", "", line).rstrip() for line in text.splitlines())
    return "; ".join(p for p in parts if p)


class FoldlineGroup(TyperGroup):
    """Turns every error into one line and an exit code, usage errors included."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if _is_click_exception(exc):
                raise
            code, message = _describe(exc)
            if ctx.meta.get(_DEBUG):
                traceback.print_exc()
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(code) from None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(
                args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        try:
            rv = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(FAILED)
        except Exception as exc:
            if not _is_click_exception(exc):
                raise
            sys.exit(_usage_error(exc))
        sys.exit(rv if isinstance(rv, int) else OK)


def _is_click_exception(exc: BaseException) -> bool:
    # Typer vendors click, so its exception classes are private; they are recognized by
    # the interface click documents for them.
    return isinstance(getattr(exc, "exit_code", None), int) and hasattr(exc, "format_message")


def _usage_error(exc: Exception) -> int:
    """Print a click usage error on one line; return its exit code."""
    code: int = getattr(exc, "exit_code", USAGE)
    ctx = getattr(exc, "ctx", None)
    # Typed as Exception (see _is_click_exception), so the method is looked up by name.
    format_message = getattr(exc, "format_message")  # noqa: B009
    if type(exc).__name__ == "NoArgsIsHelpError":
        # The help: typer's rich formatter has printed it already and left "" here.
        text = str(format_message())
        if text:
            typer.echo(text)
        return OK
    message = _one_line(str(format_message()))
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    typer.echo(f"error: {message}{hint}", err=True)
    return code


def _describe(exc: Exception) -> tuple[int, str]:
    """The exit code and the one-line message for an error raised by a command."""
    if isinstance(exc, CliError):
        return exc.code, _one_line(str(exc))
    if isinstance(exc, NondeterminismError):
        return FAILED, _one_line(str(exc))
    if isinstance(exc, KirError):
        return USAGE, describe_kir_error(exc)
    if isinstance(exc, FoldlineError):
        return USAGE, _one_line(str(exc))
    return FAILED, (
        f"internal error: {type(exc).__name__}: {_one_line(str(exc))} "
        "(run with --debug for the traceback)"
    )


app = typer.Typer(
    name="foldline",
    cls=FoldlineGroup,
    help=(
        "Durable execution for LLM agents: every run is an event log that replays byte-identically."
    ),
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"foldline {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """Durable execution for LLM agents."""
    ctx.meta[_DEBUG] = debug


_RUNS = "Runs"
_DECISIONS = "Decisions"
_HISTORY = "Recorded runs"
_CORPUS = "Corpus and code"

app.command(rich_help_panel=_RUNS)(runs.run)
app.command(rich_help_panel=_RUNS)(runs.ls)
app.command(rich_help_panel=_RUNS)(runs.show)
app.command(rich_help_panel=_RUNS)(runs.resume)
app.command(rich_help_panel=_DECISIONS)(decisions.approve)
app.command(rich_help_panel=_DECISIONS)(decisions.reject)
app.command(rich_help_panel=_DECISIONS)(decisions.answer)
app.command(rich_help_panel=_DECISIONS)(decisions.signal)
app.command(rich_help_panel=_DECISIONS)(decisions.budget)
app.command(rich_help_panel=_DECISIONS)(decisions.cancel)
app.command(rich_help_panel=_HISTORY)(history.replay)
app.command(rich_help_panel=_HISTORY)(history.diff)
app.command(rich_help_panel=_HISTORY)(history.fork)
app.command(rich_help_panel=_HISTORY)(history.export)
app.command("import", rich_help_panel=_HISTORY)(history.import_)
app.add_typer(corpus.golden_app, name="golden", rich_help_panel=_CORPUS)
app.command(rich_help_panel=_CORPUS)(corpus.lint)
app.command(rich_help_panel=_CORPUS)(demo.demo)


def main() -> None:
    """Console-script entry point."""
    app()
