from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest

from substrate.errors import ReplayMiss, ScriptExhausted
from substrate.events import ErrorInfo, Usage
from substrate.live import PythonTools, SeededIds, SeededRng, SystemClock, new_seed
from substrate.mock import MockModel, MockReply, StepClock, count_tokens
from substrate.ports import (
    CallKey,
    Clock,
    Ids,
    Message,
    ModelPort,
    ModelRequest,
    ModelResponse,
    Rng,
    ToolCall,
    ToolPort,
    ToolResult,
)
from substrate.recorded import ReplayClock, ReplayModel, ReplayTools


def req(text: str = "hi", model: str = "mock:m") -> ModelRequest:
    return ModelRequest(model, [Message("system", "be brief"), Message("user", text)])


def complete(port: Any, request: ModelRequest, key: CallKey) -> ModelResponse:
    result: ModelResponse = asyncio.run(port.complete(request, key))
    return result


def test_implementations_satisfy_their_protocols() -> None:
    assert isinstance(SystemClock(), Clock)
    assert isinstance(StepClock(), Clock)
    assert isinstance(ReplayClock([]), Clock)
    assert isinstance(SeededIds("00"), Ids)
    assert isinstance(SeededRng("00"), Rng)
    assert isinstance(MockModel(), ModelPort)
    assert isinstance(ReplayModel({}), ModelPort)
    assert isinstance(PythonTools({}), ToolPort)
    assert isinstance(ReplayTools({}), ToolPort)


def test_system_clock_is_microseconds() -> None:
    assert 1_600_000_000_000_000 < SystemClock().now() < 4_000_000_000_000_000


def test_new_seed_is_fresh_hex() -> None:
    a, b = new_seed(), new_seed()
    assert a != b
    assert len(a) == 32
    int(a, 16)


# -- ids and randomness: derivations of (seed, node instance, call index) -------------


def test_ids_are_stable_per_seed_and_key() -> None:
    ids = SeededIds("abc")
    k = CallKey("fetch[3]", 2)
    first = ids.new_id(k)
    assert first == SeededIds("abc").new_id(k)
    assert uuid.UUID(first).version == 4
    others = {
        ids.new_id(CallKey("fetch[3]", 3)),
        ids.new_id(CallKey("fetch[4]", 2)),
        SeededIds("abd").new_id(k),
    }
    assert first not in others
    assert len(others) == 3


def test_rng_is_stable_in_range_and_order_independent() -> None:
    rng = SeededRng("s")
    keys = [CallKey(f"n{i % 7}", i) for i in range(2000)]
    forward = [rng.random(k) for k in keys]
    backward = [SeededRng("s").random(k) for k in reversed(keys)][::-1]
    assert forward == backward  # draws do not depend on the order they are made in
    assert all(0.0 <= x < 1.0 for x in forward)
    assert 0.45 < sum(forward) / len(forward) < 0.55


def test_randbelow_is_unbiased_enough_and_in_range() -> None:
    rng = SeededRng("s")
    counts = Counter(rng.randbelow(CallKey("n", i), 6) for i in range(6000))
    assert set(counts) == set(range(6))
    assert all(800 < c < 1200 for c in counts.values())
    assert rng.randbelow(CallKey("n", 1), 1) == 0
    with pytest.raises(ValueError, match="randbelow needs n > 0, got 0"):
        rng.randbelow(CallKey("n", 1), 0)


# -- the scripted model -----------------------------------------------------------------


def test_mock_echoes_the_last_user_message_with_usage_and_cost() -> None:
    m = MockModel(price_in=1.0, price_out=2.0)
    r = complete(m, req("hello world"), CallKey("n", 0))
    assert r.content == "hello world"
    assert r.usage == Usage(count_tokens("be brief") + count_tokens("hello world"), 3)
    assert r.cost_usd == pytest.approx((r.usage.input_tokens * 1.0 + 3 * 2.0) / 1e6)
    assert r.model == "mock:m"
    assert m.calls == 1


def test_mock_script_list_is_consumed_in_order_then_exhausted() -> None:
    m = MockModel(["one", MockReply("two", usage=Usage(10, 20))], price_in=0, price_out=1e6)
    assert complete(m, req(), CallKey("a", 0)).content == "one"
    second = complete(m, req(), CallKey("a", 1))
    assert (second.content, second.usage, second.cost_usd) == ("two", Usage(10, 20), 20.0)
    with pytest.raises(ScriptExhausted, match=r"has 2 replies; call 3 \(node 'a'\) has none"):
        complete(m, req(), CallKey("a", 2))


def test_mock_script_per_node_with_fallback() -> None:
    m = MockModel({"plan": ["p1", "p2"], "*": ["other"]})
    assert complete(m, req(), CallKey("plan", 0)).content == "p1"
    assert complete(m, req(), CallKey("write[2]", 0)).content == "other"
    assert complete(m, req(), CallKey("plan[7]", 1)).content == "p2"
    strict = MockModel({"plan": ["p"]})
    with pytest.raises(ScriptExhausted, match="no script for node 'x' and no '\\*'"):
        complete(strict, req(), CallKey("x", 0))


def test_mock_tool_calls_get_stable_ids() -> None:
    m = MockModel([MockReply(tool_calls=[("lookup", {"q": "x"}), ("apply", {})])])
    r = complete(m, req(), CallKey("agent", 4))
    assert [(c.id, c.name, c.args) for c in r.tool_calls] == [
        ("call_4_0", "lookup", {"q": "x"}),
        ("call_4_1", "apply", {}),
    ]
    assert r.finish_reason == "tool_calls"


def test_mock_function_script_and_on_call() -> None:
    seen: list[tuple[str, int]] = []
    m = MockModel(
        lambda request, key: f"{key.node}:{len(request.messages)}",
        on_call=lambda request, key, response: seen.append(
            (key.node, response.usage.output_tokens)
        ),
    )
    assert complete(m, req(), CallKey("z", 0)).content == "z:2"
    assert seen == [("z", 1)]


def test_mock_latency_reorders_concurrent_completions() -> None:
    m = MockModel(lambda r, k: k.node, latency=lambda k: 0.03 if k.node == "slow" else 0.0)
    done: list[str] = []

    async def one(node: str) -> None:
        r = await m.complete(req(), CallKey(node, 0))
        done.append(r.content)

    async def both() -> None:
        await asyncio.gather(one("slow"), one("fast"))

    asyncio.run(both())
    assert done == ["fast", "slow"]


def test_step_clock() -> None:
    c = StepClock(start=10, step=5)
    assert [c.now(), c.now(), c.now()] == [10, 15, 20]


# -- tools ------------------------------------------------------------------------------


def test_python_tools_sync_async_errors_and_idempotency_key() -> None:
    seen_keys: list[str] = []

    def add(a: int, b: int) -> int:
        return a + b

    async def fetch(url: str) -> str:
        return f"<{url}>"

    def charge(amount: int, idempotency_key: str) -> str:
        seen_keys.append(idempotency_key)
        return "charged"

    def broken() -> None:
        raise RuntimeError("disk on fire")

    tools = PythonTools({"add": add, "fetch": fetch, "charge": charge, "broken": broken})

    def call(name: str, args: dict[str, Any]) -> ToolResult:
        result: ToolResult = asyncio.run(tools.call(ToolCall(name, args, "key-1"), CallKey("n", 0)))
        return result

    assert call("add", {"a": 2, "b": 3}) == ToolResult(5)
    assert call("fetch", {"url": "x"}) == ToolResult("<x>")
    assert call("charge", {"amount": 5}) == ToolResult("charged")
    assert seen_keys == ["key-1"]
    assert call("broken", {}) == ToolResult(error=ErrorInfo("RuntimeError", "disk on fire"))
    missing = call("nope", {})
    assert missing.error == ErrorInfo(
        "UnknownTool", "no tool named 'nope' (known: add, broken, charge, fetch)"
    )


# -- replay ports serve what was recorded and refuse the rest ---------------------------


def test_replay_model_serves_by_key_and_refuses_unrecorded_calls() -> None:
    answer = ModelResponse("recorded", usage=Usage(1, 1), cost_usd=0.5)
    port = ReplayModel({CallKey("n", 0): answer})
    assert complete(port, req(), CallKey("n", 0)) == answer
    with pytest.raises(ReplayMiss, match=r"model call 1 of node 'n' \(mock:m\) was not recorded"):
        complete(port, req(), CallKey("n", 1))


def test_replay_tools_never_run_anything() -> None:
    port = ReplayTools({CallKey("t", 0): ToolResult("done")})
    call = ToolCall("apply", {"x": 1}, "k")
    assert asyncio.run(port.call(call, CallKey("t", 0))) == ToolResult("done")
    with pytest.raises(ReplayMiss, match=r"tool call 0 of node 'u' \(apply\) was not recorded"):
        asyncio.run(port.call(call, CallKey("u", 0)))


def test_replay_clock_serves_in_order() -> None:
    c = ReplayClock([5, 9])
    assert (c.now(), c.now()) == (5, 9)
    with pytest.raises(ReplayMiss, match=r"clock read #2 was not recorded \(the recorded run read"):
        c.now()
