"""Code-node callables used by the executor tests (importable as tests.executor.fns:NAME)."""

from __future__ import annotations

import asyncio
import threading
from contextvars import ContextVar
from typing import Any


def add(a: int, b: int) -> int:
    return a + b


def inc(x: int) -> int:
    return x + 1


def double(x: int) -> int:
    return x * 2


async def adouble(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


def const(params: dict[str, Any]) -> Any:
    return params.get("value")


def boom(x: Any = None) -> None:
    raise ValueError("boom")


def stamp(ctx: Any) -> dict[str, Any]:
    return {"now": ctx.now(), "id": ctx.new_id(), "r": ctx.random()}


def join(**kw: Any) -> dict[str, Any]:
    return dict(sorted(kw.items()))


def ctx_join(ctx: Any, **kw: Any) -> dict[str, Any]:
    assert ctx.key.startswith("m[")
    return dict(sorted(kw.items()))


def noop() -> None:
    return None


def named(y: int) -> int:
    return y


def params_inc(x: int, params: dict[str, Any]) -> int:
    return x + int(params["add"])


#: Set by a test around a run: a plain function sees the value its run was started with.
TRACE: ContextVar[str] = ContextVar("TRACE", default="unset")


#: Holds :func:`held` until a test sets it.
RELEASE = threading.Event()
#: The threads :func:`held` runs in, as it starts; a test clears it.
HELD: list[threading.Thread] = []
_HELD_RUNNING = threading.Condition()


def held(x: Any = None) -> str:
    """A plain function that runs until the test lets it go (at most 30 s)."""
    with _HELD_RUNNING:
        HELD.append(threading.current_thread())
        _HELD_RUNNING.notify_all()
    RELEASE.wait(30)
    return "released"


def boom_once_held(x: Any = None) -> None:
    """:func:`boom`, once :func:`held` is running (at most 30 s)."""
    with _HELD_RUNNING:
        _HELD_RUNNING.wait_for(lambda: HELD, 30)
    boom()


def where(x: Any = None) -> dict[str, str]:
    """The thread a plain function runs in, and the TRACE it sees there."""
    return {"thread": threading.current_thread().name, "trace": TRACE.get()}


def length(items: list[Any]) -> int:
    return len(items)


class Crash(BaseException):
    """Stands in for the process dying: escapes every handler and the engine."""


CALLS: dict[str, int] = {}
CRASH_AT: set[int] = set()


def counted(x: int) -> int:
    """inc, counting its executions; raises Crash once when x is in CRASH_AT."""
    CALLS[str(x)] = CALLS.get(str(x), 0) + 1
    if x in CRASH_AT:
        CRASH_AT.discard(x)
        raise Crash(f"killed at {x}")
    return x + 1


def mix(**kw: Any) -> int:
    """Sum of the inputs, strings counting as their length, None as 0."""
    total = 0
    for v in kw.values():
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int):
            total += v
        elif isinstance(v, (str, list, dict)):
            total += len(v)
    return total % 1000


async def slow(x: Any = None, seconds: float = 2.0) -> Any:
    await asyncio.sleep(seconds)
    return x


async def short(x: Any = None) -> Any:
    await asyncio.sleep(0.05)
    return x


async def ainc(x: int) -> int:
    return x + 1


async def aparams(x: int, params: dict[str, Any]) -> int:
    return x + int(params["add"])


async def aboom(x: Any = None) -> None:
    raise ValueError("aboom")


async def asleep_inc(x: int) -> int:
    await asyncio.sleep(0)
    return x + 1


async def asleep_boom(x: Any = None) -> None:
    await asyncio.sleep(0)
    raise ValueError("asleep_boom")


async def anamed(y: int) -> int:
    return y


async def arepeat(item: int) -> str:
    """A value above the 4 KiB blob threshold."""
    return f"{item}:" + "x" * 5000


async def actx(x: int, ctx: Any) -> int:
    return x + ctx.attempt


def nonfinite(x: Any = None) -> dict[str, Any]:
    return {"ok": x, "scores": [1.5, float("inf")]}


async def anonfinite(x: Any = None) -> dict[str, Any]:
    return {"ok": x, "scores": [1.5, float("nan")]}


#: The tool call :func:`call_named_tool` makes; a test changes it between run and resume.
TOOL_CALL: list[Any] = ["apply", {"replicas": 3}]


async def call_named_tool(ctx: Any) -> Any:
    name, args = TOOL_CALL
    result = await ctx.call_tool(name, args)
    return result.value if result.error is None else result.error.type
