"""Node semantics: one handler per leaf node kind.

A handler is ``async (ctx) -> NodeResult`` and sees only its :class:`NodeContext`.
``map`` and ``subgraph`` have no handler: they are composites the engine expands
into child scopes (see :mod:`executor.frontier`).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from executor.context import NodeContext
from executor.errors import NodeError
from kir.errors import KirError
from kir.expr import evaluate
from kir.schema import (
    AgentConfig,
    CodeConfig,
    GateConfig,
    LlmConfig,
    RouterConfig,
    ToolConfig,
    WaitConfig,
)
from kir.template import render, render_value
from substrate.codec import encode
from substrate.ports import Message, ModelRequest, ModelResponse, ToolSchema

__all__ = ["NodeResult", "HANDLERS", "DEFAULT_MAX_TOKENS", "direct_code", "load_callable"]

#: ``max_tokens`` of a model call whose node does not set one: every call has a
#: worst case, so a budget can be enforced before the call is made.
DEFAULT_MAX_TOKENS = 1024


class NodeResult(msgspec.Struct, frozen=True):
    """What a node produced, and for routers and gates the labels of the edges to take.

    A msgspec struct (never encoded): one is made per node run, and a struct is built by
    C code, several times faster than a frozen dataclass's ``__init__``.
    """

    output: Any
    route: list[str] | None = None


Handler = Callable[[NodeContext], Awaitable[NodeResult]]


def _model_params(params: dict[str, Any]) -> tuple[int, float | None, dict[str, Any]]:
    rest = dict(params)
    max_tokens = rest.pop("max_tokens", DEFAULT_MAX_TOKENS)
    temperature = rest.pop("temperature", None)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise NodeError(f"params.max_tokens must be a positive integer, not {max_tokens!r}")
    return max_tokens, temperature, rest


def _parse_output(ctx: NodeContext, response: ModelResponse, schema: dict[str, Any] | None) -> Any:
    if schema is None:
        return response.content
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise NodeError(
            f"node {ctx.key!r}: the model's answer is not the JSON "
            f"its output schema asks for: {exc}"
        ) from None


def _render(ctx: NodeContext, template: str, what: str) -> str:
    try:
        return render(template, ctx.inputs)
    except KirError as exc:
        raise NodeError(f"node {ctx.key!r} {what}: {exc}") from None


async def run_llm(ctx: NodeContext) -> NodeResult:
    c = ctx.node.config
    assert isinstance(c, LlmConfig)
    max_tokens, temperature, params = _model_params(c.params)
    messages = []
    if c.system is not None:
        messages.append(Message("system", _render(ctx, c.system, "system")))
    messages.append(Message("user", _render(ctx, c.prompt, "prompt")))
    request = ModelRequest(
        c.model,
        messages,
        max_tokens=max_tokens,
        temperature=temperature,
        output_schema=c.output_schema,
        params=params,
    )
    response = await ctx.call_model(request)
    return NodeResult(_parse_output(ctx, response, c.output_schema))


async def run_agent(ctx: NodeContext) -> NodeResult:
    c = ctx.node.config
    assert isinstance(c, AgentConfig)
    max_tokens, temperature, params = _model_params(c.params)
    specs = ctx.tools
    tools = []
    for name in c.tools:
        spec = specs.get(name)
        if spec is None:
            raise NodeError(f"node {ctx.key!r}: agent tool {name!r} is not declared")
        tools.append(ToolSchema(name, spec.description, spec.args_schema))
    task = encode(ctx.inputs).decode() if ctx.inputs else "Begin."
    messages = [
        Message("system", _render(ctx, c.instructions, "instructions")),
        Message("user", task),
    ]
    for _turn in range(c.max_turns):
        request = ModelRequest(
            c.model,
            list(messages),
            tools=tools,
            max_tokens=max_tokens,
            temperature=temperature,
            output_schema=c.output_schema,
            params=params,
        )
        response = await ctx.call_model(request)
        if not response.tool_calls:
            return NodeResult(_parse_output(ctx, response, c.output_schema))
        messages.append(Message("assistant", response.content, tool_calls=response.tool_calls))
        for call in response.tool_calls:
            if call.name not in c.tools:
                reply: Any = {"error": f"tool {call.name!r} is not available"}
            else:
                result = await ctx.call_tool(call.name, call.args)
                reply = (
                    result.value
                    if result.error is None
                    else {"error": f"{result.error.type}: {result.error.message}"}
                )
            content = encode(reply).decode()
            messages.append(Message("tool", content, tool_call_id=call.id, name=call.name))
    raise NodeError(f"node {ctx.key!r}: the agent did not finish within {c.max_turns} turns")


async def run_tool(ctx: NodeContext) -> NodeResult:
    c = ctx.node.config
    assert isinstance(c, ToolConfig)
    try:
        args = render_value(c.args, ctx.inputs)
    except KirError as exc:
        raise NodeError(f"node {ctx.key!r} args: {exc}") from None
    result = await ctx.call_tool(c.tool, args)
    if result.error is not None:
        raise NodeError(
            f"node {ctx.key!r}: tool {c.tool!r} failed: {result.error.type}: {result.error.message}"
        )
    return NodeResult(result.value)


_CALLABLES: dict[str, tuple[Callable[..., Any], frozenset[str], bool]] = {}


def load_callable(ref: str) -> Callable[..., Any]:
    """Import ``package.module:function`` (cached)."""
    return _load(ref)[0]


def _load(ref: str) -> tuple[Callable[..., Any], frozenset[str], bool]:
    """The callable, its parameter names, and whether it is a coroutine function."""
    found = _CALLABLES.get(ref)
    if found is None:
        module_name, _, attr = ref.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise NodeError(f"cannot load code callable {ref!r}: {exc}") from None
        if not callable(obj):
            raise NodeError(f"code callable {ref!r} is a {type(obj).__name__}, not a function")
        try:
            params = frozenset(inspect.signature(obj).parameters)
        except (TypeError, ValueError):  # some builtins have no signature
            params = frozenset()
        found = _CALLABLES[ref] = (obj, params, inspect.iscoroutinefunction(obj))
    return found


_DIRECT: dict[str, tuple[Callable[..., Any], bool, bool] | None] = {}


def direct_code(ref: str) -> tuple[Callable[..., Any], bool, bool] | None:
    """The callable of a ``code`` node that needs no :class:`NodeContext` (cached).

    A function with no ``ctx`` parameter: the engine calls it on its inputs (and
    ``params``, the first bool, when it takes them) as :func:`run_code` would, without
    building a context; the second bool says it is a coroutine function (awaited in the
    loop; a plain function runs in a worker thread). None for a callable that wants its
    context, and for one that does not load (which :func:`run_code` reports).
    """
    try:
        return _DIRECT[ref]
    except KeyError:
        pass
    try:
        fn, params, is_async = _load(ref)
    except NodeError:
        return None
    found = _DIRECT[ref] = None if "ctx" in params else (fn, "params" in params, is_async)
    return found


async def run_code(ctx: NodeContext) -> NodeResult:
    c = ctx.node.config
    assert isinstance(c, CodeConfig)
    fn, params, is_async = _load(c.function)
    kwargs = dict(ctx.inputs)
    if "ctx" in params:
        kwargs["ctx"] = ctx
    if "params" in params:
        kwargs["params"] = c.params
    if is_async:
        value = await fn(**kwargs)
    else:
        value = await asyncio.to_thread(fn, **kwargs)
    return NodeResult(value)


async def run_gate(ctx: NodeContext) -> NodeResult:
    c = ctx.node.config
    assert isinstance(c, GateConfig)
    question = _render(ctx, c.question, "question")
    d = await ctx.wait_gate(question, answer_schema=c.answer_schema)
    output = {"decision": d.decision, "by": d.by, "note": d.note, "answer": d.answer}
    return NodeResult(output, route=[d.decision])


async def run_router(ctx: NodeContext) -> NodeResult:
    c = ctx.node.config
    assert isinstance(c, RouterConfig)
    if c.condition is not None:
        try:
            value = evaluate(c.condition, ctx.inputs)
        except KirError as exc:
            raise NodeError(f"node {ctx.key!r} condition: {exc}") from None
        label = ("true" if value else "false") if isinstance(value, bool) else value
    else:
        assert c.model is not None
        labels = ", ".join(c.labels)
        prompt = _render(ctx, c.prompt, "prompt") if c.prompt else encode(ctx.inputs).decode()
        request = ModelRequest(
            c.model,
            [
                Message("system", f"Answer with exactly one of these labels: {labels}."),
                Message("user", prompt),
            ],
            max_tokens=16,
        )
        label = (await ctx.call_model(request)).content.strip()
    if label not in c.labels:
        if c.default is None:
            raise NodeError(
                f"node {ctx.key!r}: router chose {label!r}, which is not one of its labels "
                f"({', '.join(c.labels)}) and there is no default"
            )
        label = c.default
    return NodeResult(label, route=[label])


async def run_wait(ctx: NodeContext) -> NodeResult:
    c = ctx.node.config
    assert isinstance(c, WaitConfig)
    if c.signal is not None:
        return NodeResult(await ctx.wait_signal(c.signal))
    assert c.seconds is not None
    start = ctx.now()
    fired = await ctx.sleep_until(start + int(c.seconds * 1_000_000))
    return NodeResult({"started": start, "fired": fired})


HANDLERS: dict[str, Handler] = {
    "llm": run_llm,
    "agent": run_agent,
    "tool": run_tool,
    "code": run_code,
    "gate": run_gate,
    "router": run_router,
    "wait": run_wait,
}
