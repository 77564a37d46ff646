"""Data bindings: where each input of a node comes from.

``Node.inputs`` maps an input name to a *source*:

=====================  ==========================================================
``$input``             the whole run input (a mapping)
``$input.topic``       one field of the run input (``.a.b.0`` walks deeper)
``research``           the output of node ``research``, which must be an ancestor
``research.summary``   a field of that output
``$item``/``$index``   inside a ``map`` body only: the element and its index
=====================  ==========================================================

>>> parse_binding("research.summary")
Binding(source='node', node='research', path=('summary',))
>>> parse_binding("$input.topic").source
'input'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

from kir.errors import BindingError

__all__ = ["Binding", "BindingSource", "parse_binding"]

BindingSource = Literal["input", "node", "item", "index"]

_BINDING: Final = re.compile(
    r"(?P<head>\$input|\$item|\$index|[A-Za-z_][A-Za-z0-9_-]*)(?P<path>(?:\.[A-Za-z0-9_]+)*)\Z"
)


@dataclass(frozen=True, slots=True)
class Binding:
    """A parsed binding.

    Attributes:
        source: ``"input"`` (run input), ``"node"`` (an upstream output), ``"item"`` or
            ``"index"`` (the element of a ``map``, in a map body only).
        node: the upstream node id when ``source == "node"``.
        path: keys (or digit-string list indexes) walked inside the source value.
    """

    source: BindingSource
    node: str | None = None
    path: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The binding as written."""
        head = {"input": "$input", "item": "$item", "index": "$index"}.get(self.source)
        return ".".join((head or self.node or "", *self.path))


@lru_cache(maxsize=65536)
def parse_binding(text: str) -> Binding:
    """Parse a binding source.

    Raises:
        BindingError: ``text`` is not one of the forms above (located at ``$``).
    """
    m = _BINDING.match(text)
    if m is None:
        raise BindingError(
            f"bad binding {_clip(text)!r}: expected '$input', '$input.field', 'node_id' or "
            "'node_id.field' (fields: letters, digits, _)"
        )
    head = m.group("head")
    path = tuple(m.group("path").split(".")[1:])
    if head == "$input":
        return Binding("input", None, path)
    if head == "$item":
        return Binding("item", None, path)
    if head == "$index":
        if path:
            raise BindingError(f"bad binding {text!r}: $index is a number and has no fields")
        return Binding("index")
    return Binding("node", head, path)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
