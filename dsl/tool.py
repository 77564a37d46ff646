"""``@tool``: a Python function as a KIR tool, its argument schema read from its signature.

::

    @tool(requires_approval=True)
    def scale(deployment: str, replicas: int = 1) -> str:
        \"\"\"Scale a deployment.

        Args:
            deployment: the deployment's name.
            replicas: how many pods to run.
        \"\"\"
        ...

    scale.spec        # kir.ToolSpec(name="scale", description="Scale a deployment.", ...)
    scale("web", 3)   # still the plain function

The description is the docstring's prose, everything before its first section
(``Args:``, ``Returns:``...); the ``Args:`` entries (Google style) describe the
parameters. The argument schema is the JSON Schema pydantic derives from the
annotations and defaults (an unannotated parameter takes any JSON value); a parameter
named ``idempotency_key`` is left out of it, since the executor passes the call's key.

Mistakes raise :class:`~dsl.errors.DslError` naming the tool: no docstring (and no
``description=``), an ``Args:`` entry for a parameter that does not exist, a ``*args``,
``**kwargs`` or positional-only parameter (tools are called with keyword arguments
decoded from JSON), or an annotation pydantic cannot describe.

The executor calls :meth:`Tool.bound`, not the function itself: it validates the JSON
arguments against the schema with pydantic's lax rules (a dict for a pydantic model
parameter becomes the model, ``"3"`` for an ``int`` becomes ``3``, ``"three"`` is refused
and the model is told why) and turns the result into JSON values
(``pydantic_core.to_jsonable_python``), so a tool may return models and dataclasses.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Final, Generic, ParamSpec, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import to_jsonable_python

from dsl.errors import DslError, ToolArgsInvalid
from kir.errors import GraphInvalid
from kir.schema import ToolSpec

__all__ = ["Tool", "tool", "as_tool", "parse_docstring"]

P = ParamSpec("P")
R = TypeVar("R")

#: Parameters the executor fills in itself; they are not part of the argument schema.
PASSED_BY_EXECUTOR: Final = frozenset({"idempotency_key"})

_TOOL_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_SECTION: Final = re.compile(
    r"(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters|"
    r"Returns|Return|Yields|Yield|Raises|Examples?|Notes?|Attributes|See Also|Warnings?|"
    r"Todo|References)\s*:\s*\Z"
)
_ARG_SECTIONS: Final = frozenset({"Args", "Arguments", "Parameters", "Params"})
_ARG_LINE: Final = re.compile(r"\*{0,2}([A-Za-z_][A-Za-z0-9_]*)\s*(?:\([^)]*\))?\s*:\s*(.*)\Z")


class Tool(Generic[P, R]):
    """A function with the :class:`kir.ToolSpec` that declares it to a graph.

    Calling the tool calls the function (sync or async, unchanged).

    Attributes:
        fn: the function.
        spec: its KIR declaration: name, description, argument schema, flags.
    """

    # Copied from the function by functools.update_wrapper, as for any wrapper.
    __name__: str
    __qualname__: str

    def __init__(self, fn: Callable[P, R], spec: ToolSpec, args_model: type[BaseModel]) -> None:
        self.fn = fn
        self.spec = spec
        self._args_model = args_model
        functools.update_wrapper(self, fn)

    @property
    def name(self) -> str:
        """The name graphs and models call the tool by."""
        return self.spec.name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        flags = [f for f in ("requires_approval", "idempotent") if getattr(self.spec, f)]
        shown = f" ({', '.join(flags)})" if flags else ""
        return f"<tool {self.name!r}{shown}>"

    def validate(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the function, from JSON ``args``.

        Only the arguments given are returned: the function's own defaults apply to the
        others.

        Raises:
            ToolArgsInvalid: ``args`` do not fit the argument schema (the message lists
                each problem with its argument).
        """
        try:
            parsed = self._args_model.model_validate(dict(args))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'args'}: {e['msg']}" for e in exc.errors()
            )
            raise ToolArgsInvalid(f"invalid arguments for tool {self.name!r}: {problems}") from None
        fields = type(parsed).model_fields
        return {fields[f].alias or f: getattr(parsed, f) for f in parsed.model_fields_set}

    def bound(self) -> Callable[..., Any]:
        """The callable the executor's tool port runs: validates, calls, returns JSON values.

        It is a coroutine function exactly when the tool's function is one, and its
        signature is the function's (so an ``idempotency_key`` parameter is still seen).
        """
        fn: Callable[..., Any] = self.fn

        def split(kwargs: dict[str, Any]) -> dict[str, Any]:
            passed = {k: kwargs.pop(k) for k in PASSED_BY_EXECUTOR if k in kwargs}
            return {**self.validate(kwargs), **passed}

        if inspect.iscoroutinefunction(fn):

            async def call_async(**kwargs: Any) -> Any:
                return to_jsonable_python(await fn(**split(kwargs)))

            return functools.wraps(fn)(call_async)

        def call(**kwargs: Any) -> Any:
            return to_jsonable_python(fn(**split(kwargs)))

        return functools.wraps(fn)(call)


@overload
def tool(
    fn: Callable[P, R],
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: bool = False,
    idempotent: bool = False,
    timeout: float | None = None,
) -> Tool[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: bool = False,
    idempotent: bool = False,
    timeout: float | None = None,
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...


def tool(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: bool = False,
    idempotent: bool = False,
    timeout: float | None = None,
) -> Tool[P, R] | Callable[[Callable[P, R]], Tool[P, R]]:
    """Declare a function as a tool: ``@tool``, ``@tool(...)``, or ``tool(fn, ...)``.

    Args:
        fn: the function (``@tool`` without parentheses, or ``tool(fn, ...)``).
        name: what models call it; defaults to the function's name.
        description: what models are told it does; defaults to the docstring's prose.
        requires_approval: a human approves each call, with its exact arguments, before
            it runs.
        idempotent: running a call twice does no harm, so a call cut off by a crash is
            simply re-run (otherwise a human is asked whether it happened).
        timeout: seconds one call may take.

    Raises:
        DslError: the function cannot be described (see the module docstring).
    """

    def make(f: Callable[P, R]) -> Tool[P, R]:
        return _make_tool(
            f,
            name=name,
            description=description,
            requires_approval=requires_approval,
            idempotent=idempotent,
            timeout=timeout,
        )

    return make if fn is None else make(fn)


def as_tool(obj: Tool[..., Any] | Callable[..., Any]) -> Tool[..., Any]:
    """``obj`` if it is a :class:`Tool`, else ``tool(obj)``."""
    return obj if isinstance(obj, Tool) else tool(obj)


def _make_tool(
    fn: Callable[P, R],
    *,
    name: str | None,
    description: str | None,
    requires_approval: bool,
    idempotent: bool,
    timeout: float | None,
) -> Tool[P, R]:
    if not callable(fn):
        raise DslError(f"@tool decorates a function, not {fn!r}")
    tool_name = name if name is not None else getattr(fn, "__name__", "")
    if not _TOOL_NAME.match(tool_name):
        raise DslError(
            f"tool name {tool_name!r} is not valid: use letters, digits, _ . and -, "
            "not starting with a digit (pass @tool(name=...))"
        )
    what = f"tool {tool_name!r}"
    doc = inspect.getdoc(fn)
    prose, arg_docs = parse_docstring(doc or "", what=what)
    if description is None:
        if not doc:
            raise DslError(
                f"{what} has no docstring: its first line is the description the model "
                "sees (or pass @tool(description=...))"
            )
        description = prose
    args_model, schema = _args_schema(fn, arg_docs, what)
    if timeout is not None and not timeout > 0:
        raise DslError(f"{what}: timeout must be a positive number of seconds, not {timeout!r}")
    try:
        spec = ToolSpec(
            name=tool_name,
            description=description,
            args_schema=schema,
            requires_approval=requires_approval,
            idempotent=idempotent,
            timeout_s=timeout,
        )
    except GraphInvalid as exc:  # pragma: no cover - every field is checked above
        raise DslError(f"{what}: {exc}") from None
    return Tool(fn, spec, args_model)


def parse_docstring(doc: str, *, what: str = "docstring") -> tuple[str, dict[str, str]]:
    """The prose of a Google-style docstring, and its ``Args:`` descriptions by name.

    The prose is everything before the first section header, its paragraphs each on one
    line. An ``Args:`` entry is ``name: text`` or ``name (type): text``; deeper-indented
    lines continue it.

    Raises:
        DslError: an ``Args:`` line is not an entry (``what`` names the owner).
    """
    lines = inspect.cleandoc(doc).splitlines() if doc else []
    prose: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    for line in lines:
        header = _SECTION.match(line)
        if header:
            sections.append((header.group(1), []))
        elif sections:
            sections[-1][1].append(line)
        else:
            prose.append(line)
    paragraphs = "\n".join(prose).split("\n\n")
    text = "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
    args: dict[str, str] = {}
    for title, body in sections:
        if title in _ARG_SECTIONS:
            args.update(_arg_entries(body, what))
    return text, args


def _arg_entries(body: list[str], what: str) -> dict[str, str]:
    filled = [line for line in body if line.strip()]
    if not filled:
        return {}
    indent = min(len(line) - len(line.lstrip()) for line in filled)
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in filled:
        depth = len(line) - len(line.lstrip())
        if depth > indent and current is not None:
            current.append(line.strip())
            continue
        m = _ARG_LINE.match(line.strip())
        if m is None:
            raise DslError(
                f"{what}: cannot read the docstring's Args line {line.strip()!r}; "
                "write 'name: description'"
            )
        current = entries.setdefault(m.group(1), [])
        if m.group(2):
            current.append(m.group(2))
    return {k: " ".join(v) for k, v in entries.items()}


class _NoFieldTitles(GenerateJsonSchema):
    """Leaves out the ``title`` pydantic derives from each field name: noise to a model."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _args_schema(
    fn: Callable[..., Any], docs: dict[str, str], what: str
) -> tuple[type[BaseModel], dict[str, Any]]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise DslError(f"{what}: cannot read the function's signature: {exc}") from None
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise DslError(f"{what}: cannot resolve the annotations: {exc}") from None
    params = [p for p in sig.parameters.values() if p.name not in PASSED_BY_EXECUTOR]
    names = [p.name for p in params]
    for doc_name in docs:
        if doc_name not in names and doc_name not in PASSED_BY_EXECUTOR:
            raise DslError(
                f"{what}: the docstring documents {doc_name!r}, which is not a parameter "
                f"(parameters: {', '.join(names) or 'none'})"
            )
    # Fields are named f0, f1... and aliased to the parameters, so that a parameter may be
    # called anything (``json``, ``schema``, ``_x``) without clashing with BaseModel.
    fields: dict[str, Any] = {}
    for i, p in enumerate(params):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            star = "*" if p.kind is p.VAR_POSITIONAL else "**"
            raise DslError(
                f"{what}: parameter {star}{p.name} cannot be described by a JSON Schema; "
                "tools take named arguments only"
            )
        if p.kind is p.POSITIONAL_ONLY:
            raise DslError(
                f"{what}: parameter {p.name!r} is positional-only; tools are called with "
                "keyword arguments"
            )
        default = ... if p.default is p.empty else p.default
        fields[f"f{i}"] = (
            hints.get(p.name, Any),
            Field(default, alias=p.name, description=docs.get(p.name)),
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model: type[BaseModel] = create_model(
                f"{what}_args",
                __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
                **fields,
            )
            schema = model.model_json_schema(schema_generator=_NoFieldTitles)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DslError(f"{what}: cannot derive a JSON Schema of its arguments: {first}") from None
    schema.pop("title", None)
    return model, schema
