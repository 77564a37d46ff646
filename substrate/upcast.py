"""Upcasters: lift a log written under an older event schema to the current one.

A log says which event schema wrote it in its header (``run.started``'s
``data.header.schema_version``). Reading an old log, :func:`upcast_log` works on the
raw lines, before anything is decoded into today's structs (which would refuse an
old field name):

1. it checks the *old* hash chain over the old bytes, so a damaged old log is
   reported as such and not laundered by re-sealing;
2. it lifts every event, as a plain dict, one version at a time through
   :data:`UPCASTERS` (``UPCASTERS[v]`` turns a version ``v`` event into a version
   ``v + 1`` one);
3. it sets the header's version to :data:`~substrate.events.SCHEMA_VERSION` and
   re-seals the chain over the new canonical bytes.

The result is the log the current code would have written, byte for byte, so a
lifted log is stored, replayed and compared like any other.

Version 0 is synthetic: it exists so that this path is exercised by the golden
corpus before a real schema change needs it. In schema 0, ``model.called`` data had
``cost`` where it now has ``cost_usd``, and ``node.completed`` data had ``result``
where it now has ``output``. :func:`downcast_to_v0` writes that old form (re-chained),
which is how the golden recorder produces its old-schema case.

>>> # lines, version = upcast_log(path.read_bytes().splitlines())
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec

from substrate.codec import decode, digest, encode
from substrate.errors import ChainBroken, DecodeError, LogCorrupt
from substrate.events import SCHEMA_VERSION, decode_event

__all__ = [
    "IMPLICIT_VERSION",
    "Upcaster",
    "UPCASTERS",
    "UnsupportedSchemaVersion",
    "log_version",
    "upcast_log",
    "downcast_to_v0",
]

#: The version of a log whose header does not name one. Header fields equal to their
#: default are not written, and the default was 1 when that began; a later schema
#: must therefore write its version explicitly (see ``test_upcast``'s tripwire).
IMPLICIT_VERSION: Final = 1

#: Lifts one raw event (a dict of plain JSON values) from version ``v`` to ``v + 1``.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UnsupportedSchemaVersion(LogCorrupt):
    """The log's header names an event schema this Foldline cannot lift."""

    def __init__(self, run_id: str, version: object) -> None:
        self.version = version
        reads = f"this Foldline reads event schema {min(UPCASTERS, default=SCHEMA_VERSION)}"
        reads += f"..{SCHEMA_VERSION}"
        newer = (
            isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION
        )
        why = f"written by a newer Foldline ({reads})" if newer else reads
        super().__init__(run_id, 0, f"event schema version {version!r}: {why}")


def _renamed(event: dict[str, Any], kind: str, old: str, new: str) -> dict[str, Any]:
    data = event.get("data")
    if event.get("kind") != kind or not isinstance(data, dict) or old not in data:
        return event
    data = dict(data)
    data[new] = data.pop(old)
    return {**event, "data": data}


def _v0_to_v1(event: dict[str, Any]) -> dict[str, Any]:
    event = _renamed(event, "model.called", "cost", "cost_usd")
    return _renamed(event, "node.completed", "result", "output")


def _v1_to_v0(event: dict[str, Any]) -> dict[str, Any]:
    event = _renamed(event, "model.called", "cost_usd", "cost")
    return _renamed(event, "node.completed", "output", "result")


#: ``UPCASTERS[v]`` lifts an event from schema ``v`` to ``v + 1``. Every version from
#: the oldest readable one up to ``SCHEMA_VERSION - 1`` has an entry.
UPCASTERS: dict[int, Upcaster] = {0: _v0_to_v1}

#: The inverse steps: ``_DOWNCASTERS[v]`` lowers an event from ``v + 1`` to ``v``.
_DOWNCASTERS: dict[int, Upcaster] = {0: _v1_to_v0}


class _Link(msgspec.Struct, frozen=True):
    # Just enough of an envelope, of any version, to check the chain.
    seq: int
    prev: str | None


_LINK: Final = msgspec.json.Decoder(_Link)


def _raw(line: bytes, run_id: str, seq: int) -> dict[str, Any]:
    try:
        value = decode(line)
    except DecodeError as exc:  # keep msgspec's message, name the seq
        raise LogCorrupt(run_id, seq, f"not a valid event ({exc})") from None
    if not isinstance(value, dict):
        raise LogCorrupt(run_id, seq, "not a valid event (not a JSON object)")
    return value


def _check_old_chain(lines: Sequence[bytes], run_id: str) -> None:
    prev: str | None = None
    for seq, line in enumerate(lines):
        try:
            link = _LINK.decode(line)
        except msgspec.DecodeError as exc:
            raise LogCorrupt(run_id, seq, f"not a valid event ({exc})") from None
        if link.seq != seq:
            raise ChainBroken(run_id, seq, f"expected seq {seq}, found seq {link.seq}")
        if link.prev != prev:
            raise ChainBroken(
                run_id, seq, f"prev is {link.prev!r} but the hash of the event before is {prev!r}"
            )
        prev = digest(line)


def log_version(first_line: bytes, *, run_id: str = "?") -> int:
    """The event schema version named by a log's first line (its header).

    A missing ``header`` or ``schema_version`` is :data:`IMPLICIT_VERSION`.

    Raises:
        LogCorrupt: the line is not an event, or not a ``run.started``.
        UnsupportedSchemaVersion: the version is not an integer.
    """
    event = _raw(first_line, run_id, 0)
    data = event.get("data")
    if event.get("kind") != "run.started" or not isinstance(data, dict):
        raise LogCorrupt(run_id, 0, f"a log begins with run.started, not {event.get('kind')!r}")
    header = data.get("header", {})
    version = header.get("schema_version", IMPLICIT_VERSION) if isinstance(header, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise UnsupportedSchemaVersion(run_id, version)
    return version


def _set_version(event: dict[str, Any], version: int) -> dict[str, Any]:
    data = dict(event["data"])
    header = data.get("header")
    data["header"] = {**(header if isinstance(header, dict) else {}), "schema_version": version}
    return {**event, "data": data}


def _reseal(
    events: Sequence[dict[str, Any]], canonical: Callable[[dict[str, Any], int], bytes]
) -> list[bytes]:
    lines: list[bytes] = []
    prev: str | None = None
    for seq, event in enumerate(events):
        body = canonical({**event, "prev": prev}, seq)
        lines.append(body)
        prev = digest(body)
    return lines


def upcast_log(lines: Sequence[bytes], *, run_id: str = "?") -> tuple[list[bytes], int]:
    """Lift a log's lines to the current event schema.

    Args:
        lines: the log's events, one canonical JSON document each, seq 0 first.
        run_id: named in errors.

    Returns:
        The lines as the current schema writes them (the input itself when it is
        already current), and the version the log was written with.

    Raises:
        ChainBroken: the old chain is broken (naming the first bad seq).
        UnsupportedSchemaVersion: the log is newer than this Foldline, or older than
            the oldest upcaster.
        LogCorrupt: a line is not an event, or a lifted event does not decode.
    """
    if not lines:
        return [], SCHEMA_VERSION
    # The version first: a newer log may not even have today's envelope.
    version = log_version(lines[0], run_id=run_id)
    if version > SCHEMA_VERSION or any(v not in UPCASTERS for v in range(version, SCHEMA_VERSION)):
        raise UnsupportedSchemaVersion(run_id, version)
    _check_old_chain(lines, run_id)
    if version == SCHEMA_VERSION:
        return list(lines), version
    events = [_raw(line, run_id, seq) for seq, line in enumerate(lines)]
    for v in range(version, SCHEMA_VERSION):
        events = [UPCASTERS[v](event) for event in events]
    events[0] = _set_version(events[0], SCHEMA_VERSION)

    def canonical(event: dict[str, Any], seq: int) -> bytes:
        # Through today's structs, so fields come out in definition order and
        # defaults are left out, exactly as a live run writes them.
        return encode(decode_event(encode(event), run_id=run_id, seq=seq))

    return _reseal(events, canonical), version


def downcast_to_v0(lines: Sequence[bytes], *, run_id: str = "?") -> list[bytes]:
    """Rewrite a current-schema log as schema 0 wrote it, re-chained (for goldens).

    Schema 0's lines are the events' plain JSON (sorted keys); the header says
    ``schema_version: 0``.

    Raises:
        ChainBroken, LogCorrupt: the input log is damaged.
        UnsupportedSchemaVersion: the input is not at the current schema version.
    """
    if not lines:
        return []
    _check_old_chain(lines, run_id)
    version = log_version(lines[0], run_id=run_id)
    if version != SCHEMA_VERSION:
        raise UnsupportedSchemaVersion(run_id, version)
    if any(v not in _DOWNCASTERS for v in range(SCHEMA_VERSION)):
        raise UnsupportedSchemaVersion(run_id, 0)
    events = [_raw(line, run_id, seq) for seq, line in enumerate(lines)]
    for v in reversed(range(SCHEMA_VERSION)):
        events = [_DOWNCASTERS[v](event) for event in events]
    events[0] = _set_version(events[0], 0)
    return _reseal(events, lambda event, _seq: encode(event))
