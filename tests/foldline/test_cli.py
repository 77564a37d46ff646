"""The app itself: version, help, demo, and how every error becomes one line and a code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from foldline import __version__
from foldline.cli import app
from foldline.common import complete_run_ids
from substrate.events import ModelCalled, verify_chain
from substrate.stores import SQLiteStore
from tests.foldline.conftest import cli, one_line_error, start_ops

runner = CliRunner()

COMMANDS = [
    "run",
    "ls",
    "show",
    "resume",
    "approve",
    "reject",
    "answer",
    "signal",
    "budget",
    "cancel",
    "replay",
    "diff",
    "fork",
    "export",
    "import",
    "lint",
    "demo",
    "golden",  # typer lists sub-apps after commands
]


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"foldline {__version__}"


def test_help_lists_every_command_with_a_one_line_description(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # one line each on a plain terminal
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    assert list(group.commands) == COMMANDS
    for name, command in group.commands.items():
        summary = command.get_short_help_str(limit=200)
        assert summary, f"{name} has no description"
        assert "\n" not in (command.help or "").split("\n\n")[0], name
        rows = [line.strip(" │") for line in result.output.splitlines()]
        row = next((r for r in rows if r.split(" ", 1)[0] == name), None)
        assert row is not None, f"{name} is not listed"
        assert row.split(None, 1)[1] == summary, (name, row)
    assert "--install-completion" in result.output


def test_golden_help_lists_its_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = runner.invoke(app, ["golden", "--help"])
    assert result.exit_code == 0
    assert "verify" in result.output
    assert "record" in result.output


def test_no_arguments_prints_the_help() -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 0
    assert "Usage: foldline" in result.output


def test_usage_errors_are_one_line_with_code_2() -> None:
    result = runner.invoke(app, ["run"])
    assert result.exit_code == 2
    assert one_line_error(result) == "error: Missing argument 'FILE'. (see 'foldline run --help')"
    result = runner.invoke(app, ["frobnicate"])
    assert result.exit_code == 2
    assert one_line_error(result).startswith("error: No such command 'frobnicate'")
    result = runner.invoke(app, ["ls", "--limit", "many"])
    assert result.exit_code == 2
    assert one_line_error(result).startswith("error: Invalid value for '--limit' / '-n'")


def test_debug_shows_the_traceback(db: Path) -> None:
    start_ops()
    quiet = runner.invoke(app, ["show", "nope"])
    assert quiet.exit_code == 2
    assert one_line_error(quiet) == "error: no run 'nope' in the store"
    loud = runner.invoke(app, ["--debug", "show", "nope"])
    assert loud.exit_code == 2
    assert "Traceback (most recent call last)" in loud.output
    assert "RunNotFound" in loud.output
    assert loud.output.strip().splitlines()[-1] == "error: no run 'nope' in the store"


def test_an_unexpected_exception_is_one_line_with_code_1(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_ops()

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("foldline.commands.runs.view_run", broken)
    result = runner.invoke(app, ["show", "r1"])
    assert result.exit_code == 1
    assert one_line_error(result) == (
        "error: internal error: ZeroDivisionError: division by zero "
        "(run with --debug for the traceback)"
    )


def test_run_ids_complete_from_the_store(db: Path) -> None:
    assert complete_run_ids("") == []  # no store yet, and none is created
    assert not db.exists()
    start_ops("alpha")
    start_ops("beta")
    assert complete_run_ids("") == ["beta", "alpha"]
    assert complete_run_ids("al") == ["alpha"]


def test_demo_records_a_verified_run(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    result = runner.invoke(app, ["demo", "--mock", "--store", str(db), "--steps", "4"])
    assert result.exit_code == 0, result.output
    assert "14 events, hash chain verified; 1 blob(s) for 4 identical prompts" in result.output
    with SQLiteStore(db) as store:
        (info,) = store.list_runs()
        log = store.read(info.run_id)
    verify_chain(log)
    assert sum(isinstance(e.data, ModelCalled) for e in log) == 4


def test_demo_runs_are_listed_and_shown(db: Path) -> None:
    assert cli("demo", "--mock").exit_code == 0
    listed = cli("ls")
    assert listed.exit_code == 0
    assert "completed" in listed.output
    (run_id,) = [line.split()[0] for line in listed.output.splitlines()[1:]]
    shown = cli("show", run_id)
    assert shown.exit_code == 0
    assert "run.completed" in shown.output


def test_demo_uses_foldline_store_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "env.db"
    monkeypatch.setenv("FOLDLINE_STORE", f"sqlite://{db}")
    result = runner.invoke(app, ["demo", "--mock"])
    assert result.exit_code == 0, result.output
    assert db.exists()


def test_demo_without_mock_is_a_one_line_usage_error() -> None:
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: no model provider is configured yet; run the demo with --mock"
    ]


def test_demo_with_unreachable_store_is_a_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["demo", "--mock", "--store", str(tmp_path / "no" / "such" / "x.db")]
    )
    assert result.exit_code == 2
    assert one_line_error(result).startswith("error: cannot open SQLite store at")


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).parent / "foldline"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"foldline {__version__}"


def test_shell_completion_completes_commands_and_run_ids(db: Path) -> None:
    start_ops("tour-9")
    exe = Path(sys.executable).parent / "foldline"
    env = dict(os.environ, _FOLDLINE_COMPLETE="complete_bash", COMP_CWORD="1")
    words = subprocess.run(
        [str(exe)], env=env | {"COMP_WORDS": "foldline app"}, capture_output=True, text=True
    )
    assert words.stdout.split() == ["approve"]
    ids = subprocess.run(
        [str(exe)],
        env=env | {"COMP_WORDS": "foldline show tour", "COMP_CWORD": "2"},
        capture_output=True,
        text=True,
    )
    assert ids.stdout.split() == ["tour-9"]
