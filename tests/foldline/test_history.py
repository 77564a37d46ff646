"""``replay``, ``diff``, ``fork``, ``export`` and ``import``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from foldline.commands import history
from kir import Graph, Node
from kir.schema import CodeConfig
from tests.foldline.conftest import (
    FNS,
    cli,
    graph_file,
    lines,
    one_line_error,
    snapshot,
    start_ops,
)


def finish_ops(run_id: str = "r1") -> None:
    start_ops(run_id)
    assert cli("approve", run_id, "ops#1", "--by", "alice").exit_code == 0
    assert cli("resume", run_id).exit_code == 0


def drift_graph() -> Graph:
    return Graph(
        nodes=[Node(id="d", config=CodeConfig(function=f"{FNS}:drift"), inputs={"x": "$input.x"})],
        output="d",
    )


# -- replay -------------------------------------------------------------------------------


def test_replay_of_a_resumed_run_is_identical(db: Path) -> None:
    finish_ops("r1")
    result = cli("replay", "r1")
    assert result.exit_code == 0, result.output
    assert lines(result) == [
        "identical: run r1 replayed 14 events byte for byte, across 1 resume; status completed"
    ]


def test_replay_of_a_waiting_run(db: Path) -> None:
    start_ops("r1")
    result = cli("replay", "r1")
    assert result.exit_code == 0, result.output
    assert lines(result) == ["identical: run r1 replayed 6 events byte for byte; status waiting"]


def test_replay_names_the_divergence_and_exits_1(db: Path, tmp_path: Path) -> None:
    path = graph_file(tmp_path, drift_graph())
    assert cli("run", str(path), "-i", "x=1", "--run-id", "d1").exit_code == 0
    before = snapshot(db)
    result = cli("replay", "d1")
    assert result.exit_code == 1
    out = lines(result)
    assert out[0] == "diverged: run d1 at seq 2 (node.completed, node d)"
    assert out[1] == "  field        $.data.output.value"
    assert out[2].split() == ["recorded", out[2].split()[1]]
    assert out[3].split()[0] == "regenerated"
    assert out[2].split()[1] != out[3].split()[1]
    assert snapshot(db) == before  # replay never writes


def test_replay_shows_progress_on_a_terminal_for_long_logs(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    finish_ops("r1")
    screen = io.StringIO()
    calls: list[tuple[int, int]] = []

    def terminal(*, err: bool = False) -> Console:
        return Console(file=screen if err else io.StringIO(), force_terminal=True, width=100)

    monkeypatch.setattr(history, "console", terminal)
    monkeypatch.setattr(history, "PROGRESS_MIN_EVENTS", 10)
    with history._progress(14) as update:
        assert update is not None
        update(7, 14)
        calls.append((7, 14))
    assert "replaying" in screen.getvalue()
    monkeypatch.setattr(history, "PROGRESS_MIN_EVENTS", 100)
    with history._progress(14) as update:
        assert update is None
    monkeypatch.setattr(history, "PROGRESS_MIN_EVENTS", 10)
    assert cli("replay", "r1").exit_code == 0


# -- diff ---------------------------------------------------------------------------------


def test_diff_of_a_run_with_itself_is_identical(db: Path) -> None:
    finish_ops("r1")
    result = cli("diff", "r1", "r1")
    assert result.exit_code == 0
    assert lines(result) == ["identical: runs r1 and r1 have the same events"]


def test_diff_names_the_first_difference_and_the_nodes(db: Path, tmp_path: Path) -> None:
    path = graph_file(tmp_path, drift_graph())
    cli("run", str(path), "-i", "x=1", "--run-id", "d1")
    cli("run", str(path), "-i", "x=1", "--run-id", "d2")
    result = cli("diff", "d1", "d2")
    assert result.exit_code == 1
    out = lines(result)
    assert out[0].startswith("first difference at seq 0 (run.started) at $.")
    assert out[1].startswith("  d1: ")
    assert out[2].startswith("  d2: ")
    assert out[4].split() == ["node", "field", "d1", "d2"]
    assert out[5].split()[:2] == ["d", "output"]


def test_diff_across_stores(db: Path, tmp_path: Path) -> None:
    finish_ops("r1")
    bundle = tmp_path / "bundle"
    assert cli("export", "r1", str(bundle)).exit_code == 0
    other = tmp_path / "other.db"
    assert cli("import", str(bundle), "--store", str(other)).exit_code == 0
    result = cli("diff", "r1", "r1", "--store-b", str(other))
    assert result.exit_code == 0, result.output
    missing = cli("diff", "r1", "nope", "--store-b", str(other))
    assert missing.exit_code == 2
    assert one_line_error(missing) == "error: no run 'nope' in the store"


# -- fork ---------------------------------------------------------------------------------


def test_fork_keeps_the_prefix_and_carries_on(db: Path) -> None:
    finish_ops("r1")
    result = cli("fork", "r1", "--at", "7", "--run-id", "r1b")
    assert result.exit_code == 0, result.output
    out = lines(result)
    assert out[0] == "forked run r1 at seq 7 as r1b"
    assert out[1].startswith("run r1b: completed in ")
    assert out[-1] == "output: web is at 3 replicas"
    assert cli("replay", "r1b").exit_code == 0
    assert "r1b" in cli("ls").output


def test_fork_at_a_gate_waits_on_it_again(db: Path) -> None:
    finish_ops("r1")
    result = cli("fork", "r1", "--at", "5")
    assert result.exit_code == 0, result.output
    assert lines(result)[1] == "run r1-fork-5: waiting on ops#1"


def test_fork_out_of_range_writes_nothing(db: Path) -> None:
    finish_ops("r1")
    before = snapshot(db)
    for at in ("0", "15"):
        result = cli("fork", "r1", "--at", at)
        assert result.exit_code == 2
        assert one_line_error(result) == (
            f"error: --at {at} is outside run 'r1': pick a seq from 1 to 14 (seq 0 is run.started)"
        )
    taken = cli("fork", "r1", "--at", "3", "--run-id", "r1")
    assert taken.exit_code == 2
    assert "already exists" in one_line_error(taken)
    assert snapshot(db) == before


# -- export / import ----------------------------------------------------------------------


def test_export_then_import_into_a_new_store_replays(db: Path, tmp_path: Path) -> None:
    finish_ops("r1")
    bundle = tmp_path / "case"
    result = cli("export", "r1", str(bundle), "--case", "description=one approval")
    assert result.exit_code == 0, result.output
    assert lines(result) == [f"exported run r1 (14 events) to {bundle}"]
    assert sorted(p.name for p in bundle.iterdir()) == [
        "blobs",
        "case.toml",
        "events.jsonl",
        "graph.json",
    ]
    assert 'description = "one approval"' in (bundle / "case.toml").read_text()
    other = tmp_path / "other.db"
    imported = cli("import", str(bundle), "--store", str(other))
    assert imported.exit_code == 0, imported.output
    assert lines(imported) == [f"imported {bundle} as run r1 (14 events)"]
    assert cli("replay", "r1", "--store", str(other)).exit_code == 0
    again = cli("import", str(bundle), "--store", str(other))
    assert again.exit_code == 2
    assert "already exists" in one_line_error(again)


def test_export_refuses_a_non_empty_directory(db: Path, tmp_path: Path) -> None:
    finish_ops("r1")
    bundle = tmp_path / "case"
    assert cli("export", "r1", str(bundle)).exit_code == 0
    again = cli("export", "r1", str(bundle))
    assert again.exit_code == 2
    assert "not empty" in one_line_error(again)
    assert cli("export", "r1", str(bundle), "--overwrite").exit_code == 0
    bad = cli("export", "r1", str(tmp_path / "x"), "--case", "novalue")
    assert bad.exit_code == 2
    assert one_line_error(bad).startswith("error: bad --case 'novalue'")


def test_import_of_a_broken_bundle_creates_no_store(db: Path, tmp_path: Path) -> None:
    finish_ops("r1")
    bundle = tmp_path / "case"
    cli("export", "r1", str(bundle))
    lines_ = (bundle / "events.jsonl").read_text().splitlines()
    (bundle / "events.jsonl").write_text("\n".join(lines_[:3] + lines_[4:]) + "\n")
    other = tmp_path / "other.db"
    result = cli("import", str(bundle), "--store", str(other))
    assert result.exit_code == 2
    assert "events.jsonl line 4" in one_line_error(result)
    assert not other.exists()
    missing = cli("import", str(tmp_path / "nowhere"), "--store", str(other))
    assert missing.exit_code == 2
    assert "no such bundle directory" in one_line_error(missing)
    assert not other.exists()
