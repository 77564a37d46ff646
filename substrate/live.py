"""Live port implementations: the real clock, seeded ids and randomness, Python tools.

Ids and random draws are pure functions of (seed, node instance, call index):
BLAKE2b over those three, so they replay from the seed alone and do not depend
on the order concurrent nodes happened to draw in.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from substrate.events import ErrorInfo
from substrate.ports import CallKey, ToolCall, ToolResult

__all__ = ["SystemClock", "SeededIds", "SeededRng", "PythonTools", "new_seed"]


def new_seed() -> str:
    """A fresh 128-bit run seed, hex (drawn once, recorded in ``run.started``)."""
    return os.urandom(16).hex()


class SystemClock:
    """The machine's wall clock, in microseconds."""

    def now(self) -> int:
        return time.time_ns() // 1000


def _draw(seed: str, key: CallKey, purpose: bytes, counter: int = 0) -> bytes:
    h = hashlib.blake2b(digest_size=32, person=purpose.ljust(16, b"\0")[:16])
    h.update(seed.encode())
    h.update(b"\0")
    h.update(key.node.encode())
    h.update(b"\0")
    h.update(key.index.to_bytes(8, "big", signed=True))
    h.update(counter.to_bytes(8, "big"))
    return h.digest()


class SeededIds:
    """UUIDv4-formatted ids derived from the run seed and the call key."""

    def __init__(self, seed: str) -> None:
        self.seed = seed

    def new_id(self, key: CallKey) -> str:
        return str(uuid.UUID(bytes=_draw(self.seed, key, b"foldline.id")[:16], version=4))


class SeededRng:
    """Uniform draws derived from the run seed and the call key."""

    def __init__(self, seed: str) -> None:
        self.seed = seed

    def random(self, key: CallKey) -> float:
        bits = int.from_bytes(_draw(self.seed, key, b"foldline.rng")[:8], "big") >> 11
        return bits / (1 << 53)

    def randbelow(self, key: CallKey, n: int) -> int:
        if n <= 0:
            raise ValueError(f"randbelow needs n > 0, got {n}")
        k = n.bit_length()
        if k > 256:
            raise ValueError(f"randbelow supports n < 2**256, got a {k}-bit n")
        counter = 0
        while True:  # rejection sampling: unbiased for any n
            raw = int.from_bytes(_draw(self.seed, key, b"foldline.rng", counter), "big")
            r = raw >> (256 - k)
            if r < n:
                return r
            counter += 1


class PythonTools:
    """A tool port over plain Python callables, sync or async.

    A sync callable runs in a worker thread so it cannot stall the event loop.
    A callable with an ``idempotency_key`` parameter receives the call's key, so
    it can pass it on to an API that deduplicates requests. An exception raised by
    the tool is returned as ``ToolResult.error`` (the agent sees it), not raised.
    """

    def __init__(self, tools: Mapping[str, Callable[..., Any]]) -> None:
        self._tools = dict(tools)
        self._wants_key = {
            name: "idempotency_key" in inspect.signature(fn).parameters
            for name, fn in self._tools.items()
        }

    async def call(self, request: ToolCall, key: CallKey) -> ToolResult:
        fn = self._tools.get(request.name)
        if fn is None:
            known = ", ".join(sorted(self._tools)) or "none"
            return ToolResult(
                error=ErrorInfo("UnknownTool", f"no tool named {request.name!r} (known: {known})")
            )
        kwargs = dict(request.args)
        if self._wants_key[request.name]:
            kwargs["idempotency_key"] = request.idempotency_key
        try:
            if inspect.iscoroutinefunction(fn):
                value = await fn(**kwargs)
            else:
                value = await asyncio.to_thread(fn, **kwargs)
        except Exception as exc:  # the tool's failure is the agent's information
            return ToolResult(error=ErrorInfo(type(exc).__name__, str(exc)))
        return ToolResult(value=value)
