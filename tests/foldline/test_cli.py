from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foldline import __version__
from foldline.cli import app
from substrate.events import ModelCalled, verify_chain
from substrate.stores import SQLiteStore

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"foldline {__version__}"


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output
    assert "Record a small run with the scripted model" in result.output


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
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: cannot open SQLite store at")


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).parent / "foldline"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"foldline {__version__}"
