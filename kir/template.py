"""Prompt and argument templates: ``{name}`` and ``{name.field}`` over a node's inputs.

The syntax is deliberately tiny, so that a checker can see every name a template uses
before anything runs:

- ``{name}`` is replaced by the node input ``name``; ``{name.field.0}`` walks into it
  (mapping keys, or list indexes written as digits);
- ``{{`` and ``}}`` are a literal ``{`` and ``}``;
- anything else in braces (``{}``, ``{ name }``, ``{a+b}``, an unmatched brace) is an error.

Rendering is deterministic: strings are inserted as they are, every other value as its
canonical JSON (``True`` becomes ``true``, a dict has sorted keys), so a replay renders
the same bytes.

>>> t = parse_template("Summarize {doc.title} in {n} words {{please}}")
>>> sorted(t.names)
['doc', 'n']
>>> render(t, {"doc": {"title": "KIR"}, "n": 50})
'Summarize KIR in 50 words {please}'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final, NamedTuple

from kir.errors import TemplateError
from substrate.codec import encode
from substrate.errors import CodecError

__all__ = [
    "Placeholder",
    "Template",
    "parse_template",
    "template_names",
    "render",
    "render_value",
    "lookup",
]

_TOKEN: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_PLACEHOLDER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*\Z")
# Templates without escapes, checked and scanned by two C-speed regexes (see template_names).
_SIMPLE: Final = re.compile(r"[^{}]*(?:\{[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*\}[^{}]*)*\Z")
_NAMES: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)")


class Placeholder(NamedTuple):
    """One ``{name.path}`` in a template.

    Attributes:
        name: the input it reads.
        path: keys (or digit-string list indexes) walked inside that input.
    """

    name: str
    path: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The placeholder as written, braces included."""
        return "{" + ".".join((self.name, *self.path)) + "}"


class Template(NamedTuple):
    """A parsed template.

    Attributes:
        source: the text as written.
        parts: literal text and placeholders, in order.
        names: the input names the template reads.
    """

    source: str
    parts: tuple[str | Placeholder, ...]
    names: frozenset[str]

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        """Every placeholder, in order of appearance."""
        return tuple(p for p in self.parts if isinstance(p, Placeholder))


@lru_cache(maxsize=4096)
def parse_template(source: str) -> Template:
    """Parse ``source`` into a :class:`Template`.

    Raises:
        TemplateError: a brace is unmatched, or a placeholder is not ``name`` or
            ``name.field...`` (located at ``$``; the checker relocates it).
    """
    if "{" not in source and "}" not in source:
        return Template(source, (source,) if source else (), frozenset())
    parts: list[str | Placeholder] = []
    literal: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(source):
        literal.append(source[pos : m.start()])
        pos = m.end()
        token = m.group(0)
        if token == "{{":
            literal.append("{")
        elif token == "}}":
            literal.append("}")
        elif token in ("{", "}"):
            raise TemplateError(
                f"unmatched {token!r} at offset {m.start()}; "
                f"write {token * 2!r} for a literal brace"
            )
        else:
            inner = m.group(1)
            if not _PLACEHOLDER.match(inner):
                raise TemplateError(
                    f"bad placeholder {_clip(token)!r} at offset {m.start()}: expected {{name}} "
                    "or {name.field} (letters, digits, _; no spaces); write {{ for a literal brace"
                )
            text = "".join(literal)
            if text:
                parts.append(text)
            literal = []
            name, *path = inner.split(".")
            parts.append(Placeholder(name, tuple(path)))
    literal.append(source[pos:])
    tail = "".join(literal)
    if tail:
        parts.append(tail)
    names = frozenset(p.name for p in parts if isinstance(p, Placeholder))
    return Template(source, tuple(parts), names)


def template_names(source: str) -> frozenset[str]:
    """The input names ``source`` reads; what :func:`parse_template` would give, faster.

    The checker needs only the names, for thousands of distinct prompts: templates with no
    ``{{``/``}}`` escapes are validated and scanned by regular expressions alone.

    Raises:
        TemplateError: as :func:`parse_template`.
    """
    if "{" not in source and "}" not in source:
        return frozenset()
    if "{{" not in source and "}}" not in source and _SIMPLE.match(source):
        return frozenset(_NAMES.findall(source))
    return parse_template(source).names


def lookup(value: Any, path: tuple[str, ...], *, what: str) -> Any:
    """Walk ``path`` into ``value``: mapping keys, or digit strings as list indexes.

    Raises:
        TemplateError: a key is missing or the value cannot be indexed; ``what`` names
            the thing being walked in the message.
    """
    for i, key in enumerate(path):
        if isinstance(value, Mapping):
            if key not in value:
                raise TemplateError(
                    f"{what}: no key {key!r} at .{'.'.join(path[: i + 1])} "
                    f"(keys: {', '.join(sorted(map(str, value))) or 'none'})"
                )
            value = value[key]
        elif isinstance(value, (list, tuple)) and key.isdigit():
            if int(key) >= len(value):
                raise TemplateError(f"{what}: index {key} out of range (length {len(value)})")
            value = value[int(key)]
        else:
            raise TemplateError(f"{what}: cannot read {key!r} from a {type(value).__name__}")
    return value


def _resolve(p: Placeholder, inputs: Mapping[str, Any]) -> Any:
    if p.name not in inputs:
        raise TemplateError(
            f"template references {p.text}, which is not among the inputs given "
            f"(inputs: {', '.join(sorted(inputs)) or 'none'})"
        )
    return lookup(inputs[p.name], p.path, what=f"template placeholder {p.text}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return encode(value).decode()
    except CodecError as exc:
        raise TemplateError(f"cannot render a {type(value).__name__} as text: {exc}") from None


def render(template: str | Template, inputs: Mapping[str, Any]) -> str:
    """Render ``template`` with ``inputs``; non-strings are inserted as canonical JSON.

    Raises:
        TemplateError: the template is malformed or reads a missing input or key.
    """
    t = parse_template(template) if isinstance(template, str) else template
    return "".join(p if isinstance(p, str) else _text(_resolve(p, inputs)) for p in t.parts)


def render_value(value: Any, inputs: Mapping[str, Any]) -> Any:
    """Render every string inside a JSON value (used for tool arguments).

    A string that is exactly one placeholder, such as ``"{items}"``, becomes the input's
    value itself, keeping its type (a list stays a list); any other string is rendered as
    text. Mapping keys are not templated.
    """
    if isinstance(value, str):
        t = parse_template(value)
        if len(t.parts) == 1 and isinstance(t.parts[0], Placeholder):
            return _resolve(t.parts[0], inputs)
        return render(t, inputs)
    if isinstance(value, Mapping):
        return {k: render_value(v, inputs) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [render_value(v, inputs) for v in value]
    return value


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
