"""Templates: parsing, escapes, errors, and rendering."""

from __future__ import annotations

import pytest

from kir import Placeholder, TemplateError, parse_template, render, render_value
from kir.template import template_names


def test_parse() -> None:
    t = parse_template("Hi {user.name}, {{literal}} {n}")
    assert t.parts == ("Hi ", Placeholder("user", ("name",)), ", {literal} ", Placeholder("n"))
    assert t.names == {"user", "n"}
    assert t.placeholders[0].text == "{user.name}"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{a", "at $: unmatched '{' at offset 0; write '{{' for a literal brace"),
        ("a}", "at $: unmatched '}' at offset 1; write '}}' for a literal brace"),
        (
            "{ a }",
            "at $: bad placeholder '{ a }' at offset 0: expected {name} or {name.field} "
            "(letters, digits, _; no spaces); write {{ for a literal brace",
        ),
        (
            "{}",
            "at $: bad placeholder '{}' at offset 0: expected {name} or {name.field} "
            "(letters, digits, _; no spaces); write {{ for a literal brace",
        ),
        (
            "{a.}",
            "at $: bad placeholder '{a.}' at offset 0: expected {name} or {name.field} "
            "(letters, digits, _; no spaces); write {{ for a literal brace",
        ),
    ],
)
def test_errors(source: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse_template(source)
    assert str(info.value) == message
    with pytest.raises(TemplateError):
        template_names(source)


@pytest.mark.parametrize(
    "source", ["", "plain", "{a}{b.c}", "{{{a}}}", "x {{y}} {z.0.k}", "{{", "}}"]
)
def test_fast_names_agree_with_parser(source: str) -> None:
    assert template_names(source) == parse_template(source).names


def test_render() -> None:
    inputs = {"user": {"name": "Ada"}, "n": 3, "flag": True, "obj": {"b": 1, "a": [None]}}
    assert render("Hi {user.name} x{n} {flag} {obj}", inputs) == (
        'Hi Ada x3 true {"a":[null],"b":1}'
    )
    assert render("{{ok}}", {}) == "{ok}"


def test_render_errors() -> None:
    with pytest.raises(TemplateError) as info:
        render("{missing}", {"a": 1})
    assert str(info.value) == (
        "at $: template references {missing}, which is not among the inputs given (inputs: a)"
    )
    with pytest.raises(TemplateError) as key_info:
        render("{a.b}", {"a": {"c": 1}})
    assert str(key_info.value) == "at $: template placeholder {a.b}: no key 'b' at .b (keys: c)"


def test_render_value_keeps_types_of_whole_placeholders() -> None:
    inputs = {"items": [1, 2], "q": "cats"}
    assert render_value({"ids": "{items}", "query": "about {q}", "k": 5, "l": ["{q}"]}, inputs) == {
        "ids": [1, 2],
        "query": "about cats",
        "k": 5,
        "l": ["cats"],
    }
