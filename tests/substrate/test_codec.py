from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from substrate.codec import (
    ENCODER_NAME,
    ENCODER_VERSION,
    HASH_NAME,
    decode,
    digest,
    encode,
    encode_finite,
    hash_value,
)
from substrate.errors import CodecError, DecodeError, NonFiniteFloat
from tests.substrate.strategies import json_values, shuffled_dicts


@given(json_values, st.data())
def test_equal_values_encode_identically_whatever_the_insertion_order(
    value: Any, data: st.DataObject
) -> None:
    other = shuffled_dicts(value, data)
    assert other == value
    assert encode(other) == encode(value)
    assert hash_value(other) == hash_value(value)


@given(json_values)
def test_json_values_round_trip(value: Any) -> None:
    assert decode(encode(value)) == value


@given(json_values)
def test_encode_finite_writes_the_canonical_bytes(value: Any) -> None:
    assert encode_finite(value) == encode(value)


def test_encode_finite_trusts_its_caller_and_still_refuses_what_json_cannot_carry() -> None:
    # No scan: the caller vouches that the value holds no NaN (what encode refuses).
    assert encode_finite({"x": math.nan}) == b'{"x":null}'
    with pytest.raises(CodecError, match="cannot encode"):
        encode_finite({"x": object()})


def test_keys_are_sorted_and_output_is_compact() -> None:
    assert encode({"b": 1, "a": {"d": [1.5, None], "c": True}}) == (
        b'{"a":{"c":true,"d":[1.5,null]},"b":1}'
    )


class Point(msgspec.Struct, frozen=True):
    x: float
    label: str | None = None


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (math.nan, "$"),
        ({"a": [1.0, math.inf]}, "$.a[1]"),
        ([{"ok": None, "score": -math.inf}], "$[0].score"),
        (Point(math.nan), "$.x"),
    ],
)
def test_non_finite_floats_are_refused_with_their_path(value: Any, path: str) -> None:
    with pytest.raises(NonFiniteFloat) as info:
        encode(value)
    assert info.value.path == path
    assert str(info.value).startswith(
        f"cannot encode non-finite float {info.value.value!r} at {path}:"
    )


def test_none_alone_is_fine() -> None:
    assert encode({"a": None}) == b'{"a":null}'


def test_unencodable_values_raise_codec_error() -> None:
    with pytest.raises(CodecError, match="cannot encode"):
        encode({"a": object()})
    with pytest.raises(CodecError, match="cannot encode"):
        encode({1.5: "float keys have no JSON spelling"})


def test_big_ints_round_trip() -> None:
    assert decode(encode(2**200)) == 2**200


def test_decode_errors_are_ours_and_keep_the_path() -> None:
    with pytest.raises(DecodeError, match=r"\$\.x"):
        decode(b'{"x": "nope"}', Point)
    with pytest.raises(DecodeError):
        decode(b"{not json")


def test_hash_is_blake2b_256_hex() -> None:
    import hashlib

    assert digest(b"abc") == hashlib.blake2b(b"abc", digest_size=32).hexdigest()
    assert len(hash_value({"a": 1})) == 64
    assert (ENCODER_NAME, HASH_NAME) == ("msgspec.json", "blake2b-256")
    assert msgspec.__version__ == ENCODER_VERSION
