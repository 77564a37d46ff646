"""Budgets: the call that could exceed a cap is never made, whatever the concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from executor.api import Budget, arun
from kir import Graph, Node
from kir.schema import LlmConfig, MapConfig
from substrate import CallKey, MemoryStore, MockModel, ModelRequest
from substrate.events import ModelCalled


def _graph(concurrency: int, max_tokens: int) -> Graph:
    return Graph(
        nodes=[
            Node(
                id="m",
                config=MapConfig(
                    over="$input.items",
                    node=Node(
                        id="ask",
                        config=LlmConfig(
                            model="mock:m", prompt="{p}", params={"max_tokens": max_tokens}
                        ),
                        inputs={"p": "$item"},
                    ),
                    max_concurrency=concurrency,
                ),
            )
        ],
        output="m",
    )


@settings(max_examples=40)
@given(
    prompts=st.lists(st.text(min_size=1, max_size=200), min_size=1, max_size=8),
    answers=st.lists(st.text(max_size=400), min_size=8, max_size=8),
    concurrency=st.integers(1, 4),
    max_tokens=st.integers(1, 120),
    cap_tokens=st.integers(1, 600),
    cap_usd=st.none() | st.floats(min_value=1e-6, max_value=1e-3),
)
def test_recorded_spend_never_exceeds_the_cap(
    prompts: list[str],
    answers: list[str],
    concurrency: int,
    max_tokens: int,
    cap_tokens: int,
    cap_usd: float | None,
) -> None:
    def reply(req: ModelRequest, key: CallKey) -> str:
        return answers[int(key.node.split("[")[1].split("]")[0]) % len(answers)]

    model = MockModel(reply, latency=lambda k: 0.001 * (hash(k.node) % 3))
    store = MemoryStore()
    res = asyncio.run(
        arun(
            _graph(concurrency, max_tokens),
            {"items": prompts},
            store=store,
            model=model,
            budget=Budget(usd=cap_usd, tokens=cap_tokens),
        )
    )
    log = store.read(res.run_id)
    recorded: list[Any] = [e.data for e in log if isinstance(e.data, ModelCalled)]
    assert model.calls == len(recorded)  # every call made is recorded; refused ones were not made
    tokens = sum(d.usage.input_tokens + d.usage.output_tokens for d in recorded)
    assert tokens == res.tokens <= cap_tokens
    if cap_usd is not None:
        assert res.cost_usd <= cap_usd + 1e-12
    if res.status == "waiting":
        assert res.waiting_on == ["budget"]
        assert any(e.kind == "budget.exceeded" for e in log)
    else:
        assert res.status == "completed"
        assert len(recorded) == len(prompts)
