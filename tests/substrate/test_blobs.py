from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from substrate.blobs import DEFAULT_THRESHOLD, pack, unpack
from substrate.codec import decode, digest, encode
from substrate.errors import BlobMissing, CodecError
from substrate.events import BlobRef, Inline
from substrate.stores.memory import MemoryStore
from tests.substrate.strategies import json_values


def test_small_values_stay_inline_in_canonical_form() -> None:
    pending: dict[str, bytes] = {}
    p = pack({"b": (1, 2), "a": "x"}, pending)
    assert p == Inline({"a": "x", "b": [1, 2]})  # tuples read back as lists: store what replays
    assert pending == {}


def test_threshold_is_4kib_by_default() -> None:
    assert DEFAULT_THRESHOLD == 4096
    just_under = "x" * (4096 - 2)  # the two quotes make it exactly 4096 bytes
    over = "x" * 4095
    pending: dict[str, bytes] = {}
    assert isinstance(pack(just_under, pending), Inline)
    ref = pack(over, pending)
    assert ref == BlobRef(digest(encode(over)), 4097)
    assert pending == {ref.digest: encode(over)}  # type: ignore[union-attr]


def test_same_payload_packs_to_the_same_ref() -> None:
    pending: dict[str, bytes] = {}
    big = {"prompt": "word " * 2000}
    refs = {pack(big, pending) for _ in range(50)}
    assert len(refs) == 1
    assert len(pending) == 1


def test_unpack_reads_the_blob_and_checks_it() -> None:
    store = MemoryStore()
    pending: dict[str, bytes] = {}
    big = ["data"] * 2000
    ref = pack(big, pending, threshold=100)
    for body in pending.values():
        store.put_blob(body)
    assert unpack(ref, store.get_blob) == big
    assert unpack(Inline(3), store.get_blob) == 3
    with pytest.raises(BlobMissing):
        unpack(BlobRef("0" * 64, 10), store.get_blob)
    assert isinstance(ref, BlobRef)
    with pytest.raises(CodecError, match=f"blob {ref.digest} is corrupt"):
        unpack(ref, lambda key: b'["tampered"]')


@settings(max_examples=200, deadline=None)
@given(
    value=st.one_of(
        json_values,
        st.integers(-(2**63), 2**64 - 1),
        st.tuples(st.integers(), st.text()),
    ),
    threshold=st.sampled_from([0, 1, 5, 19, 20, 21, 64, DEFAULT_THRESHOLD]),
)
def test_pack_is_the_canonical_form_or_a_blob_at_any_threshold(value: Any, threshold: int) -> None:
    """Scalars and strings skip the decode: what they pack to is still exactly what a
    reader decodes from the canonical bytes, on either side of the threshold."""
    body = encode(value)
    pending: dict[str, bytes] = {}
    payload = pack(value, pending, threshold)
    if len(body) <= threshold:
        assert payload == Inline(decode(body))
        assert encode(payload.value) == body  # type: ignore[union-attr]
        assert pending == {}
    else:
        assert payload == BlobRef(digest(body), len(body))
        assert pending == {digest(body): body}
