"""The README's two-minute tour, run verbatim, one subprocess per line, on a temp store."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.foldline.conftest import ROOT

README = (ROOT / "README.md").read_text()


def block(marker: str, lang: str) -> list[str]:
    after = README.split(marker, 1)[1]
    match = re.match(rf"\s*```{lang}\n(.*?)\n```", after, re.S)
    assert match, f"no {lang} block right after {marker}"
    return match.group(1).splitlines()


def test_the_tour_runs_as_written(tmp_path: Path) -> None:
    steps = block("<!-- tour -->", "sh")
    assert [s.split()[:2] for s in steps] == [
        ["foldline", "run"],
        ["foldline", "show"],
        ["foldline", "approve"],
        ["foldline", "resume"],
        ["foldline", "replay"],
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["FOLDLINE_STORE"] = str(tmp_path / "runs.db")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    outputs: dict[str, list[str]] = {}
    for step in steps:
        done = subprocess.run(
            ["bash", "-c", step], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{step}\n{done.stdout}\n{done.stderr}"
        assert done.stderr == "", f"{step}\n{done.stderr}"
        outputs[step.split()[1]] = [line.rstrip() for line in done.stdout.splitlines()]

    # run: exactly what the README shows under the tour.
    assert outputs["run"] == block("<!-- tour-run-output -->", "text")

    show = outputs["show"]
    assert show[0] == "run tour-1: waiting on ensure_replicas#3"
    assert show[1].startswith("graph ops_agent (")
    assert show[1].endswith("from examples/ops_agent.py, mock model")
    assert show[4].split() == [
        "seq",
        "time",
        "node",
        "event",
        "duration",
        "tokens",
        "cost",
        "detail",
    ]
    kinds = [row.split()[3] for row in show[5:15] if len(row.split()) > 3]
    assert "gate.opened" in kinds
    assert "model.called" in kinds
    assert show[-2] == "  approve: foldline approve tour-1 'ensure_replicas#3' --by you"

    assert outputs["approve"] == [
        "approved gate ensure_replicas#3 of run tour-1 as you: "
        'scale_deployment {"name": "web", "replicas": 3}',
        "resume:  foldline resume tour-1",
    ]

    resume = outputs["resume"]
    assert resume[0].startswith("run tour-1: completed in ")
    assert resume[1] == "cost $0.000409, 378 tokens, 3 model calls, 18 events"
    assert resume[2] == "output: web ran 1 replica; it now runs 3."

    assert outputs["replay"] == [
        "identical: run tour-1 replayed 18 events byte for byte, across 1 resume; status completed"
    ]
