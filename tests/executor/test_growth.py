"""Work per step does not grow with the length of the run.

A chain of ``n`` pure ``code`` nodes is run through the real engine (``arun``) on a
store wrapped in a counting proxy. For each run we count fold applications
(``RunState.applied``), frontier updates (``Frontier.updates``), store round trips
(every call into the store) and events read back from the store. The counts of a
run are an affine function of ``n``: a fixed overhead plus the same amount of work
for every node. So the marginal count per node measured between a tiny and a short
chain must equal the one measured between the short chain and a long one, exactly:
an engine that re-folded the log, rescanned the graph or re-read the store on every
step would count more per node on the long chain. Counts, never time.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

import executor.api as api
from executor.api import arun
from executor.schedule import Engine, EngineOptions
from kir.compile import CompiledGraph, compile_graph
from substrate.events import Event
from substrate.stores.base import EventStore
from substrate.stores.memory import MemoryStore
from substrate.stores.sqlite import SQLiteStore
from tests.executor.helpers import chain

#: No task of these runs takes a minute, so the engine never polls the store's head
#: while it waits, and polls cannot perturb the counts.
OPTIONS = EngineOptions(poll_interval_s=60.0)


class CountingStore:
    """Forwards to a store, counting every call (one call is one round trip)."""

    def __init__(self, inner: EventStore) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()
        #: Events handed back by ``read``: a re-read of the log shows up here.
        self.events_read = 0

    @property
    def durability(self) -> Any:
        return self._inner.durability

    def read(self, run_id: str, from_seq: int = 0) -> list[Event]:
        self.calls["read"] += 1
        events = self._inner.read(run_id, from_seq)
        self.events_read += len(events)
        return events

    def read_chunks(self, run_id: str, from_seq: int = 0) -> Iterator[list[Event]]:
        self.calls["read_chunks"] += 1
        for chunk in self._inner.read_chunks(run_id, from_seq):
            self.events_read += len(chunk)
            yield chunk

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


@dataclass(frozen=True)
class Work:
    """What one run of a chain cost, in counts."""

    applied: int
    updates: int
    round_trips: int
    appends: int
    events_read: int
    events: int

    def minus(self, other: Work) -> dict[str, int]:
        return {k: getattr(self, k) - getattr(other, k) for k in self.__dataclass_fields__}


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> list[Engine]:
    """Every engine ``arun`` builds, so the test can read its live state and stats."""
    made: list[Engine] = []

    class Recording(Engine):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(api, "Engine", Recording)
    return made


def _work(graph: CompiledGraph, store: EventStore, engines: list[Engine], run_id: str) -> Work:
    counting = CountingStore(store)
    result = asyncio.run(
        arun(graph, {"x": 0}, store=counting, run_id=run_id, options=OPTIONS)  # type: ignore[arg-type]
    )
    assert result.status == "completed", result.error
    assert result.output == len(graph.order)
    engine = engines[-1]
    assert engine.stats.rebases == 0  # a rebase replaces the state and would hide work
    state = engine.state
    return Work(
        applied=state.applied,
        updates=state.frontier.updates,
        round_trips=sum(counting.calls.values()),
        appends=counting.calls["append"],
        events_read=counting.events_read,
        events=state.next_seq,
    )


def _per_node(big: Work, small: Work, nodes: int) -> dict[str, Fraction]:
    return {k: Fraction(v, nodes) for k, v in big.minus(small).items()}


def _check_growth(
    sizes: tuple[int, int, int], new_store: Callable[[int], EventStore], engines: list[Engine]
) -> dict[str, Fraction]:
    tiny, short, long = sizes
    work = {}
    for n in sizes:
        work[n] = _work(compile_graph(chain(n)), new_store(n), engines, f"chain-{n}")
    first = _per_node(work[short], work[tiny], short - tiny)
    second = _per_node(work[long], work[short], long - short)
    assert first == second, {"per node, short": first, "per node, long": second}
    # The same counts at every size once the fixed overhead is taken off.
    overhead = {k: v - first[k] * tiny for k, v in work[tiny].minus(Work(0, 0, 0, 0, 0, 0)).items()}
    for n, w in work.items():
        assert {k: v - first[k] * n for k, v in w.minus(Work(0, 0, 0, 0, 0, 0)).items()} == overhead
    return first


def _assert_chain_costs(per_node: dict[str, Fraction]) -> None:
    """What a step of a pure chain costs: its events folded once, one commit, no reads."""
    assert per_node["events"] == 2  # node.started, node.completed
    assert per_node["applied"] == per_node["events"]
    assert per_node["updates"] == 1  # one successor touched
    assert per_node["appends"] == 1  # one commit per node (ARCHITECTURE.md, Commits)
    assert per_node["round_trips"] == 1  # ... and nothing else goes to the store
    assert per_node["events_read"] == 0


def test_memory_chain_work_per_node_does_not_grow(engines: list[Engine]) -> None:
    per_node = _check_growth((10, 100, 10_000), lambda n: MemoryStore(), engines)
    _assert_chain_costs(per_node)


def test_sqlite_chain_work_per_node_does_not_grow(engines: list[Engine], tmp_path: Path) -> None:
    stores: list[SQLiteStore] = []

    def new_store(n: int) -> EventStore:
        stores.append(SQLiteStore(tmp_path / f"chain-{n}.db"))
        return stores[-1]

    try:
        per_node = _check_growth((10, 100, 1_000), new_store, engines)
    finally:
        for s in stores:
            s.close()
    _assert_chain_costs(per_node)
