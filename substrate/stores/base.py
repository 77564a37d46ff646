"""The ``EventStore`` contract, and the checks every store shares.

A store keeps, per run, a contiguous list of events ``0..n-1``. ``append`` is
atomic: all of a batch lands or none of it. ``expected_seq`` is the fence: it
must equal the run's current length, else :class:`ConcurrentAppend` is raised and
nothing is written (another writer got there first; re-read and carry on).

Each stored row keeps the event's canonical bytes and their hash. ``read``
re-hashes every row, decodes it and checks the chain, so a flipped byte anywhere
— in the first event or the last — raises :class:`LogCorrupt` naming the run and
the seq, never a driver or decoder traceback.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Literal, Protocol, runtime_checkable

import msgspec

from substrate.codec import digest, encode
from substrate.errors import InvalidAppend, LogCorrupt, UnknownEventKind
from substrate.events import Event, Head, RunStarted, decode_event, decode_events

__all__ = [
    "Durability",
    "RunInfo",
    "EventStore",
    "Row",
    "prepare_rows",
    "check_link",
    "run_info",
    "hash_bodies",
    "rows_to_events",
    "verify_bodies",
]

#: ``process``: a committed append survives the process being killed (no fsync per
#: commit). ``strict``: it survives power loss too (fsync per commit).
Durability = Literal["process", "strict"]

#: One stored event: (seq, canonical bytes, hash of those bytes).
Row = tuple[int, bytes, str]


class RunInfo(msgspec.Struct, frozen=True):
    """What a store knows about a run without folding its log."""

    run_id: str
    #: ``at`` of the run's first event (µs).
    created_at: int
    #: Graph hash from ``run.started``, if the first event is one.
    graph_hash: str | None
    #: Number of events in the log.
    length: int


@runtime_checkable
class EventStore(Protocol):
    """Append-only storage of run logs, graphs and blobs."""

    durability: Durability

    def append(
        self,
        run_id: str,
        expected_seq: int,
        events: Sequence[Event],
        *,
        bodies: Sequence[bytes] | None = None,
        hashes: Sequence[str] | None = None,
        blobs: Mapping[str, bytes] | None = None,
        durable: bool = False,
    ) -> Head:
        """Atomically append ``events`` at ``expected_seq``; return the new head.

        Args:
            bodies: the events' canonical bytes when the caller has them already
                (from :func:`substrate.events.seal`), to skip encoding again.
            hashes: the digests of ``bodies`` when the caller has them too (``seal``
                computes them), to skip hashing again. Taken as given: a wrong one
                makes the log read back as corrupt (reads verify every hash).
            blobs: blobs (digest -> bytes) written in the same transaction.
            durable: force this commit to stable storage before returning, even
                under ``process`` durability (used before an external side effect).

        Raises:
            ConcurrentAppend: the log's length is not ``expected_seq``.
            InvalidAppend: the events do not continue the log (seqs or chain).
        """
        ...

    def read(self, run_id: str, from_seq: int = 0) -> list[Event]:
        """The events of ``run_id`` from ``from_seq`` on, verified (empty if none)."""
        ...

    def read_chunks(self, run_id: str, from_seq: int = 0) -> Iterator[list[Event]]:
        """What :meth:`read` returns, a verified chunk at a time, in order.

        For folding a long log as it is read: each chunk is folded while its events are
        still in the CPU's caches, and freed before the next is read. The events are those
        of the log when the iteration begins (later appends are not read). A chunk is
        verified before it is yielded, so a fault raises once the chunks before it have
        been yielded. The store may be used between chunks.
        """
        ...

    def head(self, run_id: str) -> Head:
        """Next seq and last hash of ``run_id`` (``Head()`` for an unknown run)."""
        ...

    def list_runs(self) -> list[RunInfo]:
        """Every run in the store, oldest first."""
        ...

    def put_graph(self, graph_hash: str, body: bytes) -> None:
        """Store a compiled graph's canonical bytes under its hash (idempotent)."""
        ...

    def get_graph(self, graph_hash: str) -> bytes:
        """The graph stored under ``graph_hash``; ``StoreError`` if absent."""
        ...

    def put_blob(self, data: bytes) -> str:
        """Store a blob (idempotent) and return its digest."""
        ...

    def get_blob(self, digest: str) -> bytes:
        """A blob by digest; ``BlobMissing`` if absent."""
        ...

    def has_blob(self, digest: str) -> bool:
        """True if the store holds the blob."""
        ...

    def sync(self) -> None:
        """Force every committed append to stable storage."""
        ...

    def close(self) -> None:
        """Release the store's resources."""
        ...


def prepare_rows(
    run_id: str,
    expected_seq: int,
    events: Sequence[Event],
    bodies: Sequence[bytes] | None,
    hashes: Sequence[str] | None = None,
) -> list[Row]:
    """Encode and hash a batch, checking it is a chain starting at ``expected_seq``.

    ``bodies`` and ``hashes``, when given, are the events' bytes and their digests. The
    link from the batch to the stored log (``events[0].prev``) is checked by the store
    against its head.
    """
    if bodies is not None and len(bodies) != len(events):
        raise InvalidAppend(f"run {run_id!r}: {len(events)} events but {len(bodies)} bodies")
    if hashes is not None and (bodies is None or len(hashes) != len(events)):
        raise InvalidAppend(
            f"run {run_id!r}: hashes must come with the bodies, one per event "
            f"({len(events)} events, {len(hashes)} hashes)"
        )
    if len(events) == 1:  # the common case: one event per commit, kept lean
        ev = events[0]
        if ev.seq == expected_seq and ev.kind == ev.data.KIND:
            body = encode(ev) if bodies is None else bodies[0]
            return [(expected_seq, body, digest(body) if hashes is None else hashes[0])]
    rows: list[Row] = []
    prev_hash: str | None = None
    for i, ev in enumerate(events):
        seq = expected_seq + i
        if ev.seq != seq:
            raise InvalidAppend(
                f"run {run_id!r}: event {i} of the batch has seq {ev.seq}, expected {seq}"
            )
        if ev.kind != ev.data.KIND:
            raise InvalidAppend(
                f"run {run_id!r} seq {seq}: kind {ev.kind!r} does not match "
                f"its data ({type(ev.data).__name__} is {ev.data.KIND!r})"
            )
        if i and ev.prev != prev_hash:
            raise InvalidAppend(f"run {run_id!r} seq {seq}: prev is not the hash of seq {seq - 1}")
        body = encode(ev) if bodies is None else bodies[i]
        prev_hash = digest(body) if hashes is None else hashes[i]
        rows.append((seq, body, prev_hash))
    return rows


def check_link(run_id: str, head_hash: str | None, events: Sequence[Event]) -> None:
    """The batch's first event must point at the stored head."""
    if events and events[0].prev != head_hash:
        raise InvalidAppend(
            f"run {run_id!r} seq {events[0].seq}: prev {events[0].prev!r} is not the hash of "
            f"the last stored event ({head_hash!r})"
        )


def run_info(run_id: str, first: Event, length: int) -> RunInfo:
    """Describe a run from its first event."""
    graph_hash = first.data.graph_hash if isinstance(first.data, RunStarted) else None
    return RunInfo(run_id, first.at, graph_hash, length)


def hash_bodies(bodies: Iterable[bytes | memoryview]) -> list[str]:
    """``[digest(b) for b in bodies]``, cheaper: one hasher is set up and copied per body."""
    base = hashlib.blake2b(digest_size=32)  # what substrate.codec.digest computes
    copy = base.copy
    out: list[str] = []
    append = out.append
    for body in bodies:
        h = copy()
        h.update(body)
        append(h.hexdigest())
    return out


def rows_to_events(
    run_id: str, rows: Iterable[tuple[int, bytes, str]], from_seq: int, prev: str | None
) -> list[Event]:
    """Verify and decode stored rows ``from_seq..``; ``prev`` is the hash before them.

    Every row is checked: its seq, its bytes against its hash, its decoding, and its
    ``prev`` against the hash of the row before. The checks run in bulk; when one fails,
    the rows are checked again one by one, which raises the error a row-by-row reader
    would have raised first.

    Raises:
        LogCorrupt: a row's bytes do not match their hash, a seq is missing, the
            chain is broken, or the bytes are not an event of a known kind.
    """
    rows = rows if isinstance(rows, list) else list(rows)
    if not rows:
        return []
    seqs, bodies, hashes = zip(*rows, strict=True)
    if seqs == tuple(range(from_seq, from_seq + len(rows))):
        events = verify_bodies(run_id, bodies, hashes, from_seq, prev)
        if events is not None:
            return events
    return _rows_to_events_one_by_one(run_id, rows, from_seq, prev)


def verify_bodies(
    run_id: str,
    bodies: Sequence[bytes],
    hashes: Sequence[str],
    from_seq: int,
    prev: str | None,
) -> list[Event] | None:
    """The events stored as ``bodies`` (seqs ``from_seq..``), if they pass every check.

    What :func:`rows_to_events` checks, but for the row seqs (the caller's to check):
    each body matches its stored hash, decodes, claims its seq, and links to the hash
    before it (``prev`` for the first). None when any check fails: the caller then reads
    the rows again with their seqs, and :func:`rows_to_events` names the first bad one.
    """
    if not bodies:
        return []
    hashes = list(hashes)
    if hash_bodies(bodies) != hashes:
        return None
    try:
        events = decode_events(bodies, run_id=run_id, start=from_seq)
    except (LogCorrupt, UnknownEventKind):
        return None
    prevs = [ev.prev for ev in events]
    if prevs[0] != prev or prevs[1:] != hashes[:-1]:
        return None
    return events


def _rows_to_events_one_by_one(
    run_id: str, rows: Iterable[tuple[int, bytes, str]], from_seq: int, prev: str | None
) -> list[Event]:
    events: list[Event] = []
    append = events.append
    expected = from_seq
    for seq, body, stored_hash in rows:
        if seq != expected:
            raise LogCorrupt(run_id, expected, f"seq {expected} is missing (next stored is {seq})")
        if digest(body) != stored_hash:
            raise LogCorrupt(run_id, seq, "stored bytes do not match their hash")
        ev = decode_event(body, run_id=run_id, seq=seq)
        if ev.prev != prev:
            raise LogCorrupt(run_id, seq, "prev is not the hash of the event before")
        append(ev)
        prev = stored_hash
        expected += 1
    return events
