"""The house rules that live in files: two README commands, CI runs the second."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _blocks_after(marker: str, text: str) -> str:
    after = text.split(marker, 1)[1]
    match = re.search(r"```sh\n(.*?)\n```", after, re.S)
    assert match, f"no sh block after {marker}"
    return match.group(1)


def test_readme_has_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = _blocks_after("<!-- setup-command -->", readme)
    test = _blocks_after("<!-- test-command -->", readme)
    assert len(setup.splitlines()) == 1
    assert len(test.splitlines()) == 1
    assert "foldline demo --mock" in setup
    for gate in ("lint-imports", "ruff check", "mypy", "pytest"):
        assert gate in test


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    expected = _blocks_after("<!-- test-command -->", readme)
    script = (ROOT / ".ci" / "run").read_text()
    # Run the extraction .ci/run uses and compare.
    awk = re.search(r"test_command=\$\((awk .*?README\.md)\)", script)
    assert awk, ".ci/run no longer extracts the test command from README.md"
    out = subprocess.run(["bash", "-c", awk.group(1)], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == expected


def test_readme_python_example_runs(tmp_path: Path) -> None:
    import contextlib
    import io
    import os

    readme = (ROOT / "README.md").read_text()
    match = re.search(r"## Running a graph from Python\n\n```python\n(.*?)```", readme, re.S)
    assert match, "the README lost its Python example"
    cwd = os.getcwd()
    os.chdir(tmp_path)
    env: dict[str, Any] = {}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(match.group(1), "README.md", "exec"), env)
    finally:
        os.chdir(cwd)
    assert env["first"].status == "waiting"
    assert env["first"].gates[0].args == {"replicas": 3}
    assert (env["done"].status, env["done"].output) == ("completed", "done")


def test_readme_links_to_files_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#:]+)\)", readme)
    assert "docs/CLI.md" in links
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"
