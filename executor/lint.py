"""Nondeterminism lint: find code that reads the world without going through the ports.

A recorded run replays byte for byte only because everything nondeterministic enters
through a journaled port: a code node's callable gets a ``NodeContext`` and asks it
``ctx.now()``, ``ctx.new_id()``, ``ctx.random()``, ``ctx.call_model(...)`` and
``ctx.call_tool(...)``. The answer is recorded live and served back on replay. A
callable that reads the clock itself, draws from ``random`` or opens a socket gets a
different answer on replay, so its output differs and replay fails with
``NondeterminismError`` — or worse, a side effect happens twice.

This module finds those direct reads statically, in whole files (code-node callables
and tools are plain functions in them), at module level and in every function:

======  ===========  ==========================================================
code    rule         flags
======  ===========  ==========================================================
FL000   parse        a file that does not parse (one finding, no exception)
FL001   clock        ``time.time/time_ns/monotonic/perf_counter/process_time``
                     (and their ``_ns`` forms), ``time.localtime/gmtime/ctime``
                     without an argument, ``datetime.datetime.now/utcnow/today``,
                     ``datetime.date.today``
FL002   randomness   any call into ``random``, ``secrets`` or ``numpy.random``
FL003   ids          ``uuid.uuid1``, ``uuid.uuid4``, ``os.urandom``, ``os.getrandom``
FL004   network      any call into ``socket``, ``http.client``, ``urllib.request``,
                     ``requests``, ``httpx``, ``aiohttp``, ``smtplib``
======  ===========  ==========================================================

Names are resolved through imports, as Python would: ``import time as t; t.time()``,
``from time import time as now; now()``, ``from datetime import datetime;
datetime.now()``, ``import datetime as dt; dt.datetime.now()``, ``from random import
choice``. A name bound by anything other than an import — a parameter called
``time``, a module-level ``def random()``, ``ctx`` — is not a module, so
``ctx.now()`` is fine. A reference that is not called (``default_factory=time.time``)
is flagged too, since it is called later.

A line ending in ``# foldline: allow-nondeterminism`` is exempt: say so where the
nondeterminism is deliberate (the golden case that must fail replay, a seeded
``random.Random(seed)``).

What it cannot see: calls it cannot name statically — ``getattr(time, "time")()``,
``__import__("random")``, ``from random import *``, a clock passed in as an argument,
or nondeterminism inside a library the callable calls. It is a guard against the
common mistake, not a proof; replay is the proof.

Run it from the command line (exit status 1 when it finds something)::

    python -m executor.lint examples golden
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = ["PRAGMA", "RULES", "Finding", "lint_source", "lint_paths", "main"]

#: A line ending in this comment is not checked.
PRAGMA: Final = "# foldline: allow-nondeterminism"
_PRAGMA_RE: Final = re.compile(r"#\s*foldline:\s*allow-nondeterminism\s*$")

#: Rule code -> short name.
RULES: Final = {
    "FL000": "parse",
    "FL001": "clock",
    "FL002": "randomness",
    "FL003": "ids",
    "FL004": "network",
}

_ADVICE: Final = {
    "FL001": "reads the clock; replay would read another time (use ctx.now())",
    "FL002": "draws randomness; replay would draw differently (use ctx.random())",
    "FL003": "makes a fresh id; replay would make another (use ctx.new_id())",
    "FL004": "reaches the network; replay would call it again (make it a tool: ctx.call_tool)",
}

# Functions, by qualified name.
_FUNCTIONS: Final = {
    **{
        f"time.{name}": "FL001"
        for name in (
            "time", "time_ns", "monotonic", "monotonic_ns", "perf_counter",
            "perf_counter_ns", "process_time", "process_time_ns", "thread_time",
            "thread_time_ns", "clock_gettime", "clock_gettime_ns",
        )
    },
    "datetime.datetime.now": "FL001",
    "datetime.datetime.utcnow": "FL001",
    "datetime.datetime.today": "FL001",
    "datetime.date.today": "FL001",
    "uuid.uuid1": "FL003",
    "uuid.uuid4": "FL003",
    "os.urandom": "FL003",
    "os.getrandom": "FL003",
}  # fmt: skip

# Functions that read the clock only when called without a time to convert.
_CLOCK_WITHOUT_ARGS: Final = {"time.localtime", "time.gmtime", "time.ctime", "time.asctime"}

# Modules every call into which is flagged.
_MODULES: Final = {
    "random": "FL002",
    "secrets": "FL002",
    "numpy.random": "FL002",
    "socket": "FL004",
    "http.client": "FL004",
    "urllib.request": "FL004",
    "requests": "FL004",
    "httpx": "FL004",
    "aiohttp": "FL004",
    "smtplib": "FL004",
}

_SKIP_DIRS: Final = frozenset(
    {".venv", "venv", "__pycache__", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
)


@dataclass(frozen=True, order=True)
class Finding:
    """One direct use of a nondeterministic API: where, which rule, and why it matters."""

    path: str
    line: int
    #: 1-based column of the offending expression.
    col: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.rule} {self.message}"


# -- scopes ---------------------------------------------------------------------------


@dataclass(eq=False)
class _Scope:
    parent: _Scope | None
    is_class: bool = False
    #: name -> what each binding of it binds: a qualified module path for an import,
    #: None for anything else (an assignment, a parameter, a def, ...).
    bindings: dict[str, list[str | None]] = field(default_factory=dict)
    globals: set[str] = field(default_factory=set)
    nonlocals: set[str] = field(default_factory=set)

    def bind(self, name: str, qualname: str | None = None) -> None:
        scope = self.module() if name in self.globals else self
        scope.bindings.setdefault(name, []).append(qualname)

    def module(self) -> _Scope:
        scope = self
        while scope.parent is not None:
            scope = scope.parent
        return scope

    def resolve(self, name: str) -> str | None:
        """The module path ``name`` is bound to here, if it is one import and only that."""
        scope: _Scope | None = self
        if name in self.globals:
            scope = self.module()
        while scope is not None:
            if name in scope.bindings and name not in scope.nonlocals:
                found = set(scope.bindings[name])
                return found.pop() if len(found) == 1 else None
            scope = scope.parent
            # Code in a function does not see the names of an enclosing class body.
            while scope is not None and scope.is_class and scope.parent is not None:
                scope = scope.parent
        return None  # a builtin, or unbound


@dataclass(frozen=True)
class _Use:
    node: ast.expr
    scope: _Scope
    parts: tuple[str, ...]
    call: ast.Call | None


def _dotted(node: ast.expr) -> tuple[str, ...] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return tuple(reversed(parts))


class _Collector:
    """One walk: build the scopes and their bindings, and collect every name used.

    Uses are resolved afterwards, once every binding of every scope is known (a name
    assigned anywhere in a function is local to all of it).
    """

    def __init__(self) -> None:
        self.uses: list[_Use] = []

    def visit(self, node: ast.AST, scope: _Scope) -> None:
        match node:
            case ast.FunctionDef() | ast.AsyncFunctionDef():
                scope.bind(node.name)
                for expr in [*node.decorator_list, *node.args.defaults]:
                    self.visit(expr, scope)
                for default in node.args.kw_defaults:
                    if default is not None:
                        self.visit(default, scope)
                inner = _Scope(scope)
                self._bind_args(node.args, inner)
                for stmt in node.body:
                    self.visit(stmt, inner)
            case ast.Lambda():
                for expr in node.args.defaults:
                    self.visit(expr, scope)
                for default in node.args.kw_defaults:
                    if default is not None:
                        self.visit(default, scope)
                inner = _Scope(scope)
                self._bind_args(node.args, inner)
                self.visit(node.body, inner)
            case ast.ClassDef():
                scope.bind(node.name)
                for expr in [*node.decorator_list, *node.bases]:
                    self.visit(expr, scope)
                for kw in node.keywords:
                    self.visit(kw.value, scope)
                inner = _Scope(scope, is_class=True)
                for stmt in node.body:
                    self.visit(stmt, inner)
            case ast.ListComp() | ast.SetComp() | ast.GeneratorExp() | ast.DictComp():
                # The first iterable is evaluated outside; the rest has its own scope.
                self.visit(node.generators[0].iter, scope)
                inner = _Scope(scope)
                for i, gen in enumerate(node.generators):
                    if i:
                        self.visit(gen.iter, inner)
                    self.visit(gen.target, inner)
                    for cond in gen.ifs:
                        self.visit(cond, inner)
                results = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
                for expr in results:
                    self.visit(expr, inner)
            case ast.Import():
                for alias in node.names:
                    if alias.asname:
                        scope.bind(alias.asname, alias.name)
                    else:  # ``import a.b`` binds ``a``
                        top = alias.name.split(".")[0]
                        scope.bind(top, top)
            case ast.ImportFrom():
                for alias in node.names:
                    if alias.name == "*":
                        continue  # cannot be seen statically
                    qualname = f"{node.module}.{alias.name}" if node.module else alias.name
                    # A relative import names a module of this project, never the stdlib.
                    scope.bind(alias.asname or alias.name, None if node.level else qualname)
            case ast.Global():
                scope.globals.update(node.names)
            case ast.Nonlocal():
                scope.nonlocals.update(node.names)
            case ast.Name():
                if isinstance(node.ctx, ast.Load):
                    self.uses.append(_Use(node, scope, (node.id,), None))
                else:
                    scope.bind(node.id)
            case ast.Attribute():
                parts = _dotted(node)
                if parts is not None and isinstance(node.ctx, ast.Load):
                    self.uses.append(_Use(node, scope, parts, None))
                else:
                    self.visit(node.value, scope)
            case ast.Call():
                parts = _dotted(node.func)
                if parts is not None:
                    self.uses.append(_Use(node.func, scope, parts, node))
                else:
                    self.visit(node.func, scope)
                for arg in node.args:
                    self.visit(arg, scope)
                for kw in node.keywords:
                    self.visit(kw.value, scope)
            case ast.AnnAssign():
                # Annotations name types, which are never called here.
                self.visit(node.target, scope)
                if node.value is not None:
                    self.visit(node.value, scope)
            case ast.ExceptHandler():
                if node.name:
                    scope.bind(node.name)
                self._children(node, scope)
            case ast.MatchAs() | ast.MatchStar():
                if node.name:
                    scope.bind(node.name)
                self._children(node, scope)
            case ast.MatchMapping():
                if node.rest:
                    scope.bind(node.rest)
                self._children(node, scope)
            case _:
                self._children(node, scope)

    def _children(self, node: ast.AST, scope: _Scope) -> None:
        for child in ast.iter_child_nodes(node):
            self.visit(child, scope)

    @staticmethod
    def _bind_args(args: ast.arguments, scope: _Scope) -> None:
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            scope.bind(arg.arg)
        for extra in (args.vararg, args.kwarg):
            if extra is not None:
                scope.bind(extra.arg)


# -- rules ----------------------------------------------------------------------------


def _rule(qualname: str, call: ast.Call | None) -> str | None:
    rule = _FUNCTIONS.get(qualname)
    if rule is not None:
        return rule
    if qualname in _CLOCK_WITHOUT_ARGS:
        no_time = call is None or not (call.args or call.keywords)
        return "FL001" if no_time else None
    for module, rule in _MODULES.items():
        if qualname.startswith(module + "."):
            if call is None and not qualname.rsplit(".", 1)[1][:1].islower():
                return None  # a class named, not used: ``r: random.Random`` in a signature
            return rule
    return None


def _check(use: _Use) -> tuple[str, str] | None:
    base = use.scope.resolve(use.parts[0])
    if base is None:
        return None
    qualname = ".".join([base, *use.parts[1:]])
    rule = _rule(qualname, use.call)
    if rule is None:
        return None
    written = ".".join(use.parts)
    shown = written + ("()" if use.call is not None else "")
    if written != qualname:
        shown += f" ({qualname})"
    return rule, f"{shown} {_ADVICE[rule]}"


def lint_source(source: str, path: str = "<string>") -> list[Finding]:
    """Lint one module's source; findings are sorted by position.

    A source that does not parse gives a single ``FL000`` finding.
    """
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None) or 1
        col = getattr(exc, "offset", None) or 1
        msg = getattr(exc, "msg", None) or str(exc)
        return [Finding(path, line, col, "FL000", f"cannot parse: {msg}")]
    collector = _Collector()
    try:
        collector.visit(tree, _Scope(None))
    except RecursionError:
        return [Finding(path, 1, 1, "FL000", "cannot lint: nested too deeply")]
    lines = source.splitlines()
    findings = set()
    for use in collector.uses:
        found = _check(use)
        if found is None:
            continue
        line = use.node.lineno
        if line <= len(lines) and _PRAGMA_RE.search(lines[line - 1]):
            continue
        findings.add(Finding(path, line, use.node.col_offset + 1, *found))
    return sorted(findings)


def _files(paths: Iterable[str | Path]) -> Iterator[Path]:
    for root in map(Path, paths):
        if root.is_file():
            yield root
        elif root.is_dir():
            found: list[Path] = []
            for parent, dirs, names in os.walk(root):
                dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]  # not even walked into
                found += [Path(parent, name) for name in names if name.endswith(".py")]
            yield from sorted(found)
        # A path that does not exist is skipped: CI lints ``examples`` and ``golden``,
        # which a checkout may not have yet.


def lint_paths(paths: Iterable[str | Path]) -> list[Finding]:
    """Lint files, and the ``*.py`` files under directories; findings sorted.

    Directories named ``.venv``, ``__pycache__`` (and other tool caches) are skipped,
    and so are paths that do not exist.
    """
    findings: list[Finding] = []
    for path in _files(paths):
        try:
            source = importlib.util.decode_source(path.read_bytes())
        except (OSError, UnicodeDecodeError, SyntaxError) as exc:
            findings.append(Finding(str(path), 1, 1, "FL000", f"cannot read: {exc}"))
            continue
        findings.extend(lint_source(source, str(path)))
    return sorted(findings)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m executor.lint PATH...``: print the findings; 1 if there are any."""
    args = list(sys.argv[1:] if argv is None else argv)
    findings = lint_paths(args or ["."])
    for finding in findings:
        print(finding)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
