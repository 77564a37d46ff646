"""Stable names: node ids, tool names and graph ids derived from what the author wrote.

An id depends only on the text it is derived from and, for a name that is taken, on
the order of the author's list (``write``, ``write_2``, ``write_3``...). It never
depends on memory addresses, object ids or counters shared across crews, so the same
source compiles to the same graph in any process.

>>> slugify("Senior Research Analyst", fallback="agent")
'senior_research_analyst'
>>> slugify("2nd draft!", fallback="task")
'task_2nd_draft'
>>> unique("write", {"write", "write_2"})
'write_3'
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container
from typing import Final

__all__ = ["slugify", "unique", "words"]

_NOT_ALNUM: Final = re.compile(r"[^a-z0-9]+")
#: Longest slug kept: ids stay readable in traces and well under KIR's 128 characters
#: once the lowering appends its suffixes (``-review``, ``-by-<agent>``).
MAX_SLUG: Final = 48


def slugify(text: str, *, fallback: str, limit: int = MAX_SLUG) -> str:
    """``text`` as an id: lowercase ASCII letters, digits and ``_``.

    Accents are dropped (``café`` -> ``cafe``), every other run of characters becomes
    one ``_``. An empty result is ``fallback``; one starting with a digit is prefixed
    with ``fallback_`` (ids start with a letter).
    """
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = _NOT_ALNUM.sub("_", plain.lower()).strip("_")[:limit].rstrip("_")
    if not slug:
        return fallback
    if slug[0].isdigit():
        return f"{fallback}_{slug}"
    return slug


def words(text: str, count: int) -> str:
    """The first ``count`` words of ``text`` (for names derived from a description)."""
    return " ".join(text.split()[:count])


def unique(base: str, taken: Container[str]) -> str:
    """``base``, or ``base_2``, ``base_3``... whichever is first not in ``taken``."""
    if base not in taken:
        return base
    n = 2
    while f"{base}_{n}" in taken:
        n += 1
    return f"{base}_{n}"
