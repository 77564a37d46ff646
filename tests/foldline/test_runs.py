"""``run``, ``ls``, ``show`` and ``resume``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from kir import Edge, Graph, Node
from kir.schema import CodeConfig, LlmConfig
from substrate.events import RunStarted
from substrate.stores import SQLiteStore
from tests.foldline.conftest import FNS, OPS, cli, graph_file, lines, one_line_error, start_ops
from tests.foldline.fixtures import ops_agent


def chain_graph() -> Graph:
    return Graph(
        id="chain",
        nodes=[
            Node(id="a", config=CodeConfig(function=f"{FNS}:inc"), inputs={"x": "$input.x"}),
            Node(id="b", config=CodeConfig(function=f"{FNS}:inc"), inputs={"x": "a"}),
        ],
        edges=[Edge("a", "b")],
        output="b",
    )


def first_event(db: Path, run_id: str) -> RunStarted:
    with SQLiteStore(db) as store:
        data = store.read(run_id)[0].data
    assert isinstance(data, RunStarted)
    return data


# -- run --------------------------------------------------------------------------------


def test_run_prints_status_cost_tokens_and_the_command_to_approve(db: Path) -> None:
    result = start_ops("r1")
    assert lines(result) == [
        "run r1: waiting on ops#1",
        "cost $0.000032, 23 tokens, 1 model call, 6 events",
        "gate ops#1 (approval, node ops): Run tool 'apply_manifest' with these args?",
        '  tool  apply_manifest {"replicas": 3}',
        "  approve: foldline approve r1 'ops#1' --by you",
        "  reject:  foldline reject r1 'ops#1' --by you",
    ]


def test_run_records_its_source_and_inputs(db: Path) -> None:
    start_ops("r1")
    started = first_event(db, "r1")
    assert started.options["labels"] == {"source": str(OPS), "mock": "1"}


def test_run_a_graph_json_with_inputs(db: Path, tmp_path: Path) -> None:
    path = graph_file(tmp_path, chain_graph())
    result = cli("run", str(path), "--input", "x=40", "--run-id", "c1")
    assert result.exit_code == 0, result.output
    out = lines(result)
    assert out[0].startswith("run c1: completed in ")
    assert out[1] == "cost $0.000000, 0 tokens, 0 model calls, 6 events"
    assert out[2] == "output: 42"


def test_input_values_are_json_when_they_parse_else_text(db: Path, tmp_path: Path) -> None:
    graph = Graph(
        nodes=[Node(id="n", config=CodeConfig(function="builtins:dict"), inputs={"v": "$input"})],
        output="n",
    )
    path = graph_file(tmp_path, graph)
    args = ["-i", "n=3", "-i", "s=tides", "-i", 'o={"a": [1]}', "-i", "e=", "-i", "f=NaN"]
    result = cli("run", str(path), "--run-id", "i1", *args)
    assert result.exit_code == 0, result.output
    with SQLiteStore(db) as store:
        inputs = first_event(db, "i1").inputs
        from substrate.blobs import unpack

        value = unpack(inputs, store.get_blob)
    assert value == {"n": 3, "s": "tides", "o": {"a": [1]}, "e": "", "f": "NaN"}


def test_a_failed_run_exits_1_with_its_error(db: Path, tmp_path: Path) -> None:
    graph = Graph(nodes=[Node(id="x", config=CodeConfig(function=f"{FNS}:boom"))])
    result = cli("run", str(graph_file(tmp_path, graph)), "--run-id", "f1")
    assert result.exit_code == 1
    assert lines(result)[0].startswith("run f1: failed in ")
    assert lines(result)[-1] == "error: ValueError: boom (node x)"


def test_a_live_model_without_mock_is_refused_before_anything_is_written(
    db: Path, tmp_path: Path
) -> None:
    graph = Graph(nodes=[Node(id="ask", config=LlmConfig(model="openai:gpt-4o", prompt="hi"))])
    path = graph_file(tmp_path, graph)
    result = cli("run", str(path))
    assert result.exit_code == 2
    assert one_line_error(result) == (
        f"error: {path} uses model 'openai:gpt-4o', and the CLI has no live model "
        "providers yet: run it with --mock"
    )
    assert not db.exists()
    mocked = cli("run", str(path), "--mock", "--run-id", "m1")
    assert mocked.exit_code == 0, mocked.output
    assert lines(mocked)[-1] == 'output: {"ask": "hi"}'  # the echo mock


def test_mock_models_run_without_the_flag(db: Path) -> None:
    result = cli("run", str(OPS), "--run-id", "r1", "-i", "replicas=3")
    assert result.exit_code == 0, result.output
    assert first_event(db, "r1").options["labels"]["mock"] == "0"


def test_run_id_must_be_new_and_a_word(db: Path) -> None:
    start_ops("r1")
    again = cli("run", str(OPS), "--mock", "--run-id", "r1", "-i", "replicas=3")
    assert again.exit_code == 2
    assert one_line_error(again) == "error: run 'r1' already exists in the store"
    spaced = cli("run", str(OPS), "--mock", "--run-id", "a b", "-i", "replicas=3")
    assert spaced.exit_code == 2
    assert "bad --run-id 'a b'" in one_line_error(spaced)


def test_store_option_wins_over_the_environment(db: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    result = cli(
        "run",
        str(OPS),
        "--mock",
        "--run-id",
        "r1",
        "--store",
        f"sqlite://{other}",
        "-i",
        "replicas=3",
    )
    assert result.exit_code == 0, result.output
    assert other.exists()
    assert not db.exists()


def test_the_default_store_is_under_dot_foldline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FOLDLINE_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    result = cli("run", str(OPS), "--mock", "--run-id", "r1", "-i", "replicas=3")
    assert result.exit_code == 0, result.output
    assert (tmp_path / ".foldline" / "runs.db").is_file()
    assert "r1" in cli("ls").output


def test_a_missing_input_is_a_usage_error(db: Path) -> None:
    result = cli("run", str(OPS), "--mock")
    assert result.exit_code == 2
    assert one_line_error(result) == (
        f"error: {OPS} needs the input replicas: pass --input replicas=VALUE"
    )
    assert not db.exists()


# -- files that `run` loads ---------------------------------------------------------------


CREW_FILE = '''
from kir import Graph, Node, ToolSpec
from kir.schema import AgentConfig
from substrate import MockModel, MockReply

class Crew:
    """Stands in for a dsl Crew: compile() and tools()."""

    def compile(self):
        return Graph(
            nodes=[Node(id="bot", config=AgentConfig(model="mock:m", instructions="go",
                                                      tools=["shout"]))],
            tools=[ToolSpec(name="shout")],
            output="bot",
        )

    def tools(self):
        return {"shout": lambda text: text.upper()}

graph = Crew()

def mock_model():
    return MockModel([MockReply(tool_calls=[("shout", {"text": "hey"})]), "done"], by_turn=True)
'''


def test_a_crew_with_compile_and_tools_and_a_mock_model(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "crew_file.py"
    path.write_text(CREW_FILE)
    result = cli("run", str(path), "--mock", "--run-id", "k1")
    assert result.exit_code == 0, result.output
    assert lines(result)[-1] == "output: done"
    shown = cli("show", "k1")
    assert "HEY" in shown.output  # the tool from Crew.tools() ran


def test_a_file_without_a_mock_gets_the_echo_mock(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "echo_file.py"
    path.write_text(
        "from kir import Graph, Node\nfrom kir.schema import LlmConfig\n"
        "graph = Graph(nodes=[Node(id='ask', config=LlmConfig(model='mock:m', "
        "prompt='say {w}'), inputs={'w': '$input.w'})], output='ask')\n"
    )
    result = cli("run", str(path), "--mock", "-i", "w=cheese")
    assert result.exit_code == 0, result.output
    assert lines(result)[-1] == "output: say cheese"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\n", "defines no `graph`"),
        ("graph = 42\n", "`graph` is a int, not a kir.Graph"),
        ("raise RuntimeError('nope')\n", "cannot load {path}: RuntimeError: nope"),
        ("def broken(:\n", "cannot load {path}: SyntaxError"),
        (
            "from tests.foldline.fixtures.ops_agent import graph\ntools = 3\n",
            "`tools` must be a mapping of tool name to callable",
        ),
    ],
)
def test_bad_python_files_are_one_line_errors(
    db: Path, tmp_path: Path, source: str, message: str
) -> None:
    path = tmp_path / "bad_file.py"
    path.write_text(source)
    sys.modules.pop("bad_file", None)
    result = cli("run", str(path))
    assert result.exit_code == 2
    assert message.format(path=path) in one_line_error(result)
    assert not db.exists()


# -- ls -----------------------------------------------------------------------------------


def test_ls_lists_runs_newest_first(db: Path, tmp_path: Path) -> None:
    start_ops("r1")
    cli("run", str(graph_file(tmp_path, chain_graph())), "-i", "x=1", "--run-id", "c1")
    result = cli("ls")
    assert result.exit_code == 0
    out = lines(result)
    assert out[0].split() == ["id", "graph", "status", "started", "duration", "cost", "tokens"]
    assert out[1].split()[:3] == ["c1", "chain", "completed"]
    assert out[1].split()[-2:] == ["$0.000000", "0"]
    assert out[2].split()[:3] == ["r1", "ops", "waiting"]
    assert out[2].split()[-2:] == ["$0.000032", "23"]


def test_ls_filters_limits_and_prints_json(db: Path, tmp_path: Path) -> None:
    start_ops("r1")
    start_ops("r2")
    cli("run", str(graph_file(tmp_path, chain_graph())), "-i", "x=1", "--run-id", "c1")
    waiting = [line.split()[0] for line in lines(cli("ls", "--status", "waiting"))[1:]]
    assert waiting == ["r2", "r1"]
    assert len(lines(cli("ls", "-n", "1"))) == 2
    rows = [json.loads(line) for line in lines(cli("ls", "--json"))]
    assert [r["run_id"] for r in rows] == ["c1", "r2", "r1"]
    assert rows[1]["status"] == "waiting"
    assert rows[1]["waiting_on"] == ["ops#1"]
    assert rows[1]["tokens"] == 23
    assert cli("ls", "--status", "failed").output.strip() == "no runs with status failed"
    bad = cli("ls", "--status", "sleeping")
    assert bad.exit_code == 2
    assert "bad --status 'sleeping'" in one_line_error(bad)


def test_ls_without_a_store_creates_none(db: Path) -> None:
    result = cli("ls")
    assert result.exit_code == 0
    assert result.output.strip() == f"no runs yet (no store at {db})"
    assert cli("ls", "--json").output == ""
    assert not db.exists()


# -- show ---------------------------------------------------------------------------------


def test_show_prints_the_timeline_and_the_open_gate(db: Path) -> None:
    start_ops("r1")
    result = cli("show", "r1")
    assert result.exit_code == 0
    out = lines(result)
    assert out[0] == "run r1: waiting on ops#1"
    assert out[1].startswith("graph ops (")
    assert out[1].endswith("from tests/foldline/fixtures/ops_agent.py, mock model")
    assert out[4].split() == [
        "seq",
        "time",
        "node",
        "event",
        "duration",
        "tokens",
        "cost",
        "detail",
    ]
    events = [line.split() for line in out[5:11]]
    assert [e[0] for e in events] == ["0", "1", "2", "3", "4", "5"]
    kinds = [e[3] if e[2] == "ops" else e[2] for e in events]
    assert kinds == [
        "run.started",
        "node.started",
        "model.requested",
        "model.called",
        "gate.opened",
        "run.waiting",
    ]
    called = events[3]
    assert called[5:7] == ["23", "$0.000032"]
    assert 'ops#1: apply_manifest {"replicas": 3}' in out[9]
    assert out[-3:] == [
        '  tool  apply_manifest {"replicas": 3}',
        "  approve: foldline approve r1 'ops#1' --by you",
        "  reject:  foldline reject r1 'ops#1' --by you",
    ]


def test_show_json_has_the_run_and_decoded_events(db: Path) -> None:
    start_ops("r1")
    result = cli("show", "r1", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert doc["run_id"] == "r1"
    assert doc["status"] == "waiting"
    assert doc["inputs"] == {"replicas": 3}
    assert doc["cost_usd"] == pytest.approx(0.000032)
    (gate,) = doc["gates"]
    assert gate | {"question": ""} == {
        "id": "ops#1",
        "node": "ops",
        "reason": "approval",
        "question": "",
        "tool": "apply_manifest",
        "args": {"replicas": 3},
        "open": True,
        "decision": None,
        "by": "",
        "note": "",
        "answer": None,
    }
    events = doc["events"]
    assert [e["seq"] for e in events] == list(range(6))
    assert events[0]["data"]["inputs"] == {"replicas": 3}  # decoded, not {"type": "inline"}
    called = events[3]
    assert called["kind"] == "model.called"
    assert called["data"]["response"]["tool_calls"][0]["name"] == "apply_manifest"
    assert called["data"]["usage"] == {"input_tokens": 14, "output_tokens": 9}


def test_show_a_completed_run_prints_its_output(db: Path, tmp_path: Path) -> None:
    cli("run", str(graph_file(tmp_path, chain_graph())), "-i", "x=1", "--run-id", "c1")
    result = cli("show", "c1")
    assert result.exit_code == 0
    assert lines(result)[-1] == "output: 3"
    assert "node.completed" in result.output


# -- resume -------------------------------------------------------------------------------


def test_resume_after_approval_runs_the_tool_once(db: Path) -> None:
    start_ops("r1")
    ops_agent.APPLIED.clear()
    assert cli("approve", "r1", "ops#1", "--by", "alice").exit_code == 0
    assert ops_agent.APPLIED == []  # approving does not drive the run
    result = cli("resume", "r1")
    assert result.exit_code == 0, result.output
    out = lines(result)
    assert out[0].startswith("run r1: completed in ")
    assert out[1] == "cost $0.000064, 50 tokens, 2 model calls, 14 events"
    assert out[2] == "output: web is at 3 replicas"
    assert ops_agent.APPLIED == [3]
    again = cli("resume", "r1")
    assert again.exit_code == 0
    assert lines(again)[0] == "run r1 has already completed; there is nothing to resume"
    assert ops_agent.APPLIED == [3]


def test_resume_a_run_still_waiting_says_so(db: Path) -> None:
    start_ops("r1")
    result = cli("resume", "r1")
    assert result.exit_code == 0
    assert lines(result)[0] == "run r1: waiting on ops#1"
    assert "foldline approve r1 'ops#1' --by you" in result.output


def test_resume_needs_the_source_file_or_file(db: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ops_copy.py"
    copy.write_text(OPS.read_text())
    result = cli("run", str(copy), "--mock", "--run-id", "r1", "-i", "replicas=3")
    assert result.exit_code == 0, result.output
    cli("approve", "r1", "ops#1", "--by", "alice")
    copy.unlink()
    gone = cli("resume", "r1")
    assert gone.exit_code == 2
    assert one_line_error(gone) == (
        f"error: run 'r1' was started from {copy}, which is not there any more: "
        "pass --file FILE to give its tools"
    )
    result = cli("resume", "r1", "--file", str(OPS))
    assert result.exit_code == 0, result.output
    assert lines(result)[-1] == "output: web is at 3 replicas"
