"""Turn a pydantic ``ValidationError`` into :class:`~kir.errors.KirError`\\ s with JSON paths.

pydantic is the authoring edge of KIR; its errors never leave the package as themselves.
Each of its error locations becomes a JSON path (``$.nodes[3].config.prompt``), the id of
the innermost node the location is inside is looked up in the raw input, and the message
says what was expected and what was found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from kir.errors import KirError, SchemaError

__all__ = ["json_path", "translate", "describe", "sort_errors"]

# Given the model class at some location, a field key and the raw value of the owner (the
# dict or model holding the field), return the model class of that field's value (of each
# item when it is a list), if it is a model.
ChildModel = Callable[[type[BaseModel], str, Any], "type[BaseModel] | None"]

_IDENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

#: Plain words for the regular expressions the schema uses, keyed by pattern (kir.schema
#: registers its patterns here).
PATTERN_HELP: dict[str, str] = {}


def json_path(loc: Iterable[str | int], prefix: str = "$") -> str:
    """``("nodes", 3, "config")`` -> ``$.nodes[3].config``; odd keys are bracket-quoted."""
    parts = [prefix]
    for key in loc:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif _IDENT.match(key):
            parts.append(f".{key}")
        else:
            parts.append("[" + _quote(key) + "]")
    return "".join(parts)


def _quote(key: str) -> str:
    text = key if len(key) <= 40 else key[:37] + "..."
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def describe(value: Any) -> str:
    """A short description of a found value, for ``got ...`` in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 40 else f"a {len(text)}-digit number"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, BaseModel):
        return f"a {type(value).__name__}"
    return f"a {type(value).__name__}"


def _step(raw: Any, key: str | int) -> Any:
    if isinstance(raw, BaseModel):
        if isinstance(key, str):
            return getattr(raw, key, None)
        return None
    if isinstance(raw, Mapping) and isinstance(key, str):
        return raw.get(key)
    if isinstance(raw, (list, tuple)) and isinstance(key, int) and 0 <= key < len(raw):
        return raw[key]
    return None


def _node_id(raw: Any) -> str | None:
    value = _step(raw, "id")
    return value if isinstance(value, str) else None


def translate(
    exc: ValidationError,
    data: Any,
    *,
    root: type[BaseModel],
    child_model: ChildModel,
    tags: Callable[[type[BaseModel], str], bool],
    is_node: Callable[[type[BaseModel] | None], bool],
    fields: Callable[[type[BaseModel]], Sequence[str]],
    prefix: str = "$",
) -> list[KirError]:
    """Translate every error of ``exc`` (raised validating ``data`` as ``root``).

    Args:
        exc: the pydantic error.
        data: the raw input that was validated (dicts, lists, models).
        root: the model ``data`` was validated as.
        child_model: resolves the model class of a field (see :data:`ChildModel`).
        tags: whether, at a field of a model, the next location item is a discriminated
            union tag (pydantic inserts the tag into locations; paths must not show it).
        is_node: whether a model class is the node model (to find the node id).
        fields: the JSON field names of a model, listed when an unexpected one is found.
        prefix: the path of ``data`` itself.
    """
    errors: list[KirError] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        path_keys: list[str | int] = []
        raw: Any = data
        cls: type[BaseModel] | None = root
        owner: type[BaseModel] | None = root
        node = _node_id(data) if is_node(root) else None
        i = 0
        while i < len(loc):
            key = loc[i]
            i += 1
            if isinstance(key, int):
                # A list item: the class set for the list field is the item class.
                raw = _step(raw, key)
                path_keys.append(key)
            else:
                owner = cls
                path_keys.append(key)
                cls = child_model(cls, key, raw) if cls is not None else None
                raw = _step(raw, key)
                if owner is not None and tags(owner, key) and i < len(loc):
                    i += 1  # ("config", "llm", "prompt"): drop the union tag "llm"
            if is_node(cls) and not isinstance(raw, list):
                found = _node_id(raw)
                if found is not None:
                    node = found
        path = json_path(path_keys, prefix)
        detail = _message(err, owner, path_keys, fields)
        if (path, detail) in seen:
            continue
        seen.add((path, detail))
        errors.append(SchemaError(detail, path=path, node=node))
    return errors


def _message(
    err: Mapping[str, Any],
    owner: type[BaseModel] | None,
    loc: Sequence[str | int],
    fields: Callable[[type[BaseModel]], Sequence[str]],
) -> str:
    kind: str = err["type"]
    msg: str = err["msg"]
    found = err.get("input")
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        name = loc[-1] if loc else "?"
        names = fields(owner) if owner is not None else ()
        allowed = f" (allowed: {', '.join(names)})" if names else ""
        return f"unexpected field {name!r}{allowed}"
    if kind == "json_invalid":
        return f"invalid JSON: {ctx.get('error', msg)}"
    if kind in ("value_error", "assertion_error"):
        return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        expected = PATTERN_HELP.get(pattern, f"a string matching {pattern}")
        return f"expected {expected}, got {describe(found)}"
    if kind == "union_tag_invalid":
        return (
            f"unknown node kind {describe(ctx.get('tag'))}; "
            f"expected one of {ctx.get('expected_tags', '')}"
        )
    if kind == "union_tag_not_found":
        return "node kind is missing: set 'kind' on the node"
    if msg.startswith("Input should be "):
        return f"expected {_expected(msg.removeprefix('Input should be '))}, got {describe(found)}"
    return f"{msg[:1].lower()}{msg[1:]}, got {describe(found)}"


def _expected(text: str) -> str:
    # pydantic's wording is Python's; KIR users write JSON.
    text = text.removeprefix("a valid ")
    if text.startswith("dictionary"):
        return "an object"
    if text == "list":
        return "an array"
    if text.startswith(("greater", "less")):
        return f"a number {text}"
    if text in ("string", "number", "integer", "boolean"):
        return ("an " if text == "integer" else "a ") + text
    return text


def sort_errors(errors: Iterable[KirError]) -> list[KirError]:
    """Errors in document order: by path, with list indexes compared as numbers."""

    def key(e: KirError) -> tuple[tuple[tuple[int, int | str], ...], str]:
        parts = re.findall(r"\[(\d+)\]|[.\[]\"?([^.\[\]\"]+)", e.path)
        return tuple((0, int(a)) if a else (1, b) for a, b in parts), e.detail

    return sorted(errors, key=key)
