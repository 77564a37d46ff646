"""What every command shares: exit codes, the one-line error, the store, the console.

The store a command uses is ``--store URL``, else ``$FOLDLINE_STORE``, else
``./.foldline/runs.db``. Commands that record a run create the store if needed;
commands that only read or decide never create one: against a store that does not
exist they fail with one line and leave the disk as it was.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Final

import typer
from rich.console import Console

from substrate.errors import StoreError
from substrate.stores import EventStore, open_store

__all__ = [
    "OK",
    "FAILED",
    "USAGE",
    "DEFAULT_STORE",
    "CliError",
    "StoreOption",
    "store_url",
    "store_path",
    "open_session",
    "console",
    "complete_run_ids",
]

#: Exit codes: success; a run failed or a replay diverged; usage or bad input.
OK: Final = 0
FAILED: Final = 1
USAGE: Final = 2

DEFAULT_STORE: Final = ".foldline/runs.db"


class CliError(Exception):
    """Bad input the command detected itself: one line on stderr, then ``code``."""

    def __init__(self, message: str, code: int = USAGE) -> None:
        super().__init__(message)
        self.code = code


StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="URL",
        help="Store URL or path (default: $FOLDLINE_STORE, then ./.foldline/runs.db).",
    ),
]


def store_url(option: str | None) -> str:
    """The store to use: the option, then ``$FOLDLINE_STORE``, then the default file."""
    return option or os.environ.get("FOLDLINE_STORE") or DEFAULT_STORE


def store_path(url: str) -> Path | None:
    """The file a SQLite store URL points at (``None`` for other stores)."""
    if url.startswith("sqlite://"):
        rest = url.removeprefix("sqlite://")
        return Path(rest) if rest else None
    if "://" in url or url in ("memory:", ""):
        return None
    return Path(url)


@contextmanager
def open_session(
    option: str | None, *, create: bool = False, run_id: str | None = None
) -> Iterator[EventStore]:
    """Open the store for one command and close it afterwards.

    Args:
        create: create the store (and ``./.foldline/``) if it does not exist. Without
            it a missing SQLite file is an error and nothing is written.

    Raises:
        CliError: the store does not exist and ``create`` is false.
        StoreError: the store cannot be opened.
    """
    url = store_url(option)
    path = store_path(url)
    if path is not None and not path.exists():
        if not create:
            if run_id is not None:
                raise CliError(f"no run {run_id!r}: there is no store at {path} yet")
            raise CliError(f"no store at {path} (nothing has been recorded there yet)")
        if url == DEFAULT_STORE:
            path.parent.mkdir(parents=True, exist_ok=True)
    if path is not None and path.is_dir():
        raise StoreError(f"cannot open SQLite store at {str(path)!r}: it is a directory")
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()


def console(*, err: bool = False) -> Console:
    """A rich console on stdout (or stderr): no colors or wrapping games when piped.

    Piped output is laid out 120 columns wide (or ``$COLUMNS``) rather than rich's 80,
    so tables stay one row per line for ``grep``.
    """
    stream = sys.stderr if err else sys.stdout
    width = None
    if not stream.isatty() and "COLUMNS" not in os.environ:
        width = 120
    return Console(file=stream, highlight=False, width=width, soft_wrap=False)


def complete_run_ids(incomplete: str) -> list[str]:
    """Shell completion of run ids from the default store (never creates it)."""
    url = store_url(None)
    path = store_path(url)
    if path is None or not path.is_file():
        return []
    try:
        with open_session(None) as store:
            ids = [info.run_id for info in store.list_runs()]
    except Exception:  # completion must never print a traceback into the shell
        return []
    return [i for i in reversed(ids) if i.startswith(incomplete)]
