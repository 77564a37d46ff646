"""Hypothesis strategies for recorded values, derived from the structs' own fields.

``for_type`` reads a msgspec Struct's annotations, so a new event kind or field is
covered by the property tests without anyone writing a strategy for it.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import msgspec
from hypothesis import strategies as st

# JSON values as they come back from decoding: finite floats, int64 ints, str keys.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def for_type(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy producing values of annotation ``tp`` that survive a JSON round trip."""
    if tp is Any:
        return json_values
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        kwargs = {f.name: for_type(f.type) for f in msgspec.structs.fields(tp)}
        return st.builds(tp, **kwargs)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(for_type(a) for a in args))
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin is list:
        return st.lists(for_type(args[0]), max_size=4)
    if origin is tuple:
        return st.tuples(*(for_type(a) for a in args))
    if origin is dict:
        return st.dictionaries(for_type(args[0]), for_type(args[1]), max_size=4)
    if tp is type(None):
        return st.none()
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(min_value=-(2**63), max_value=2**63 - 1)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp is str:
        return st.text(max_size=30)
    raise NotImplementedError(f"no strategy for {tp!r}")


def shuffled_dicts(value: Any, data: st.DataObject) -> Any:
    """The same value with every dict rebuilt in a random insertion order."""
    if isinstance(value, dict):
        keys = data.draw(st.permutations(list(value)))
        return {k: shuffled_dicts(value[k], data) for k in keys}
    if isinstance(value, list):
        return [shuffled_dicts(v, data) for v in value]
    return value
