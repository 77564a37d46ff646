"""Code-node callables for the benchmarks (referenced as ``bench.fns:NAME``).

Each comes in two flavours: a plain function, which the ``code`` handler runs in a
worker thread (``asyncio.to_thread``), and a coroutine, which it awaits in the loop.
The pair separates the engine's own cost per step from the thread hop.
"""

from __future__ import annotations

from typing import Any


class Crash(BaseException):
    """Stands in for the process dying: escapes every handler and the engine."""


def inc(x: int) -> int:
    return x + 1


async def ainc(x: int) -> int:
    return x + 1


def square(item: int) -> int:
    return item * item


async def asquare(item: int) -> int:
    return item * item


#: ``crash_square`` dies on this item (None: never).
CRASH_ON: list[int | None] = [None]


def crash_square(item: int) -> int:
    """``square``, but the process "dies" on item ``CRASH_ON[0]``."""
    if item == CRASH_ON[0]:
        raise Crash(f"killed on item {item}")
    return item * item


async def acrash_square(item: int) -> int:
    """``asquare``, but the process "dies" on item ``CRASH_ON[0]``."""
    if item == CRASH_ON[0]:
        raise Crash(f"killed on item {item}")
    return item * item


def total(xs: list[int]) -> int:
    return sum(xs)


async def atotal(xs: list[int]) -> int:
    return sum(xs)


def count(**kw: Any) -> int:
    return len(kw)


async def acount(**kw: Any) -> int:
    return len(kw)


def items(params: dict[str, Any]) -> list[int]:
    """``[0, 1, ..., params["n"] - 1]``: the list a map fans out over."""
    return list(range(int(params["n"])))


def noop(x: Any = None) -> None:
    return None
