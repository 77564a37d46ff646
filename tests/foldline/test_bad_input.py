"""Bad input: a one-line error naming what was wrong, exit code 2, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.foldline.conftest import OPS, cli, one_line_error, snapshot, start_ops


def files(root: Path) -> set[str]:
    """Every file under ``root`` except SQLite's own side files (-wal, -shm)."""
    return {str(p) for p in root.rglob("*") if not p.name.endswith(("-wal", "-shm"))}


def refused(args: list[str], db: Path, tmp_path: Path) -> str:
    """Run a command that must be refused; return its error line."""
    before_runs, before_files = snapshot(db), files(tmp_path)
    result = cli(*args)
    assert result.exit_code == 2, result.output
    line = one_line_error(result)
    assert snapshot(db) == before_runs, "the store changed"
    assert files(tmp_path) == before_files, "a file was written"
    return line


@pytest.fixture
def waiting(db: Path) -> Path:
    """A store holding run r1, waiting on gate ops#1."""
    start_ops("r1")
    return db


def test_missing_file(db: Path, tmp_path: Path) -> None:
    assert refused(["run", "nope.py", "--mock"], db, tmp_path) == "error: no such file: nope.py"
    assert not db.exists()


def test_not_a_graph_file(db: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    line = refused(["run", str(tmp_path / "notes.txt")], db, tmp_path)
    assert line == (
        f"error: {tmp_path / 'notes.txt'}: expected a Python file (.py) or a KIR graph (.json)"
    )
    line = refused(["run", str(tmp_path)], db, tmp_path)
    assert line == f"error: {tmp_path} is a directory, not a graph file (.py or .json)"


def test_invalid_graph_json(db: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    line = refused(["run", str(bad)], db, tmp_path)
    assert line.startswith(f"error: {bad}: invalid graph (1 error): at $: invalid JSON: ")
    bad.write_text('{"nodes": [{"id": "a", "kind": "code", "config": {}}], "edges": []}')
    line = refused(["run", str(bad)], db, tmp_path)
    assert line.startswith(f"error: {bad}: invalid graph (1 error): node 'a' at $.nodes[0].config")
    bad.write_text(
        '{"nodes": [{"id": "a", "kind": "code", "config": {"function": "m:f"}}],'
        ' "edges": [{"from": "a", "to": "zz"}]}'
    )
    line = refused(["run", str(bad)], db, tmp_path)
    assert "$.edges[0]" in line
    assert "'zz'" in line


@pytest.mark.parametrize(
    "args",
    [
        ["show", "nope"],
        ["show", "nope", "--json"],
        ["resume", "nope"],
        ["approve", "nope", "g#0", "--by", "me"],
        ["reject", "nope", "g#0", "--by", "me"],
        ["answer", "nope", "g#0", "1", "--by", "me"],
        ["signal", "nope", "go"],
        ["budget", "nope", "--usd", "1", "--by", "me"],
        ["cancel", "nope"],
        ["replay", "nope"],
        ["fork", "nope", "--at", "1"],
        ["export", "nope", "out"],
        ["diff", "nope", "r1"],
        ["diff", "r1", "nope"],
    ],
)
def test_unknown_run_id(waiting: Path, tmp_path: Path, args: list[str]) -> None:
    args = [str(tmp_path / a) if a == "out" else a for a in args]
    assert refused(args, waiting, tmp_path) == "error: no run 'nope' in the store"


def test_unknown_run_id_without_a_store(db: Path, tmp_path: Path) -> None:
    line = refused(["approve", "r1", "ops#1", "--by", "me"], db, tmp_path)
    assert line == f"error: no run 'r1': there is no store at {db} yet"
    assert not db.exists()


def test_approving_a_gate_that_is_not_open(waiting: Path, tmp_path: Path) -> None:
    line = refused(["approve", "r1", "ops#7", "--by", "me"], waiting, tmp_path)
    assert line == "error: run 'r1': gate 'ops#7' is not open (open gates: ops#1)"
    line = refused(["reject", "r1", "ops#7", "--by", "me"], waiting, tmp_path)
    assert line == "error: run 'r1': gate 'ops#7' is not open (open gates: ops#1)"


def test_approving_twice(waiting: Path, tmp_path: Path) -> None:
    assert cli("approve", "r1", "ops#1", "--by", "alice").exit_code == 0
    line = refused(["approve", "r1", "ops#1", "--by", "bob"], waiting, tmp_path)
    assert line == "error: run 'r1': gate 'ops#1' was already decided (approve by alice)"
    line = refused(["reject", "r1", "ops#1", "--by", "bob"], waiting, tmp_path)
    assert line == "error: run 'r1': gate 'ops#1' was already decided (approve by alice)"


def test_answering_an_approval_gate(waiting: Path, tmp_path: Path) -> None:
    line = refused(["answer", "r1", "ops#1", "3", "--by", "me"], waiting, tmp_path)
    assert line == "error: run 'r1': gate 'ops#1' takes approve/reject, not an answer"


@pytest.mark.parametrize(
    ("value", "shown"), [("replicas", "'replicas'"), ("=3", "'=3'"), (" =3", "' =3'")]
)
def test_bad_input_option(db: Path, tmp_path: Path, value: str, shown: str) -> None:
    line = refused(["run", str(OPS), "--mock", "--input", value], db, tmp_path)
    assert line == f"error: bad --input {shown}: expected KEY=VALUE (for example topic=tides)"
    assert not db.exists()


def test_unreachable_store_url(db: Path, tmp_path: Path) -> None:
    nowhere = tmp_path / "no" / "such" / "runs.db"
    args = ["run", str(OPS), "--mock", "-i", "replicas=3", "--store", str(nowhere)]
    line = refused(args, db, tmp_path)
    assert line.startswith(f"error: cannot open SQLite store at '{nowhere}'")
    line = refused(
        ["run", str(OPS), "--mock", "-i", "replicas=3", "--store", "postgres://db.example/x"],
        db,
        tmp_path,
    )
    assert line == (
        "error: unknown store URL scheme 'postgres' in 'postgres://db.example/x' "
        "(expected memory:// or sqlite:///PATH)"
    )
    line = refused(
        ["run", str(OPS), "--mock", "-i", "replicas=3", "--store", str(tmp_path)], db, tmp_path
    )
    assert line == f"error: cannot open SQLite store at '{tmp_path}': it is a directory"
    line = refused(["ls", "--store", "postgres://db.example/x"], db, tmp_path)
    assert line.startswith("error: unknown store URL scheme 'postgres'")
    line = refused(["show", "r1", "--store", str(nowhere)], db, tmp_path)
    assert line == f"error: no run 'r1': there is no store at {nowhere} yet"


def test_a_store_that_is_not_a_store(db: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a SQLite database, it is a text file" * 10)
    line = refused(["ls", "--store", str(junk)], db, tmp_path)
    assert line.startswith(f"error: cannot open SQLite store at '{junk}'")
