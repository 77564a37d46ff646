"""Content-addressed payloads: large values are stored once and referenced by hash.

An event carries a :data:`~substrate.events.Payload`: the value itself
(:class:`~substrate.events.Inline`) when its canonical bytes are at most
``threshold`` bytes, else a :class:`~substrate.events.BlobRef` to the blob store.
Blobs are keyed by the digest of their bytes, so the same 20 KiB prompt sent in
50 steps is stored once.

:func:`pack` does not write: it adds the blob to a ``pending`` mapping that the
caller hands to ``EventStore.append(..., blobs=pending)``, so a blob lands in the
same transaction as the first event that refers to it and a crash can never
leave an event pointing at a missing blob.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any, Final, Protocol

from substrate.codec import decode, digest, encode
from substrate.errors import CodecError
from substrate.events import BlobRef, Inline, Payload

__all__ = ["DEFAULT_THRESHOLD", "BlobStore", "pack", "unpack"]

#: Payloads whose canonical bytes exceed this many bytes go to the blob store.
DEFAULT_THRESHOLD: Final = 4096


class BlobStore(Protocol):
    """Where blobs live (every event store is one)."""

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` (idempotently) and return its digest."""
        ...

    def get_blob(self, digest: str) -> bytes:
        """Return the bytes stored under ``digest``; raise ``BlobMissing`` if absent."""
        ...

    def has_blob(self, digest: str) -> bool:
        """True if the store holds ``digest``."""
        ...


#: The ints JSON carries here (msgspec's range), and the longest of their encodings.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_SCALAR_MAX_BYTES = len(str(_INT_MIN))


def pack(
    value: Any, pending: MutableMapping[str, bytes], threshold: int = DEFAULT_THRESHOLD
) -> Payload:
    """Turn ``value`` into a payload; a large one is added to ``pending`` by digest.

    The inline value is the canonical form (what a reader will decode), so
    ``unpack(pack(v))`` equals what replay will see, not merely ``v``.
    """
    kind = type(value)
    scalar = value is None or kind is bool or (kind is int and _INT_MIN <= value <= _INT_MAX)
    if scalar and threshold >= _SCALAR_MAX_BYTES:  # these are their own canonical form
        return Inline(value)
    body = encode(value)
    if len(body) <= threshold:
        # A str decodes to itself; anything else to its canonical form (tuples become
        # lists, floats are checked, struct fields are named).
        return Inline(value if kind is str else decode(body))
    key = digest(body)
    pending[key] = body
    return BlobRef(key, len(body))


def unpack(payload: Payload, get_blob: Callable[[str], bytes]) -> Any:
    """Return the value a payload carries, reading the blob store if needed.

    Raises:
        BlobMissing: the referenced blob is absent.
        CodecError: the blob's bytes do not match its digest.
    """
    if isinstance(payload, Inline):
        return payload.value
    body = get_blob(payload.digest)
    if digest(body) != payload.digest:
        raise CodecError(f"blob {payload.digest} is corrupt: its bytes hash differently")
    return decode(body)
