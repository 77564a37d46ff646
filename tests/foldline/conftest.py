"""Shared pieces of the CLI tests: a temporary store, the runner, graph files."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from foldline.cli import app
from kir import Graph
from substrate.stores import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
OPS = FIXTURES / "ops_agent.py"
FNS = "tests.foldline.fixtures.fns"

runner = CliRunner()


def cli(*args: str) -> Result:
    """Run ``foldline ARGS`` in-process; exceptions other than exits propagate."""
    return runner.invoke(app, list(args), catch_exceptions=False)


def lines(result: Result) -> list[str]:
    return [line.rstrip() for line in result.output.strip().splitlines()]


def one_line_error(result: Result) -> str:
    """The single ``error: ...`` line a failed command printed (and nothing else)."""
    out = lines(result)
    assert len(out) == 1, result.output
    assert out[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return out[0]


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$FOLDLINE_STORE`` points at a SQLite file in ``tmp_path`` (not created yet)."""
    path = tmp_path / "runs.db"
    monkeypatch.setenv("FOLDLINE_STORE", str(path))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(ROOT)
    return path


def snapshot(path: Path) -> dict[str, int] | None:
    """Each run's length, or None if the store file does not exist."""
    if not path.exists():
        return None
    with SQLiteStore(path) as store:
        return {info.run_id: info.length for info in store.list_runs()}


def graph_file(tmp_path: Path, graph: Graph, name: str = "graph.json") -> Path:
    path = tmp_path / name
    path.write_text(graph.to_json())
    return path


def start_ops(run_id: str = "r1", *extra: str) -> Result:
    """Run the ops agent until it waits on its approval gate ``ops#1``."""
    result = cli("run", str(OPS), "--mock", "--run-id", run_id, "--input", "replicas=3", *extra)
    assert result.exit_code == 0, result.output
    return result
