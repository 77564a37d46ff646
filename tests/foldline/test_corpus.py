"""``golden verify``, ``golden record`` and ``lint``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from foldline.commands import corpus
from kir import Graph, Node
from kir.schema import CodeConfig
from tests.foldline.conftest import FNS, ROOT, cli, graph_file, lines, one_line_error, start_ops


def make_corpus(tmp_path: Path) -> Path:
    """Three cases: a replayable run, the repo's must-fail case, and a drifting run."""
    root = tmp_path / "corpus"
    start_ops("r1")
    assert cli("approve", "r1", "ops#1", "--by", "alice").exit_code == 0
    assert cli("resume", "r1").exit_code == 0
    assert cli("export", "r1", str(root / "approved")).exit_code == 0
    shutil.copytree(ROOT / "golden" / "drift-must-fail", root / "drift-must-fail")
    return root


def test_golden_verify_checks_every_case(db: Path, tmp_path: Path) -> None:
    root = make_corpus(tmp_path)
    result = cli("golden", "verify", str(root))
    assert result.exit_code == 0, result.output
    out = lines(result)
    assert out[0].split() == ["case", "expect", "result", "events", "detail"]
    assert out[1].split()[:4] == ["approved", "identical", "ok", "14"]
    assert out[2].split()[:3] == ["drift-must-fail", "nondeterminism", "ok"]
    assert out[-1] == "2 cases, all as expected"


def test_golden_verify_fails_on_a_case_that_diverges(db: Path, tmp_path: Path) -> None:
    root = make_corpus(tmp_path)
    graph = Graph(
        nodes=[Node(id="d", config=CodeConfig(function=f"{FNS}:drift"), inputs={"x": "$input.x"})]
    )
    assert (
        cli("run", str(graph_file(tmp_path, graph)), "-i", "x=1", "--run-id", "d1").exit_code == 0
    )
    assert cli("export", "d1", str(root / "drifting")).exit_code == 0
    (root / "broken").mkdir()
    (root / "broken" / "case.toml").write_text('expect = "identical"\n')
    result = cli("golden", "verify", str(root))
    assert result.exit_code == 1
    out = lines(result)
    assert out[2].split()[:3] == ["broken", "?", "FAIL"]
    assert "does not load" in out[2]
    assert out[4].split()[:3] == ["drifting", "identical", "FAIL"]
    assert out[-1] == "2 of 4 cases failed: broken, drifting"


def test_golden_verify_needs_a_corpus(db: Path, tmp_path: Path) -> None:
    missing = cli("golden", "verify", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2
    assert (
        one_line_error(missing)
        == f"error: no golden corpus at {tmp_path / 'nowhere'} (a directory of cases)"
    )
    empty = cli("golden", "verify", str(tmp_path))
    assert empty.exit_code == 2
    assert "no golden cases under" in one_line_error(empty)


def test_golden_verify_the_repository_corpus(db: Path) -> None:
    result = cli("golden", "verify")
    assert result.exit_code == 0, result.output
    assert lines(result)[-1].endswith("cases, all as expected")


def test_golden_record_needs_regen(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "ran.txt"
    script = tmp_path / "record.py"
    script.write_text(
        "import sys\n"
        f"open({str(marker)!r}, 'w').write(' '.join(sys.argv[1:]))\n"
        "sys.exit(3 if '--out' in sys.argv and sys.argv[-1] == 'fail' else 0)\n"
    )
    monkeypatch.setattr(corpus, "RECORD_SCRIPT", script)
    refused = cli("golden", "record")
    assert refused.exit_code == 2
    assert one_line_error(refused) == (
        "error: golden record rewrites recorded runs that must never change by accident: "
        "pass --regen to do it, then review the diff"
    )
    assert not marker.exists()
    done = cli("golden", "record", "--regen", "--out", str(tmp_path / "out"))
    assert done.exit_code == 0, done.output
    assert marker.read_text() == f"--regen --out {tmp_path / 'out'}"
    some = cli("golden", "record", "--regen", "--only", "a", "--only", "b")
    assert some.exit_code == 0, some.output
    assert marker.read_text() == "--regen --only a b"
    failed = cli("golden", "record", "--regen", "--out", "fail")
    assert failed.exit_code == 1
    assert one_line_error(failed) == f"error: {script} exited with status 3"


def test_golden_record_runs_from_the_repository_root(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("golden", "record", "--regen")
    assert result.exit_code == 2
    assert one_line_error(result) == (
        "error: no golden/record.py here: run this from the repository root"
    )


def test_lint_reports_findings_and_exits_1(db: Path, tmp_path: Path) -> None:
    clean = tmp_path / "clean.py"
    clean.write_text("def f(ctx):\n    return ctx.now()\n")
    ok = cli("lint", str(clean))
    assert ok.exit_code == 0
    assert lines(ok) == ["no findings"]
    dirty = tmp_path / "dirty.py"
    dirty.write_text("import time\n\ndef f():\n    return time.time()\n")
    found = cli("lint", str(tmp_path))
    assert found.exit_code == 1
    out = lines(found)
    assert out[0].startswith(f"{dirty}:4:12: FL001 ")
    assert out[-1] == "1 finding"
    missing = cli("lint", str(tmp_path / "nope.py"))
    assert missing.exit_code == 2
    assert one_line_error(missing) == f"error: no such file or directory: {tmp_path / 'nope.py'}"
