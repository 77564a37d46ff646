"""Code-node callables and tools of the golden cases.

Everything here is deterministic given its inputs (the nondeterminism lint checks it):
the time, ids and randomness come from the ``ctx`` ports. The one exception is
:func:`drifted`, which stands for code changed after a run was recorded.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: What :func:`drifted` returns. The recorder sets it to 1 while it records the
#: must-fail case; at rest it is 2, so that case's replay diverges.
DRIFT = 2


async def _turns(n: int) -> None:
    """Yield to the event loop ``n`` times: a latency that does not depend on time."""
    for _ in range(n):
        await asyncio.sleep(0)


def inc(x: int) -> int:
    return x + 1


def double(x: int) -> int:
    return x * 2


async def ainc(x: int) -> int:
    """``inc`` for concurrent branches (a sync callable runs in a thread, whose timing
    would make the recording itself nondeterministic)."""
    await _turns(x % 3)
    return x + 1


async def adouble(x: int) -> int:
    await _turns((x + 1) % 3)
    return x * 2


async def work(item: int, index: int = 0) -> dict[str, int]:
    """A map body whose completion order differs from its index order."""
    await _turns((item * 7) % 5)
    return {"item": item, "square": item * item, "index": index}


def total(parts: list[dict[str, int]]) -> int:
    return sum(p["square"] for p in parts)


def stamp(ctx: Any) -> dict[str, Any]:
    """Time, an id and a random draw, all through the ports."""
    return {"now": ctx.now(), "id": ctx.new_id(), "draw": round(ctx.random(), 6)}


def flaky(ctx: Any, x: int) -> int:
    """Fails its first attempt; retried with backoff."""
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return x * 10


def explode(x: Any = None) -> None:
    raise ValueError(f"cannot handle {x!r}")


async def linger(x: Any = None) -> Any:
    """Outlives its node's timeout."""
    await asyncio.sleep(5)
    return x


def drifted(x: int) -> int:
    """Code that changed after its run was recorded (the must-fail case)."""
    return x * DRIFT


def shout(text: str) -> str:
    return text.upper()


async def read_cluster(name: str) -> dict[str, Any]:
    await _turns(1)
    return {"name": name, "replicas": 2, "healthy": True}


async def apply_manifest(replicas: int) -> str:
    await _turns(2)
    return f"scaled to {replicas}"


async def search(query: str) -> list[str]:
    await _turns(len(query) % 3)
    return [f"{query}: result {i}" for i in range(2)]


async def charge(amount: int) -> str:
    return f"charged {amount}"
