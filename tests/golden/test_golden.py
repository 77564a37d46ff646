"""The golden corpus: every case replays as its case.toml says, and re-recording is a no-op."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from executor.bundle import import_run
from executor.errors import NondeterminismError
from executor.golden import case_dirs, verify_case, verify_corpus
from executor.replay import replay
from substrate.stores.memory import MemoryStore

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "golden"
CASES = case_dirs(GOLDEN)


def _case(path: Path) -> dict[str, object]:
    return tomllib.loads((path / "case.toml").read_text())


@pytest.mark.parametrize("case", CASES, ids=[p.name for p in CASES])
def test_case_replays_as_recorded(case: Path) -> None:
    result = verify_case(case)
    assert result.ok, result.detail


def test_the_must_fail_case_fails_at_its_seq_and_field() -> None:
    case = GOLDEN / "drift-must-fail"
    meta = _case(case)
    store = MemoryStore()
    run_id = import_run(store, case)
    with pytest.raises(NondeterminismError) as err:
        replay(store, run_id)
    exc = err.value
    assert (exc.seq, exc.node, exc.kind, exc.path) == (
        meta["fail_seq"],
        "b",
        "node.completed",
        "$.data.output.value",
    )
    assert (exc.recorded, exc.regenerated) == ("2", "4")
    assert f"diverged at seq {meta['fail_seq']} (node.completed of node 'b')" in str(exc)


def test_the_corpus_covers_every_node_kind_and_run_shape() -> None:
    assert len(CASES) >= 25
    kinds: set[str] = set()
    for case in CASES:
        graph = json.loads((case / "graph.json").read_text())
        for g in [graph, *graph.get("subgraphs", [])]:
            for node in g["nodes"]:
                kinds.add(node["config"]["kind"])
                body = node.get("config", {}).get("node")
                if body:
                    kinds.add(body["config"]["kind"])
    assert kinds >= {"llm", "agent", "tool", "code", "gate", "router", "map", "subgraph", "wait"}
    logs = {c.name: (c / "events.jsonl").read_text() for c in CASES}
    every = "".join(logs.values())
    for kind in (
        "gate.decided",
        "run.resumed",
        "signal.received",
        "run.cancel_requested",
        "run.cancelled",
        "budget.exceeded",
        "budget.raised",
        "unknown-outcome",
        '"retry_at"',
        "clock.read",
        "NodeTimeout",
        '"type":"blob"',
    ):
        assert kind in every, kind
    # a fan-out whose items completed out of index order, and whose output is in order
    jittered = [json.loads(line) for line in logs["map-llm-jitter"].splitlines()]
    items = [
        int(e["node"].split("[")[1].split("]")[0])
        for e in jittered
        if e["kind"] == "node.completed" and "[" in e["node"]
    ]
    assert sorted(items) == list(range(len(items)))
    assert items != sorted(items)
    # an approved re-run killed too is asked about again, not run a third time
    assert '"gate":"pay#0.outcome.2"' in logs["unknown-outcome-rerun-crash"]
    # a case recorded under the first engine behaviour keeps replaying with it
    assert '"flags":{"engine":1}' in logs["engine-1-unknown-outcome-rerun"]
    assert logs["engine-1-unknown-outcome-rerun"].count("tool.requested") == 1
    # crash-resumed more than once, and an old schema version
    assert logs["crash-resume-many"].count("run.resumed") >= 2
    versions = {c.name: _case(c).get("schema_version") for c in CASES}
    assert versions["schema-v0"] == 0
    assert '"schema_version":0' in logs["schema-v0"]
    assert sum(1 for c in CASES if _case(c)["expect"] == "nondeterminism") >= 1
    # a DSL-compiled crew, paused at review and approved from outside, is in the corpus
    crew = json.loads((GOLDEN / "dsl-crew" / "graph.json").read_text())
    assert any(n["config"]["kind"] == "gate" for n in crew["nodes"])
    assert logs["dsl-crew"].count("gate.decided") == 2


def test_verify_corpus_reports_every_case() -> None:
    results = verify_corpus(GOLDEN)
    assert [r.name for r in results] == [str(_case(c)["name"]) for c in CASES]
    assert all(r.ok for r in results), [r.detail for r in results if not r.ok]


def test_re_recording_the_corpus_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "golden"
    subprocess.run(
        [sys.executable, str(GOLDEN / "record.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    for case in CASES:
        fresh = out / case.name
        for path in sorted(p for p in case.rglob("*") if p.is_file()):
            rel = path.relative_to(case)
            assert (fresh / rel).read_bytes() == path.read_bytes(), f"{case.name}/{rel}"
        made = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
        have = sorted(p.relative_to(case) for p in case.rglob("*") if p.is_file())
        assert made == have, case.name


def test_the_recorder_needs_the_flag_to_rewrite_golden() -> None:
    proc = subprocess.run(
        [sys.executable, str(GOLDEN / "record.py")], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 2
    assert "needs --regen" in proc.stderr
