"""``@tool``: schema from the signature and docstring, flags, sync and async, validation."""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel

from dsl import Tool, ToolArgsInvalid, as_tool, tool
from dsl.tool import parse_docstring
from substrate.live import PythonTools
from substrate.ports import CallKey, ToolCall


class Order(BaseModel):
    sku: str
    qty: int = 1


@tool
def lookup(query: str, limit: int = 5, exact: bool = False) -> list[str]:
    """Look a term up in the glossary.

    Matches are case-insensitive.

    Args:
        query: the term.
        limit (int): at most this many
            entries.

    Returns:
        The entries.
    """
    return [query] * limit


@tool(requires_approval=True, idempotent=True, timeout=2.5, name="place-order")
async def place_order(order: Order, idempotency_key: str = "") -> dict[str, Any]:
    """Place an order."""
    return {"sku": order.sku, "qty": order.qty, "key": idempotency_key}


@dataclass
class Receipt:
    id: str
    total: float


@tool
def receipt(total: float) -> Receipt:
    """Make a receipt."""
    return Receipt("r-1", total)


def test_schema_comes_from_signature_and_docstring() -> None:
    assert isinstance(lookup, Tool)
    assert lookup.spec.name == "lookup"
    assert lookup.spec.description == (
        "Look a term up in the glossary.\n\nMatches are case-insensitive."
    )
    assert lookup.spec.args_schema == {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "query": {"type": "string", "description": "the term."},
            "limit": {"type": "integer", "default": 5, "description": "at most this many entries."},
            "exact": {"type": "boolean", "default": False},
        },
        "required": ["query"],
    }
    assert (lookup.spec.requires_approval, lookup.spec.idempotent, lookup.spec.timeout_s) == (
        False,
        False,
        None,
    )


def test_flags_and_name() -> None:
    spec = place_order.spec
    assert (spec.name, spec.requires_approval, spec.idempotent, spec.timeout_s) == (
        "place-order",
        True,
        True,
        2.5,
    )
    # The executor passes idempotency_key itself: it is not an argument of the model's.
    assert set(spec.args_schema["properties"]) == {"order"}
    assert spec.args_schema["properties"]["order"] == {"$ref": "#/$defs/Order"}
    assert "Order" in spec.args_schema["$defs"]
    assert repr(place_order) == "<tool 'place-order' (requires_approval, idempotent)>"


def test_the_decorated_function_stays_a_normal_function() -> None:
    assert lookup("tide", 2) == ["tide", "tide"]
    assert lookup(query="x", limit=1) == ["x"]
    assert lookup.__name__ == "lookup"
    assert lookup.__doc__ is not None
    assert lookup.__doc__.startswith("Look a term up")
    assert inspect.signature(lookup) == inspect.signature(lookup.fn)
    out = asyncio.run(place_order(Order(sku="a"), idempotency_key="k"))
    assert out == {"sku": "a", "qty": 1, "key": "k"}


def test_bound_validates_and_returns_json_values() -> None:
    call = lookup.bound()
    assert not inspect.iscoroutinefunction(call)
    assert call(query="x", limit="2") == ["x", "x"]  # lax: "2" is 2
    with pytest.raises(ToolArgsInvalid) as err:
        call(limit="many")
    assert str(err.value) == (
        "invalid arguments for tool 'lookup': query: Field required; "
        "limit: Input should be a valid integer, unable to parse string as an integer"
    )
    with pytest.raises(ToolArgsInvalid, match="other: Extra inputs are not permitted"):
        call(query="x", other=1)
    assert receipt.bound()(total=3) == {"id": "r-1", "total": 3.0}


def test_bound_async_tool_is_a_coroutine_function_and_gets_the_key() -> None:
    call = place_order.bound()
    assert inspect.iscoroutinefunction(call)
    assert "idempotency_key" in inspect.signature(call).parameters
    out = asyncio.run(call(order={"sku": "b", "qty": 2}, idempotency_key="abc"))
    assert out == {"sku": "b", "qty": 2, "key": "abc"}


def test_bound_tools_run_on_the_executor_tool_port() -> None:
    port = PythonTools({"lookup": lookup.bound(), "place-order": place_order.bound()})
    ok = asyncio.run(
        port.call(ToolCall("lookup", {"query": "q", "limit": 1}, "k0"), CallKey("n", 0))
    )
    assert (ok.value, ok.error) == (["q"], None)
    bad = asyncio.run(port.call(ToolCall("lookup", {"limit": 1}, "k1"), CallKey("n", 1)))
    assert bad.error is not None
    assert (bad.error.type, bad.error.message) == (
        "ToolArgsInvalid",
        "invalid arguments for tool 'lookup': query: Field required",
    )
    keyed = asyncio.run(
        port.call(ToolCall("place-order", {"order": {"sku": "z"}}, "key-1"), CallKey("n", 2))
    )
    assert keyed.value == {"sku": "z", "qty": 1, "key": "key-1"}


def test_parameter_names_that_shadow_basemodel_attributes() -> None:
    @tool
    def fmt(json: str, schema: int = 0, model_config: str = "") -> str:
        """Format."""
        return f"{json}{schema}{model_config}"

    assert list(fmt.spec.args_schema["properties"]) == ["json", "schema", "model_config"]
    assert fmt.bound()(json="a", schema=1) == "a1"


def test_unannotated_parameters_take_any_json() -> None:
    @tool(description="Echo it.")
    def echo(value):  # type: ignore[no-untyped-def]
        return value

    assert echo.spec.description == "Echo it."
    assert echo.spec.args_schema["properties"] == {"value": {}}
    assert echo.bound()(value=[1, {"a": None}]) == [1, {"a": None}]


def test_as_tool_keeps_tools_and_wraps_functions() -> None:
    assert as_tool(lookup) is lookup

    def plain(x: int) -> int:
        """Double x."""
        return 2 * x

    wrapped = as_tool(plain)
    assert wrapped.spec.name == "plain"
    assert wrapped(2) == 4


def test_parse_docstring_sections() -> None:
    text, args = parse_docstring(
        """Summary line
        continues here.

        Second paragraph.

        Arguments:
            a: first.
            b (list[int]): second,
                longer.

        Raises:
            ValueError: never.
        """
    )
    assert text == "Summary line continues here.\n\nSecond paragraph."
    assert args == {"a": "first.", "b": "second, longer."}
    assert parse_docstring("") == ("", {})
