"""``foldline demo``: record a tiny run into a real store, read it back, verify it.

The demo exercises the ground floor end to end with the scripted model: a model
call answered by the mock provider, its prompt stored once as a blob however many
times it is sent, every event chained by hash into a SQLite file, then the log
read back, verified and printed.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from substrate import (
    CallKey,
    Event,
    EventData,
    EventStore,
    FoldlineError,
    Head,
    Inline,
    Message,
    MockModel,
    ModelCalled,
    ModelRequest,
    NodeCompleted,
    NodeStarted,
    RunCompleted,
    RunStarted,
    SystemClock,
    encode,
    hash_value,
    new_seed,
    pack,
    seal,
    to_builtins,
    unpack,
    verify_chain,
)

__all__ = ["DemoResult", "run_demo"]

# ~6 KiB: large enough to go to the blob store.
_DOCUMENT = "Foldline records every step of an agent as an event. " * 120


@dataclass(frozen=True)
class DemoResult:
    run_id: str
    events: list[Event]
    cost_usd: float
    tokens: int
    blobs: int


def run_demo(store: EventStore, steps: int = 3) -> DemoResult:
    """Record a run of ``steps`` summarize calls over one large document."""
    clock = SystemClock()
    model = MockModel(
        lambda req, key: f"summary {key.index + 1}: {len(req.messages[-1].content)} chars"
    )
    run_id = f"demo-{uuid.UUID(new_seed()[:32])}"
    pending: dict[str, bytes] = {}
    drafts: list[tuple[int, str | None, EventData]] = [
        (clock.now(), None, RunStarted("demo", Inline({"steps": steps}), new_seed()))
    ]
    cost, tokens = 0.0, 0
    for i in range(steps):
        node = f"summarize[{i}]"
        request = ModelRequest("mock:demo", [Message("user", _DOCUMENT)], max_tokens=64)
        response = asyncio.run(model.complete(request, CallKey(node, 0)))
        cost += response.cost_usd
        tokens += response.usage.input_tokens + response.usage.output_tokens
        drafts += [
            (clock.now(), node, NodeStarted()),
            (
                clock.now(),
                node,
                ModelCalled(
                    call=0,
                    model=request.model,
                    request_hash=hash_value(request),
                    request=pack(to_builtins(request), pending),
                    response=pack(to_builtins(response), pending),
                    usage=response.usage,
                    cost_usd=response.cost_usd,
                ),
            ),
            (clock.now(), node, NodeCompleted(Inline(response.content))),
        ]
    drafts.append((clock.now(), None, RunCompleted(Inline({"steps": steps}))))
    events, bodies, _ = seal(Head(), drafts)
    store.append(run_id, 0, events, bodies=bodies, blobs=pending)
    read_back = store.read(run_id)
    verify_chain(read_back, run_id=run_id)
    if [encode(e) for e in read_back] != bodies:
        raise FoldlineError(f"run {run_id}: the log did not read back byte-identically")
    # Every prompt comes back from its blob, identical to what was sent.
    prompts = [
        unpack(e.data.request, store.get_blob)["messages"][0]["content"]
        for e in read_back
        if isinstance(e.data, ModelCalled)
    ]
    if prompts != [_DOCUMENT] * steps:
        raise FoldlineError(f"run {run_id}: a prompt did not come back from its blob")
    return DemoResult(run_id, read_back, cost, tokens, len(pending))
