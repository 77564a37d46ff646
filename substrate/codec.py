"""The one canonical encoder, and hashing.

Everything Foldline records, hashes or compares becomes bytes here and nowhere
else: msgspec JSON with ``order="deterministic"`` (dict keys sorted, struct
fields in definition order, shortest round-trip floats), hashed with BLAKE2b-256.

>>> encode({"b": 1, "a": [1.5, None]})
b'{"a":[1.5,null],"b":1}'
>>> digest(b"") == hash_value(None) or len(digest(b"")) == 64
True

Non-finite floats are refused (msgspec would write ``null`` and the value would
change on the way back). To keep the common path fast the check is lazy: NaN and
infinities can only hide behind a ``null`` in the output, so only outputs that
contain ``null`` are walked. :func:`encode_finite` skips even that scan, for a value
whose parts were checked where they were made (the engine's ``node.started`` and
``node.completed`` events: ints, and a payload from :func:`~substrate.blobs.pack`).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Final, TypeVar, overload

import msgspec

from substrate.errors import CodecError, DecodeError, NonFiniteFloat

__all__ = [
    "ENCODER_NAME",
    "ENCODER_VERSION",
    "HASH_NAME",
    "encode",
    "encode_finite",
    "decode",
    "digest",
    "hash_value",
    "to_builtins",
    "check_finite",
]

T = TypeVar("T")

ENCODER_NAME: Final = "msgspec.json"
ENCODER_VERSION: Final[str] = msgspec.__version__
HASH_NAME: Final = "blake2b-256"

_ENCODER: Final = msgspec.json.Encoder(order="deterministic")
_DECODERS: dict[Any, msgspec.json.Decoder[Any]] = {}


def encode(value: Any) -> bytes:
    """Return the canonical bytes of ``value``.

    Raises:
        NonFiniteFloat: ``value`` holds NaN or an infinity (the path is named).
        CodecError: ``value`` holds something JSON cannot carry.
    """
    try:
        data = _ENCODER.encode(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode {type(value).__name__}: {exc}") from None
    if data.find(b"null") != -1:  # not `in`: bytes.__contains__ tries an int first
        check_finite(value)
    return data


def encode_finite(value: Any) -> bytes:
    """:func:`encode` of a value already known to hold no NaN or infinity: no scan.

    For a value whose parts were each checked where they were made (a payload from
    :func:`~substrate.blobs.pack` is), or decoded from JSON, which cannot carry them.

    Raises:
        CodecError: ``value`` holds something JSON cannot carry.
    """
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode {type(value).__name__}: {exc}") from None


def _decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    dec = _DECODERS.get(type_)
    if dec is None:
        dec = _DECODERS[type_] = msgspec.json.Decoder(type_)
    return dec


@overload
def decode(data: bytes | memoryview, type_: type[T]) -> T: ...
@overload
def decode(data: bytes | memoryview, type_: Any = ...) -> Any: ...
def decode(data: bytes | memoryview, type_: Any = Any) -> Any:
    """Decode canonical bytes into ``type_`` (plain JSON values when omitted).

    Raises:
        DecodeError: the bytes are not JSON, or do not fit ``type_``; msgspec's
            message, which carries the path (``at `$.data.seq```), is kept.
    """
    try:
        return _decoder(type_).decode(data)
    except msgspec.DecodeError as exc:
        raise DecodeError(str(exc)) from None


#: A fresh BLAKE2b-256 state: copying it is cheaper than parsing the constructor's
#: keyword arguments for every digest.
_NEW_HASH: Final = hashlib.blake2b(digest_size=32).copy


def digest(data: bytes | memoryview) -> str:
    """BLAKE2b-256 of ``data``, as 64 lowercase hex characters."""
    h = _NEW_HASH()
    h.update(data)
    return h.hexdigest()


def hash_value(value: Any) -> str:
    """The digest of ``value``'s canonical bytes."""
    return digest(encode(value))


def to_builtins(value: Any) -> Any:
    """``value`` as plain JSON-able builtins (structs become dicts)."""
    try:
        return msgspec.to_builtins(value, order="deterministic")
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot convert {type(value).__name__}: {exc}") from None


def check_finite(value: Any, path: str = "$") -> None:
    """Raise :class:`NonFiniteFloat` naming the first NaN or infinity in ``value``."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NonFiniteFloat(path, value)
    elif isinstance(value, dict):
        for k, v in value.items():
            check_finite(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple, set, frozenset)):
        for i, v in enumerate(value):
            check_finite(v, f"{path}[{i}]")
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            check_finite(getattr(value, name), f"{path}.{name}")
