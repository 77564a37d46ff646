"""The error tree of Foldline's ground floor.

Every error Foldline raises derives from :class:`FoldlineError`. Each package
(`kir`, `executor`, `dsl`) has its own ``errors`` module that subclasses it; this
one holds the root and the errors of the substrate: the codec, the event log and
the stores. Messages always say *where*: the run, the seq, the kind, the path.
Driver errors (sqlite3, psycopg) are translated into this tree at the store
boundary and never escape as themselves.
"""

from __future__ import annotations

__all__ = [
    "FoldlineError",
    "CodecError",
    "NonFiniteFloat",
    "DecodeError",
    "LogCorrupt",
    "UnknownEventKind",
    "ChainBroken",
    "StoreError",
    "ConcurrentAppend",
    "InvalidAppend",
    "BlobMissing",
    "ReplayMiss",
    "ScriptExhausted",
]


class FoldlineError(Exception):
    """Root of every error Foldline raises on purpose."""


class CodecError(FoldlineError):
    """A value cannot be turned into canonical bytes, or bytes into a value."""


class NonFiniteFloat(CodecError):
    """NaN or an infinity was about to be recorded.

    JSON has no spelling for them and msgspec would write ``null``, so the value
    would silently change on the way back. The message gives the path of the first
    offending float, e.g. ``$.data.output.score``.
    """

    def __init__(self, path: str, value: float) -> None:
        self.path = path
        self.value = value
        super().__init__(
            f"cannot encode non-finite float {value!r} at {path}: "
            "JSON has no NaN or Infinity; record it as a string or None instead"
        )


class DecodeError(CodecError):
    """Bytes are not valid canonical JSON for the expected type."""


class LogCorrupt(FoldlineError):
    """The stored log of a run does not read back as it was written."""

    def __init__(self, run_id: str, seq: int, reason: str) -> None:
        self.run_id = run_id
        self.seq = seq
        self.reason = reason
        super().__init__(f"log of run {run_id!r} is corrupt at seq {seq}: {reason}")


class UnknownEventKind(LogCorrupt):
    """An event's ``kind`` names no event type this version of Foldline knows."""

    def __init__(self, run_id: str, seq: int, kind: str) -> None:
        self.kind = kind
        super().__init__(
            run_id,
            seq,
            f"unknown event kind {kind!r} (written by a newer Foldline, or not a Foldline log)",
        )


class ChainBroken(LogCorrupt):
    """``verify_chain`` found an event whose ``prev`` is not its predecessor's hash."""


class StoreError(FoldlineError):
    """The store could not be opened, read or written (the driver's error is chained)."""


class ConcurrentAppend(StoreError):
    """Another writer appended to the run first; nothing of this append was written.

    The caller re-reads the log from ``actual``, folds what it missed and tries again.
    """

    def __init__(self, run_id: str, expected: int, actual: int | None) -> None:
        self.run_id = run_id
        self.expected = expected
        self.actual = actual
        where = "" if actual is None else f"; the log now has {actual} events"
        super().__init__(
            f"concurrent append to run {run_id!r}: expected to write at seq {expected}{where}"
        )


class InvalidAppend(StoreError):
    """The events handed to ``append`` are not a valid continuation of the log.

    This is a caller bug, not a race: seqs that do not count up from
    ``expected_seq``, or a ``prev`` that is not the hash of the event before.
    """


class BlobMissing(StoreError):
    """An event refers to a blob that the store does not hold."""

    def __init__(self, digest: str) -> None:
        self.digest = digest
        super().__init__(f"blob {digest} is not in the store")


class ReplayMiss(FoldlineError):
    """A replay port was asked for an answer the recorded log does not hold.

    On replay live ports are forbidden, so this means the code under replay made
    a call the recorded run did not make.
    """


class ScriptExhausted(FoldlineError):
    """A scripted (mock) port ran out of scripted answers."""
