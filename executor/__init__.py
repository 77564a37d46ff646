"""The engine: fold -> frontier -> schedule -> node semantics.

A worked example — run a two-node graph, crash-free, on a SQLite file::

    from executor import run
    from kir import Edge, Graph, Node
    from kir.schema import CodeConfig, LlmConfig
    from substrate import MockModel, SQLiteStore

    graph = Graph(
        nodes=[
            Node(id="ask", config=LlmConfig(model="mock:m", prompt="Tell me about {t}"),
                 inputs={"t": "$input.topic"}),
            Node(id="size", config=CodeConfig(function="builtins:len"), inputs={"obj": "ask"}),
        ],
        edges=[Edge("ask", "size")],
        output="size",
    )
    result = run(graph, {"topic": "tides"}, store=SQLiteStore("runs.db"), model=MockModel())
    result.status, result.output, result.cost_usd

Kill the process at any moment and ``resume(result.run_id, store=...)`` carries on:
completed nodes are not run again and answered model calls are not paid for twice.
``replay(store, result.run_id)`` re-drives the recorded run with no model and checks
that every event comes out byte-identical (see docs/DETERMINISM.md).
"""

from executor.api import (
    Budget,
    GateInfo,
    RunResult,
    answer,
    approve,
    aresume,
    arun,
    cancel,
    load_graph,
    load_state,
    raise_budget,
    reject,
    result_of,
    resume,
    run,
    signal,
)
from executor.bundle import Bundle, BundleError, export_run, import_run, read_bundle
from executor.context import Decision, NodeContext, Suspend
from executor.errors import (
    ExecutorError,
    FoldError,
    GateError,
    NodeError,
    NondeterminismError,
    RunFenced,
    RunNotFound,
)
from executor.fold import RunState, fold
from executor.frontier import Frontier, frontier_from_scratch
from executor.golden import CaseResult, verify_case, verify_corpus
from executor.lint import Finding, lint_paths, lint_source
from executor.replay import (
    Divergence,
    NodeChange,
    ReplayReport,
    RunDiff,
    areplay,
    diff,
    fork,
    replay,
)
from executor.schedule import Engine, EngineOptions, EngineStats, NodeTimeout

__all__ = [
    "Budget",
    "GateInfo",
    "RunResult",
    "run",
    "arun",
    "resume",
    "aresume",
    "approve",
    "reject",
    "answer",
    "signal",
    "cancel",
    "raise_budget",
    "load_graph",
    "load_state",
    "result_of",
    "NodeContext",
    "Decision",
    "Suspend",
    "ExecutorError",
    "FoldError",
    "GateError",
    "NodeError",
    "NondeterminismError",
    "RunFenced",
    "RunNotFound",
    "RunState",
    "fold",
    "Frontier",
    "frontier_from_scratch",
    "Engine",
    "EngineOptions",
    "EngineStats",
    "NodeTimeout",
    "replay",
    "areplay",
    "ReplayReport",
    "fork",
    "diff",
    "RunDiff",
    "Divergence",
    "NodeChange",
    "Bundle",
    "BundleError",
    "export_run",
    "import_run",
    "read_bundle",
    "CaseResult",
    "verify_case",
    "verify_corpus",
    "Finding",
    "lint_paths",
    "lint_source",
]
