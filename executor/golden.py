"""The golden corpus: recorded runs that must replay byte-identically.

Each case is a bundle directory (``graph.json``, ``events.jsonl``, ``blobs/``,
``case.toml``; see :mod:`executor.bundle`). ``case.toml`` says what to expect:
``expect = "identical"``, or ``expect = "nondeterminism"`` with the ``fail_seq`` and
``fail_path`` where the replay must diverge (a case that stands for code changed
after its run was recorded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from executor.bundle import CASE, import_run, read_bundle
from executor.errors import NondeterminismError
from executor.replay import replay
from substrate.stores.memory import MemoryStore

__all__ = ["CaseResult", "verify_case", "verify_corpus", "case_dirs"]


@dataclass(frozen=True)
class CaseResult:
    """One case checked: ``ok`` is whether it behaved as its ``case.toml`` expects."""

    name: str
    path: Path
    expect: str
    ok: bool
    events: int
    detail: str


def verify_case(directory: str | Path) -> CaseResult:
    """Import the case into a memory store and replay it.

    Raises:
        BundleError: the case does not load (bad files, broken chain, missing blob).
    """
    path = Path(directory)
    case = read_bundle(path).case
    name = str(case.get("name", path.name))
    expect = str(case.get("expect", "identical"))
    store = MemoryStore()
    run_id = import_run(store, path)
    events = store.head(run_id).next_seq
    try:
        report = replay(store, run_id)
    except NondeterminismError as exc:
        if expect != "nondeterminism":
            return CaseResult(name, path, expect, False, events, str(exc))
        want = (case.get("fail_seq"), case.get("fail_path"))
        if (exc.seq, exc.path) != want:
            return CaseResult(
                name,
                path,
                expect,
                False,
                events,
                f"diverged at seq {exc.seq} {exc.path}, expected seq {want[0]} {want[1]}: {exc}",
            )
        return CaseResult(name, path, expect, True, events, f"diverged as expected: {exc}")
    if expect == "nondeterminism":
        return CaseResult(
            name, path, expect, False, events, "replayed identically, but must diverge"
        )
    note = "" if report.complete else " (the log ends mid-run)"
    return CaseResult(
        name,
        path,
        expect,
        True,
        events,
        f"identical: {report.events} events, {report.resumes} resume(s), {report.status}{note}",
    )


def case_dirs(root: str | Path = "golden") -> list[Path]:
    """The case directories under ``root`` (each holds a ``case.toml``), sorted."""
    return sorted(p.parent for p in Path(root).glob(f"*/{CASE}"))


def verify_corpus(root: str | Path = "golden") -> list[CaseResult]:
    """Every case under ``root``, sorted by directory name."""
    return [verify_case(p) for p in case_dirs(root)]
