"""The router condition language: a small, safe subset of Python expressions.

A router's ``condition`` is evaluated over the router's inputs and picks a label. It is
parsed with :mod:`ast` and only these forms are accepted:

- constants (strings, numbers, ``True``, ``False``, ``None``) and list/tuple literals;
- names of the node's inputs;
- ``x.key`` and ``x["key"]`` / ``x[0]`` on mappings and lists (never Python attributes:
  ``x.key`` reads a mapping key, so nothing of the host can be reached);
- comparisons (``==  !=  <  <=  >  >=  in  not in  is  is not``), ``and``, ``or``, ``not``;
- arithmetic ``+ - * / // %`` and unary ``-``/``+``;
- ``a if cond else b``;
- ``len(x)``.

Nothing else: no other calls, no lambdas, comprehensions, ``**``, or names outside the
inputs. Evaluation is pure and deterministic, so the executor may re-evaluate on replay.

>>> e = parse_expr("'long' if len(doc.text) > 100 else 'short'")
>>> sorted(e.names)
['doc']
>>> evaluate(e, {"doc": {"text": "hi"}})
'short'
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from kir.errors import ExpressionError

__all__ = ["Expr", "parse_expr", "evaluate", "MAX_EXPR_LENGTH"]

MAX_EXPR_LENGTH: Final = 2000
# Sequence repetition is the one way a short expression could allocate without bound.
_MAX_REPEAT: Final = 100_000

_BINOPS: Final[dict[type[ast.operator], Callable[[Any, Any], Any]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_CMPOPS: Final[dict[type[ast.cmpop], Callable[[Any, Any], Any]]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_UNARY: Final[dict[type[ast.unaryop], Callable[[Any], Any]]] = {
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


@dataclass(frozen=True, slots=True, eq=False)
class Expr:
    """A checked expression.

    Attributes:
        source: the text as written.
        names: the input names it reads.
    """

    source: str
    names: frozenset[str]
    tree: ast.expr

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)


@lru_cache(maxsize=1024)
def parse_expr(source: str) -> Expr:
    """Parse and check ``source``.

    Raises:
        ExpressionError: it is not valid Python, or uses a form outside the language
            (located at ``$``; the checker relocates it).
    """
    if len(source) > MAX_EXPR_LENGTH:
        raise ExpressionError(
            f"expression is {len(source)} characters long; at most {MAX_EXPR_LENGTH} allowed"
        )
    try:
        tree = ast.parse(source.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ExpressionError(f"invalid expression syntax: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        # ValueError: NUL bytes; the others: pathological nesting.
        raise ExpressionError(f"invalid expression: {type(exc).__name__}") from None
    names: set[str] = set()
    try:
        _check(tree, names)
    except RecursionError:
        raise ExpressionError("expression is nested too deeply") from None
    return Expr(source, frozenset(names), tree)


def _check(node: ast.AST, names: set[str]) -> None:
    match node:
        case ast.Constant(value=const):
            if not isinstance(const, (str, int, float, bool)) and const is not None:
                raise ExpressionError(f"constant {const!r} is not allowed")
        case ast.Name(id=name):
            if name == "len":
                raise ExpressionError("len may only be called: len(x)")
            names.add(name)
        case ast.Attribute(value=value, attr=attr):
            if attr.startswith("_"):
                raise ExpressionError(f"field .{attr} is not allowed (no leading underscore)")
            _check(value, names)
        case ast.Subscript(value=value, slice=index):
            if isinstance(index, ast.Slice):
                raise ExpressionError("slices are not allowed; index with one key or number")
            _check(value, names)
            _check(index, names)
        case ast.Compare(left=left, ops=ops, comparators=rest):
            for op in ops:
                if type(op) not in _CMPOPS:  # pragma: no cover - every cmpop is listed
                    raise ExpressionError(f"operator {type(op).__name__} is not allowed")
            _check(left, names)
            for r in rest:
                _check(r, names)
        case ast.BoolOp(values=values):
            for operand in values:
                _check(operand, names)
        case ast.UnaryOp(op=op, operand=operand):
            if type(op) not in _UNARY:
                raise ExpressionError(f"operator {_op_name(op)} is not allowed")
            _check(operand, names)
        case ast.BinOp(left=left, op=op, right=right):
            if type(op) not in _BINOPS:
                raise ExpressionError(
                    f"operator {_op_name(op)} is not allowed (allowed: + - * / // %)"
                )
            _check(left, names)
            _check(right, names)
        case ast.IfExp(test=test, body=body, orelse=orelse):
            _check(test, names)
            _check(body, names)
            _check(orelse, names)
        case ast.List(elts=elts) | ast.Tuple(elts=elts):
            for e in elts:
                if isinstance(e, ast.Starred):
                    raise ExpressionError("starred items are not allowed")
                _check(e, names)
        case ast.Call(func=ast.Name(id="len"), args=[arg], keywords=[]):
            _check(arg, names)
        case ast.Call():
            raise ExpressionError("only len(x) may be called")
        case _:
            raise ExpressionError(
                f"{type(node).__name__} is not allowed in a condition (allowed: constants, "
                "input names, .field, [index], comparisons, and/or/not, in, + - * / // %, "
                "x if c else y, len)"
            )


_OP_NAMES: Final[dict[type[ast.AST], str]] = {
    ast.Pow: "**",
    ast.Invert: "~",
    ast.MatMult: "@",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
}


def _op_name(op: ast.AST) -> str:
    return _OP_NAMES.get(type(op), type(op).__name__)


def evaluate(expr: str | Expr, inputs: Mapping[str, Any]) -> Any:
    """Evaluate ``expr`` over ``inputs`` (plain JSON-like values).

    Raises:
        ExpressionError: the expression is invalid, reads a missing input or key, or an
            operation fails (``1 / 0``, ``"a" < 1``); never any other exception.
    """
    e = parse_expr(expr) if isinstance(expr, str) else expr
    try:
        return _eval(e.tree, inputs)
    except ExpressionError:
        raise
    except RecursionError:
        raise ExpressionError(f"{e.source!r}: nested too deeply") from None
    except (TypeError, ValueError, ArithmeticError, OverflowError, MemoryError) as exc:
        raise ExpressionError(f"{e.source!r} failed: {type(exc).__name__}: {exc}") from None


def _eval(node: ast.expr, env: Mapping[str, Any]) -> Any:
    match node:
        case ast.Constant(value=const):
            return const
        case ast.Name(id=name):
            if name not in env:
                raise ExpressionError(
                    f"name {name!r} is not an input (inputs: {', '.join(sorted(env)) or 'none'})"
                )
            return env[name]
        case ast.Attribute(value=value, attr=attr):
            return _item(_eval(value, env), attr)
        case ast.Subscript(value=value, slice=index):
            return _item(_eval(value, env), _eval(index, env))
        case ast.Compare(left=left, ops=ops, comparators=rest):
            a = _eval(left, env)
            for op, r in zip(ops, rest, strict=True):
                b = _eval(r, env)
                if not _CMPOPS[type(op)](a, b):
                    return False
                a = b
            return True
        case ast.BoolOp(op=ast.And(), values=values):
            result: Any = True
            for operand in values:
                result = _eval(operand, env)
                if not result:
                    return result
            return result
        case ast.BoolOp(values=values):
            result = False
            for operand in values:
                result = _eval(operand, env)
                if result:
                    return result
            return result
        case ast.UnaryOp(op=op, operand=operand):
            return _UNARY[type(op)](_eval(operand, env))
        case ast.BinOp(left=left, op=op, right=right):
            a, b = _eval(left, env), _eval(right, env)
            if isinstance(op, ast.Mult):
                _check_repeat(a, b)
            return _BINOPS[type(op)](a, b)
        case ast.IfExp(test=test, body=body, orelse=orelse):
            return _eval(body, env) if _eval(test, env) else _eval(orelse, env)
        case ast.List(elts=elts):
            return [_eval(e, env) for e in elts]
        case ast.Tuple(elts=elts):
            return tuple(_eval(e, env) for e in elts)
        case ast.Call(args=[arg]):
            return len(_eval(arg, env))
    raise ExpressionError(f"{type(node).__name__} is not allowed")  # pragma: no cover


def _item(value: Any, key: Any) -> Any:
    # Only data is reachable: mapping keys and sequence indexes, never Python attributes.
    if isinstance(value, Mapping):
        if key not in value:
            raise ExpressionError(
                f"no key {key!r} (keys: {', '.join(sorted(map(str, value))) or 'none'})"
            )
        return value[key]
    if isinstance(value, (list, tuple, str)) and isinstance(key, int) and not isinstance(key, bool):
        if not -len(value) <= key < len(value):
            raise ExpressionError(f"index {key} out of range (length {len(value)})")
        return value[key]
    raise ExpressionError(f"cannot read {key!r} from a {type(value).__name__}")


def _check_repeat(a: Any, b: Any) -> None:
    for seq, n in ((a, b), (b, a)):
        if (
            isinstance(seq, (str, list, tuple))
            and isinstance(n, int)
            and len(seq) * n > _MAX_REPEAT
        ):
            raise ExpressionError(
                f"repetition would build {len(seq) * n} items; at most {_MAX_REPEAT} allowed"
            )
