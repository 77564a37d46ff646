"""A finished run leaves nothing for the cycle collector that grows with the run.

The engine, its fold and its frontier are freed by reference counting as soon as a run,
a resume or a replay returns. Were they in a reference cycle (a state keeping its own
bound methods, a frontier and its scope table pointing at each other, a replay engine
and its ports), everything they hold would wait for the cycle collector, and its first
pass would walk every scope of the run. With the collector off, the objects it tracks
are counted before and after a short and a long run: what a run leaves behind must be
the same. Counts, never time.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from executor.api import aresume, arun
from executor.replay import areplay
from kir import Edge, Graph, Node
from kir.compile import compile_graph
from kir.schema import CodeConfig, MapConfig
from substrate.stores.sqlite import SQLiteStore
from tests.executor.helpers import chain, code


@pytest.fixture
def collector_off() -> Iterator[None]:
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _map(n: int) -> Graph:
    body = code("body", "adouble", {"x": "$item"})
    return Graph(
        nodes=[
            Node(
                id="src",
                config=CodeConfig(
                    function="tests.executor.fns:const", params={"value": list(range(n))}
                ),
            ),
            Node(id="m", config=MapConfig(over="src", node=body, max_concurrency=8)),
            code("out", "length", {"items": "m"}),
        ],
        edges=[Edge("src", "m"), Edge("m", "out")],
        output="out",
    )


def _left_after(work: Callable[..., object], *args: Any) -> int:
    """Objects the collector tracks that ``work(*args)`` (run with it off) left alive."""
    gc.collect()
    before = len(gc.get_objects())
    work(*args)
    left = len(gc.get_objects()) - before
    gc.collect()
    return left


def _record(path: Path, graph: Graph, run_id: str) -> None:
    store = SQLiteStore(path)
    try:
        result = asyncio.run(arun(compile_graph(graph), {"x": 1}, store=store, run_id=run_id))
        assert result.status == "completed", result.error
    finally:
        store.close()


def _resume(store: SQLiteStore, run_id: str) -> None:
    assert asyncio.run(aresume(run_id, store=store)).status == "completed"


def _replay(store: SQLiteStore, run_id: str) -> None:
    assert asyncio.run(areplay(store, run_id)).status == "completed"


@pytest.mark.parametrize("shape", ["chain", "map"])
def test_what_a_run_resume_or_replay_leaves_does_not_grow_with_it(
    shape: str, tmp_path: Path, collector_off: None
) -> None:
    build = chain if shape == "chain" else _map
    found: dict[str, list[int]] = {"run": [], "resume": [], "replay": []}
    # The first pass, not counted, fills what is made once and cached (parsed bindings,
    # compiled graphs by hash).
    for n in (20, 400, 20, 400):
        path = tmp_path / f"{shape}-{n}-{len(found['run'])}.db"
        run_id = f"{shape}-{n}"
        found["run"].append(_left_after(_record, path, build(n), run_id))
        store = SQLiteStore(path)
        try:
            found["resume"].append(_left_after(_resume, store, run_id))
            found["replay"].append(_left_after(_replay, store, run_id))
        finally:
            store.close()
    for what, (_, _, short, long) in found.items():
        assert long == short, f"{what}: {short} objects left after {shape} of 20, {long} of 400"
