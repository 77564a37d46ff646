from __future__ import annotations

import pytest

from substrate.blobs import DEFAULT_THRESHOLD, pack, unpack
from substrate.codec import digest, encode
from substrate.errors import BlobMissing, CodecError
from substrate.events import BlobRef, Inline
from substrate.stores.memory import MemoryStore


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
