"""What ``foldline run FILE`` loads: a graph, its tools and its mock model.

``FILE`` is a KIR graph in JSON (``graph.json``), or a Python file that exposes:

* ``graph`` — a :class:`kir.Graph`, or anything with a ``.compile()`` method that
  returns one (a ``dsl`` Crew);
* ``tools`` (optional) — a mapping from tool name to callable, or a callable that
  returns one; without it, a ``tools()`` method of ``graph`` is used if it has one;
* ``mock_model()`` (optional) — returns a ready model port for ``--mock``; or
  ``mock_script()`` — returns a script, wrapped in ``MockModel(script, by_turn=True)``
  so that a run resumed in another process gets the same replies. With neither,
  ``--mock`` answers every prompt with itself (the echo mock).

The file's directory and the current directory go on ``sys.path`` first (as uvicorn
and celery do), since code nodes name their callables ``module:function``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from foldline.common import CliError
from kir.binding import parse_binding
from kir.compile import CompiledGraph, compile_graph
from kir.errors import GraphInvalid, KirError
from kir.schema import Graph, MapConfig
from substrate.mock import MockModel
from substrate.ports import ModelPort

__all__ = [
    "Program",
    "load_program",
    "parse_inputs",
    "live_models",
    "add_import_paths",
    "describe_kir_error",
    "choose_model",
    "program_for_run",
    "missing_inputs",
]

Tools = Mapping[str, Callable[..., Any]]


@dataclass(frozen=True)
class Program:
    """A loaded ``FILE``: the compiled graph, its tools, and how to make its mock model."""

    path: Path
    compiled: CompiledGraph
    tools: Tools
    mock_model: Callable[[], ModelPort]

    @property
    def graph(self) -> Graph:
        return self.compiled.graph


def describe_kir_error(exc: KirError) -> str:
    """A KIR error on one line (``GraphInvalid`` lists each error after a semicolon)."""
    if isinstance(exc, GraphInvalid):
        count = len(exc.errors)
        listed = "; ".join(str(e) for e in exc.errors)
        return f"invalid graph ({count} error{'s' if count != 1 else ''}): {listed}"
    return f"invalid graph: {exc}"


def add_import_paths(file: Path | None = None) -> None:
    """Put the current directory, then ``file``'s directory, at the front of ``sys.path``."""
    for entry in (Path.cwd(), file.resolve().parent if file is not None else None):
        if entry is not None and str(entry) not in sys.path:
            sys.path.insert(0, str(entry))


def load_program(file: str | Path) -> Program:
    """Load ``file`` (a ``.py`` or a ``.json`` graph) and compile its graph.

    Raises:
        CliError: the file is missing, cannot be imported, exposes no graph, or the
            graph is invalid (the message names the file and the path in the graph).
    """
    path = Path(file)
    if not path.exists():
        raise CliError(f"no such file: {path}")
    if path.is_dir():
        raise CliError(f"{path} is a directory, not a graph file (.py or .json)")
    if path.suffix == ".json":
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror}") from None
        try:
            compiled = compile_graph(Graph.from_json(text))
        except KirError as exc:
            raise CliError(f"{path}: {describe_kir_error(exc)}") from None
        add_import_paths(path)
        return Program(path.resolve(), compiled, {}, MockModel)
    if path.suffix != ".py":
        raise CliError(f"{path}: expected a Python file (.py) or a KIR graph (.json)")
    return _from_module(path, _import(path))


def _import(path: Path) -> ModuleType:
    add_import_paths(path)
    resolved = path.resolve()
    name = _module_name(resolved)
    try:
        module = importlib.import_module(name) if name else None
        if module is None or Path(module.__file__ or "").resolve() != resolved:
            # Not importable under its dotted name from the cwd (or a different module of
            # that name shadows it): load the file itself under its stem.
            # Never shadow a module already loaded (a file called json.py).
            stem = resolved.stem
            taken = stem in sys.modules or not stem.isidentifier()
            name = f"_foldline_file_{abs(hash(str(resolved)))}" if taken else stem
            spec = importlib.util.spec_from_file_location(name, resolved)
            if spec is None or spec.loader is None:
                raise CliError(f"cannot load {path} as a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
    except CliError:
        raise
    except KirError as exc:
        raise CliError(f"cannot load {path}: {describe_kir_error(exc)}") from None
    except Exception as exc:
        raise CliError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None
    return module


def _module_name(path: Path) -> str | None:
    """``examples.ops_agent`` for ``./examples/ops_agent.py``, if that is a valid name."""
    try:
        rel = path.with_suffix("").relative_to(Path.cwd())
    except ValueError:
        return None
    parts = rel.parts
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts)


def _from_module(path: Path, module: ModuleType) -> Program:
    obj = getattr(module, "graph", None)
    if obj is None:
        raise CliError(
            f"{path} defines no `graph` (a kir.Graph, or an object with .compile(), "
            "such as a dsl Crew)"
        )
    try:
        graph = obj.compile() if not isinstance(obj, Graph) and hasattr(obj, "compile") else obj
        if isinstance(graph, CompiledGraph):
            compiled = graph
        elif isinstance(graph, Graph):
            compiled = compile_graph(graph)
        else:
            raise CliError(
                f"{path}: `graph` is a {type(obj).__name__}, not a kir.Graph "
                "(or an object whose .compile() returns one)"
            )
    except CliError:
        raise
    except KirError as exc:
        raise CliError(f"{path}: {describe_kir_error(exc)}") from None
    except Exception as exc:
        raise CliError(f"{path}: compiling `graph` raised {type(exc).__name__}: {exc}") from None
    tools = _tools(path, module, obj)
    return Program(path.resolve(), compiled, tools, _mock_factory(path, module))


def _tools(path: Path, module: ModuleType, graph_obj: Any) -> Tools:
    source = getattr(module, "tools", None)
    if source is None and not isinstance(graph_obj, Graph):
        source = getattr(graph_obj, "tools", None)
    if source is None:
        return {}
    try:
        tools = source() if callable(source) and not isinstance(source, Mapping) else source
    except Exception as exc:
        raise CliError(f"{path}: `tools()` raised {type(exc).__name__}: {exc}") from None
    if not isinstance(tools, Mapping) or not all(callable(f) for f in tools.values()):
        raise CliError(f"{path}: `tools` must be a mapping of tool name to callable")
    return dict(tools)


def _mock_factory(path: Path, module: ModuleType) -> Callable[[], ModelPort]:
    make_model = getattr(module, "mock_model", None)
    make_script = getattr(module, "mock_script", None)

    def build() -> ModelPort:
        try:
            if callable(make_model):
                model: ModelPort = make_model()
                return model
            if callable(make_script):
                return MockModel(make_script(), by_turn=True)
        except Exception as exc:
            raise CliError(f"{path}: building its mock model raised {exc!r}") from None
        return MockModel()

    return build


def parse_inputs(pairs: Iterable[str]) -> dict[str, Any]:
    """``--input k=v`` values: ``v`` as JSON if it parses, else the string itself.

    Raises:
        CliError: an item has no ``=`` or an empty key.
    """
    inputs: dict[str, Any] = {}
    for raw in pairs:
        key, sep, value = raw.partition("=")
        if not sep or not key.strip():
            raise CliError(f"bad --input {raw!r}: expected KEY=VALUE (for example topic=tides)")
        try:
            inputs[key.strip()] = json.loads(value, parse_constant=_no_constant)
        except ValueError:
            inputs[key.strip()] = value
    return inputs


def _no_constant(name: str) -> Any:
    # NaN and Infinity cannot be recorded; the text stays a string.
    raise ValueError(name)


def live_models(graph: Graph) -> list[str]:
    """Model ids of ``graph`` (and the graphs it embeds) whose provider is not ``mock``."""
    found: set[str] = set()

    def walk(g: Graph) -> None:
        for node in g.nodes:
            config: Any = node.config
            while isinstance(config, MapConfig) and config.node is not None:
                config = config.node.config
            model = getattr(config, "model", None)
            if isinstance(model, str) and not model.startswith("mock:"):
                found.add(model)
        for sub in g.subgraphs:
            walk(sub)

    walk(graph)
    return sorted(found)


def choose_model(
    graph: Graph, make_mock: Callable[[], ModelPort], mock: bool, what: str
) -> ModelPort:
    """The model port for a run of ``graph``: the mock, unless a live model is needed.

    Models of the ``mock`` provider are always answered by the mock; ``--mock``
    answers every model with it.

    Raises:
        CliError: the graph uses a live model and ``mock`` is false.
    """
    live = live_models(graph)
    if live and not mock:
        raise CliError(
            f"{what} uses model {live[0]!r}, and the CLI has no live model providers yet: "
            "run it with --mock"
        )
    return make_mock()


def program_for_run(run_id: str, source: str | None, file: str | None) -> Program | None:
    """The program whose tools and mock model carry on a run (``resume``, ``fork``).

    ``file`` overrides the ``source`` the run recorded when it started; a run started
    from Python (no source) gets no tools and the echo mock.

    Raises:
        CliError: the file cannot be loaded, or the recorded source is gone.
    """
    chosen = file or source
    if chosen is None:
        add_import_paths()
        return None
    if file is None and not Path(chosen).exists():
        raise CliError(
            f"run {run_id!r} was started from {chosen}, which is not there any more: "
            "pass --file FILE to give its tools"
        )
    return load_program(chosen)


def missing_inputs(graph: Graph, inputs: Mapping[str, Any]) -> list[str]:
    """Run-input keys that the graph's nodes bind (``$input.KEY``) and ``inputs`` lacks.

    Only the top-level graph is looked at: subgraphs and map bodies get their inputs
    from their node, not from the run.
    """
    wanted: set[str] = set()
    for node in graph.nodes:
        bindings = list(node.inputs.values())
        config: Any = node.config
        if isinstance(config, MapConfig) and config.node is not None:
            bindings += list(config.node.inputs.values())
        for text in bindings:
            try:
                binding = parse_binding(text)
            except KirError:
                continue  # the compiler has reported it already
            if binding.source == "input" and binding.path:
                wanted.add(binding.path[0])
    return sorted(wanted - set(inputs))
