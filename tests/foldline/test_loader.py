"""What ``foldline run`` loads: files, inputs, models."""

from __future__ import annotations

from pathlib import Path

import pytest

from foldline.common import CliError
from foldline.loader import live_models, load_program, missing_inputs, parse_inputs
from kir import Graph, Node
from kir.schema import CodeConfig, LlmConfig, MapConfig, SubgraphConfig
from substrate.mock import MockModel
from tests.foldline.conftest import OPS, cli, lines


def test_parse_inputs() -> None:
    assert parse_inputs(["a=1", "b=x=y", "c=[1, 2]", "d=null", "e=Infinity"]) == {
        "a": 1,
        "b": "x=y",
        "c": [1, 2],
        "d": None,
        "e": "Infinity",
    }
    with pytest.raises(CliError, match=r"bad --input 'a'"):
        parse_inputs(["a"])


def test_missing_inputs_looks_at_top_level_bindings() -> None:
    body = Node(
        id="each", config=CodeConfig(function="m:f"), inputs={"x": "$item", "k": "$input.k"}
    )
    graph = Graph(
        nodes=[
            Node(id="a", config=CodeConfig(function="m:f"), inputs={"t": "$input.topic.name"}),
            Node(id="all", config=CodeConfig(function="m:f"), inputs={"v": "$input"}),
            Node(id="m", config=MapConfig(over="items", node=body), inputs={"items": "$input.xs"}),
        ]
    )
    assert missing_inputs(graph, {}) == ["k", "topic", "xs"]
    assert missing_inputs(graph, {"topic": {}, "xs": [], "k": 1}) == []


def test_live_models_walks_maps_and_subgraphs() -> None:
    sub = Graph(id="sub", nodes=[Node(id="s", config=LlmConfig(model="anthropic:c", prompt="p"))])
    inline = Node(
        id="i", config=LlmConfig(model="openai:o", prompt="{item}"), inputs={"item": "$item"}
    )
    graph = Graph(
        nodes=[
            Node(id="a", config=LlmConfig(model="mock:m", prompt="p")),
            Node(id="m", config=MapConfig(over="xs", node=inline), inputs={"xs": "$input.xs"}),
            Node(id="g", config=SubgraphConfig(graph="sub")),
        ],
        subgraphs=[sub],
    )
    assert live_models(graph) == ["anthropic:c", "openai:o"]


def test_a_python_file_loads_with_its_tools_and_mock() -> None:
    program = load_program(OPS)
    assert program.path == OPS
    assert program.graph.id == "ops"
    assert set(program.tools) == {"apply_manifest"}
    model = program.mock_model()
    assert isinstance(model, MockModel)
    assert model.by_turn


def test_code_next_to_the_file_is_importable(db: Path, tmp_path: Path) -> None:
    """A file outside the cwd whose code node names a module beside it."""
    (tmp_path / "cli_helpers_mod.py").write_text("def triple(x):\n    return 3 * x\n")
    (tmp_path / "tripler.py").write_text(
        "from kir import Graph, Node\nfrom kir.schema import CodeConfig\n"
        "graph = Graph(nodes=[Node(id='t', config=CodeConfig(function='cli_helpers_mod:triple'),"
        " inputs={'x': '$input.x'})], output='t')\n"
    )
    result = cli("run", str(tmp_path / "tripler.py"), "-i", "x=5")
    assert result.exit_code == 0, result.output
    assert lines(result)[-1] == "output: 15"
