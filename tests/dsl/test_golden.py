"""Compiled KIR of the DSL is golden: a change in the lowering shows up as a diff here.

Each graph of :mod:`tests.dsl.crews` is kept as pretty, canonical JSON (sorted keys,
defaults left out) in ``tests/dsl/golden/<name>.json``. A mismatch fails until the
goldens are regenerated on purpose and the diff reviewed::

    FOLDLINE_REGEN_GOLDEN=1 .venv/bin/pytest tests/dsl/test_golden.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from kir import Graph, compile_graph
from substrate.codec import encode
from tests.dsl.crews import GRAPHS, hashes

GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).resolve().parents[2]


def golden_text(graph: Graph) -> str:
    """The graph in its file form, defaults left out, as pretty canonical JSON."""
    data: dict[str, Any] = graph.model_dump(mode="json", exclude_defaults=True)
    for node, dumped in zip(graph.nodes, data["nodes"], strict=True):
        dumped["kind"] = node.kind  # the kind is a default of the config class
    return msgspec.json.format(encode(data), indent=2).decode() + "\n"


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_compiled_kir_matches_golden(name: str) -> None:
    graph = GRAPHS[name]()
    current = golden_text(graph)
    path = GOLDEN / f"{name}.json"
    if os.environ.get("FOLDLINE_REGEN_GOLDEN") == "1":
        path.write_text(current, encoding="utf-8")
    assert path.exists(), f"{path} is missing; run with FOLDLINE_REGEN_GOLDEN=1"
    assert current == path.read_text(encoding="utf-8"), (
        f"the compiled KIR of {name!r} changed. If the lowering changed on purpose, "
        "regenerate the goldens:\n"
        "    FOLDLINE_REGEN_GOLDEN=1 .venv/bin/pytest tests/dsl/test_golden.py\n"
        f"and review the diff of {path.relative_to(ROOT)}."
    )


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_golden_loads_back_as_the_same_graph(name: str) -> None:
    graph = GRAPHS[name]()
    loaded = Graph.from_json((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    assert loaded == graph
    assert compile_graph(loaded).graph_hash == compile_graph(graph).graph_hash


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_compiling_twice_gives_the_same_hash(name: str) -> None:
    first, second = GRAPHS[name](), GRAPHS[name]()
    assert first is not second
    assert compile_graph(first).graph_hash == compile_graph(second).graph_hash
    assert golden_text(first) == golden_text(second)


def test_a_fresh_process_gives_the_same_hashes() -> None:
    # Another hash seed, so nothing may depend on the iteration order of sets.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from tests.dsl.crews import hashes; print(json.dumps(hashes()))",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout) == hashes()
