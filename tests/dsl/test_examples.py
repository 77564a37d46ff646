"""The examples run end to end on the scripted model, each in its own process."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import pytest

from kir import Graph, compile_graph

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def load(name: str) -> ModuleType:
    """An example module, loaded by path (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(name: str, tmp_path: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), str(tmp_path / "runs.db")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.splitlines()


@pytest.mark.parametrize("name", ["research_crew", "ops_agent"])
def test_example_exposes_graph_tools_and_script(name: str) -> None:
    module = load(name)
    assert isinstance(module.graph, Graph)
    compile_graph(module.graph)
    assert isinstance(module.tools, Mapping)
    assert sorted(module.tools) == sorted(t.name for t in module.graph.tools)
    script = module.mock_script()
    node_ids = {n.id for n in module.graph.nodes}
    assert set(script) <= node_ids


def test_research_crew_runs(tmp_path: Path) -> None:
    lines = run_example("research_crew", tmp_path)
    assert lines[0].startswith("run: run-")
    assert lines[1:4] == ["status: completed", "model calls: 3", "output:"]
    assert lines[4].startswith("Twice a day the sea climbs the beach")
    assert lines[-1].endswith("these are the spring tides.")


def test_ops_agent_waits_for_approval_then_scales(tmp_path: Path) -> None:
    lines = run_example("ops_agent", tmp_path)
    assert lines[0].startswith("run: run-")
    assert lines[1:] == [
        "status: waiting",
        "gate ensure_replicas#3: Run tool 'scale_deployment' with these args? "
        "scale_deployment {'name': 'web', 'replicas': 3}",
        "web replicas before approval: 1",
        "approved ensure_replicas#3 as ops-lead",
        "status: completed",
        "web replicas after: 3",
        "output: web ran 1 replica; it now runs 3.",
    ]
