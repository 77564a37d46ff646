"""The router condition language: what it accepts, what it refuses, how it evaluates."""

from __future__ import annotations

from typing import Any

import pytest

from kir import ExpressionError, evaluate, parse_expr

ENV: dict[str, Any] = {
    "score": 0.7,
    "doc": {"title": "KIR", "tags": ["a", "b"], "n": 3},
    "items": [1, 2, 3],
    "name": "x",
    "none": None,
}


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("score > 0.5", True),
        ("'high' if score > 0.5 else 'low'", "high"),
        ("doc.title", "KIR"),
        ("doc['tags'][1]", "b"),
        ("items[-1]", 3),
        ("len(items) == 3 and not none", True),
        ("'a' in doc.tags", True),
        ("'z' not in doc.tags or name == 'x'", True),
        ("doc.n * 2 + 1 - 1 // 1 % 2", 6),
        ("-doc.n", -3),
        ("none is None", True),
        ("1 < doc.n <= 3", True),
        ("[1, 2] == [1, 2]", True),
        ("score / 2", 0.35),
        ("name + '!'", "x!"),
    ],
)
def test_evaluates(source: str, value: Any) -> None:
    assert evaluate(source, ENV) == value


def test_names_are_collected() -> None:
    assert parse_expr("doc.title == name and len(items)").names == {"doc", "name", "items"}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("__import__('os')", "at $: only len(x) may be called"),
        ("doc.__class__", "at $: field .__class__ is not allowed (no leading underscore)"),
        ("2 ** 8", "at $: operator ** is not allowed (allowed: + - * / // %)"),
        (
            "[x for x in items]",
            "at $: ListComp is not allowed in a condition (allowed: "
            "constants, input names, .field, [index], comparisons, and/or/not, in, "
            "+ - * / // %, x if c else y, len)",
        ),
        (
            "lambda: 1",
            "at $: Lambda is not allowed in a condition (allowed: constants, input "
            "names, .field, [index], comparisons, and/or/not, in, + - * / // %, x if c else y, "
            "len)",
        ),
        ("items[0:1]", "at $: slices are not allowed; index with one key or number"),
        ("len", "at $: len may only be called: len(x)"),
        ("score >", "at $: invalid expression syntax: invalid syntax"),
        ("a\x00", "at $: invalid expression syntax: source code string cannot contain null bytes"),
        ("x" * 3000, "at $: expression is 3000 characters long; at most 2000 allowed"),
    ],
)
def test_refuses(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expr(source)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing", "at $: name 'missing' is not an input (inputs: doc, items, name, none, score)"),
        ("doc.nope", "at $: no key 'nope' (keys: n, tags, title)"),
        ("items[7]", "at $: index 7 out of range (length 3)"),
        ("name.upper", "at $: cannot read 'upper' from a str"),
        ("score / 0", "at $: 'score / 0' failed: ZeroDivisionError: float division by zero"),
        (
            "name < 1",
            "at $: 'name < 1' failed: TypeError: '<' not supported between "
            "instances of 'str' and 'int'",
        ),
        ("name * 1000000", "at $: repetition would build 1000000 items; at most 100000 allowed"),
    ],
)
def test_evaluation_errors(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate(source, ENV)
    assert str(info.value) == message


def test_deep_nesting_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError):
        parse_expr("(" * 1000 + "1" + ")" * 1000)
