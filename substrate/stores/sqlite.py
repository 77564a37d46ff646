"""The default store: one SQLite file in WAL mode, zero services.

Durability:

* ``process`` — ``synchronous=NORMAL``: a committed append is in the WAL and
  survives the process being killed at any instant, without an fsync per commit.
  ``append(..., durable=True)`` and :meth:`SQLiteStore.sync` fsync the WAL, for the
  moments that need power-loss safety (before a side effect that cannot be undone).
* ``strict`` — ``synchronous=FULL``: every commit is fsynced.

Layout: an append of a few events writes a row per event (its canonical bytes and
their hash). An append of many (a map's fan-out) writes one *batch* row per up to
4,096 events: their bytes as one JSON array, each body's size and hash, and a *seal*,
the BLAKE2b-256 of the three. A read checks a row per event by its hash; it checks a
batch row by its seal (one hash over a long buffer, which a worker thread computes
while the events are decoded, in one call) and the chain of ``prev`` links. When a
check fails, the rows are checked again event by event, which names the first bad seq.

The fence is the primary key (run_id, seq), the seq of a row's first event. Every head
a run ever had is where a row begins (an append starts at the head), so an append from
a stale head collides with the row another writer appended there: the transaction
rolls back whole, and :class:`ConcurrentAppend` is raised. The store remembers the
head of each run it has written or read, so the common path (this process appending
to its own run) is a single BEGIN / INSERT / COMMIT; otherwise it reads the head inside
the write transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final

import msgspec

from substrate.codec import digest, encode
from substrate.errors import BlobMissing, ConcurrentAppend, InvalidAppend, LogCorrupt, StoreError
from substrate.events import Event, Head, decode_event_array
from substrate.stores.base import (
    Durability,
    Row,
    RunInfo,
    SealedLog,
    check_link,
    hash_bodies,
    prepare_rows,
    rows_to_events,
    run_info,
    verify_bodies,
)

__all__ = ["SQLiteStore", "SCHEMA"]

#: Version of the store's table layout (kept in the ``meta`` table).
STORE_FORMAT: Final = "2"

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id     TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    graph_hash TEXT
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT    NOT NULL,
    seq    INTEGER NOT NULL,  -- the (first) event's seq
    body   BLOB    NOT NULL,  -- its canonical bytes; a batch's, joined by commas
    hash   TEXT    NOT NULL,  -- their BLAKE2b-256; a batch's seal
    stop   INTEGER,           -- a batch: the seq after its last event (NULL: one event)
    sizes  BLOB,              -- a batch: each body's length, 4 bytes little-endian
    hashes TEXT,              -- a batch: each body's hash, JSON strings joined by commas
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS graphs (
    graph_hash TEXT PRIMARY KEY,
    body       BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    digest TEXT PRIMARY KEY,
    body   BLOB NOT NULL
);
"""

_INSERT_EVENT: Final = "INSERT INTO events (run_id, seq, body, hash) VALUES (?, ?, ?, ?)"
#: Batches up to this many events are written by one multi-row INSERT statement.
_ONE_STATEMENT_ROWS: Final = 32
#: n rows in one statement; ?1 is the run id, then each row's seq, body and hash.
_INSERT_ROWS: Final = {
    n: "INSERT INTO events (run_id, seq, body, hash) VALUES "
    + ", ".join(f"(?1, ?{3 * i + 2}, ?{3 * i + 3}, ?{3 * i + 4})" for i in range(n))
    for n in range(1, _ONE_STATEMENT_ROWS + 1)
}
_INSERT_BATCH: Final = (
    "INSERT INTO events (run_id, seq, body, hash, stop, sizes, hashes) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
#: The last row of a run: its seq, hash (a batch's seal), stop and last hash.
_HEAD: Final = (
    "SELECT seq, hash, stop, substr(hashes, -65, 64) FROM events WHERE run_id = ?"
    " ORDER BY seq DESC LIMIT 1"
)
#: The row before a seq.
_ROW_BEFORE: Final = (
    "SELECT seq, hash, stop, substr(hashes, -65, 64) FROM events WHERE run_id = ? AND seq < ?"
    " ORDER BY seq DESC LIMIT 1"
)
_BODIES_IN: Final = (
    "SELECT body, hash FROM events WHERE run_id = ? AND seq >= ? AND seq < ? ORDER BY seq"
)
_ROWS_IN: Final = (
    "SELECT seq, body, hash, stop, sizes, hashes FROM events"
    " WHERE run_id = ? AND seq >= ? AND seq < ? ORDER BY seq"
)
#: Events are verified and yielded by ``read_chunks`` this many at a time (at most).
_READ_CHUNK: Final = 1024
#: An append of this many events or more is written as batch rows ...
_BATCH_MIN: Final = 64
#: ... of at most this many events each.
_BATCH_MAX: Final = 4096
#: A seal over this many bytes or more is computed in the worker thread: hashlib
#: releases the GIL for long buffers, so it runs while the events are decoded.
_SEAL_IN_THREAD_BYTES: Final = 64 * 1024
_HASHES_ENCODER: Final = msgspec.json.Encoder()
#: Characters per hash in a batch's hashes column: 64 hex digits, two quotes, a comma.
_HASH_SPAN: Final = 67
_HASHES_DECODER: Final = msgspec.json.Decoder(list[str])

_SEALER: tuple[int, ThreadPoolExecutor] | None = None
_SEALER_LOCK = threading.Lock()


def _sealer() -> ThreadPoolExecutor:
    """The one worker thread that computes long seals (started when first needed, and
    again in a forked child, which has the parent's executor but not its thread)."""
    global _SEALER
    with _SEALER_LOCK:
        if _SEALER is None or _SEALER[0] != os.getpid():
            _SEALER = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="foldline-seal"))
        return _SEALER[1]


#: A fresh BLAKE2b-256 state (copied: cheaper than the constructor's keyword parsing).
_NEW_SEAL: Final = hashlib.blake2b(digest_size=32).copy


def seal_of(bodies: bytes, sizes: bytes, hashes: str) -> str:
    """The seal of a batch row: BLAKE2b-256 of its bodies, sizes and hashes."""
    h = _NEW_SEAL()
    h.update(bodies)
    h.update(sizes)
    h.update(hashes.encode("ascii"))
    return h.hexdigest()


def _batch_columns(bodies: Sequence[bytes], hashes: Sequence[str]) -> tuple[bytes, bytes, str, str]:
    """The bodies, sizes, hashes and seal columns of a batch."""
    blob = b",".join(bodies)
    sizes = struct.pack(f"<{len(bodies)}I", *map(len, bodies))
    joined = _HASHES_ENCODER.encode(list(hashes))[1:-1].decode("ascii")
    return blob, sizes, joined, seal_of(blob, sizes, joined)


def _split(blob: bytes, sizes: bytes) -> list[bytes] | None:
    """The bodies of a batch, or None when the sizes do not fit the bytes."""
    if len(sizes) % 4:
        return None
    lengths = struct.unpack(f"<{len(sizes) // 4}I", sizes)
    out = []
    pos = 0
    for n in lengths:
        out.append(blob[pos : pos + n])
        pos += n + 1
    return out if pos == len(blob) + 1 else None


def _hash_list(joined: str) -> list[str] | None:
    """A batch's hashes column as a list; None if it is not one."""
    try:
        return _HASHES_DECODER.decode("[" + joined + "]")
    except (msgspec.DecodeError, ValueError):
        return None


def _statement_params(
    run_id: str,
    events: Sequence[Event],
    bodies: Sequence[bytes] | None,
    hashes: Sequence[str] | None,
    head: Head,
) -> tuple[list[Any], Head] | None:
    """The parameters of the one-statement insert of a batch that follows ``head``, and
    the head after it: None if it is not one (empty, too long, or failing a check of
    :func:`prepare_rows`, which then names the fault).

    Bodies are bound as bytearrays: the same BLOB as bytes, without the adapter look-up
    sqlite3 makes for every bytes parameter (which costs more than the copy).
    """
    n = len(events)
    if not 0 < n <= _ONE_STATEMENT_ROWS:
        return None
    if bodies is None:
        if hashes is not None:
            return None
        bodies = [encode(ev) for ev in events]
    if hashes is None:
        hashes = [digest(b) for b in bodies]
    if len(bodies) != n or len(hashes) != n:
        return None
    params: list[Any] = [run_id]
    seq, prev = head.next_seq, head.hash
    for ev, body, hash_ in zip(events, bodies, hashes, strict=False):  # lengths checked
        if ev.seq != seq or ev.prev != prev or ev.kind != ev.data.KIND:
            return None
        params += (seq, bytearray(body), hash_)
        prev = hash_
        seq += 1
    return params, Head(seq, prev)


def _head_of(row: tuple[int, str, int | None, str | None] | None) -> Head:
    """The head after a run's last row (see ``_HEAD``)."""
    if row is None:
        return Head()
    seq, hash_, stop, last = row
    return Head(seq + 1, hash_) if stop is None else Head(stop, last)


_Row = tuple[int, int, bytes, bytes, str, str]  # seq, stop, bodies, sizes, hashes, seal


class _Batch:
    """A batch row of a read (the events ``pos..`` of it), decoded in one call and
    checked but for its seal, which :meth:`verified` checks (see
    :meth:`SQLiteStore._sealed_chunks`)."""

    def __init__(
        self,
        run_id: str,
        pos: int,
        prev: str | None,
        row: _Row,
        sealing: Future[str] | None,
        with_bodies: bool,
    ) -> None:
        self.run_id, self.pos, self.prev, self.row, self.sealing = run_id, pos, prev, row, sealing
        first, stop, blob, sizes, joined, _ = row
        n, lo = stop - first, pos - first
        self.events = events = decode_event_array(b"".join((b"[", blob, b"]")), first, n)
        #: The hashes of the events ``pos..``, once the chain is checked.
        self.hashes: list[str] = []
        self.bodies = bodies = _split(blob, sizes) if with_bodies else []
        self.ok = (
            events is not None
            and bodies is not None
            and (len(bodies) == n or not with_bodies)
            and self._chained(events, lo, joined)
        )
        self.last_hash = self.hashes[-1] if self.ok else None

    def _chained(self, events: list[Event], lo: int, joined: str) -> bool:
        """Whether each event of the batch from ``lo`` names the hash before it, checked
        against the hashes column's text (``"h0","h1",...``), which is not decoded: the
        hashes are the events' own ``prev``, and the last one is cut from the text.

        Sound once the seal is checked: the column is then as written, 64 hex digits per
        hash, so the text equals the one built from the events' ``prev`` only if each
        ``prev`` is the hash at its place.
        """
        if len(joined) != _HASH_SPAN * len(events) - 1:
            return False
        if lo:  # reading from inside the batch: the hash before it is in the column
            at = _HASH_SPAN * (lo - 1) + 1
            self.prev = joined[at : at + 64]
        if events[lo].prev != self.prev:
            return False
        hashes = [ev.prev for ev in events[lo + 1 :]]
        hashes.append(joined[-65:-1])  # the last hash: the next row's link
        try:
            text = '","'.join(hashes)  # type: ignore[arg-type]  # a None fails
        except TypeError:
            return False
        if (joined[_HASH_SPAN * lo :] if lo else joined) != f'"{text}"':
            return False
        self.hashes = hashes  # type: ignore[assignment]  # no None: the join took them all
        return True

    def verified(self) -> Iterator[tuple[list[Event], list[bytes], list[str]]]:
        """The events in chunks, once the seal is checked; else what is wrong, named."""
        first, stop, blob, sizes, joined, seal = self.row
        n, lo = stop - first, self.pos - first
        sealing = self.sealing
        if self.ok and seal == (
            sealing.result() if sealing is not None else seal_of(blob, sizes, joined)
        ):
            events, bodies, tail = self.events, self.bodies, self.hashes
            assert events is not None
            assert bodies is not None
            for k in range(lo, n, _READ_CHUNK):
                end = min(k + _READ_CHUNK, n)
                yield events[k:end], bodies[k:end], tail[k - lo : end - lo]
            return
        if sealing is not None:
            sealing.cancel()
        # Something is wrong: check the row event by event, to name the first bad seq.
        parts, hashes = _split(blob, sizes), _hash_list(joined)
        if parts is None or hashes is None or len(parts) != n or len(hashes) != n:
            raise LogCorrupt(
                self.run_id,
                first,
                f"the batch of seqs {first}..{stop - 1} is damaged "
                "(its sizes or hashes do not fit its bytes)",
            )
        rows = [(first + i, parts[i], hashes[i]) for i in range(n)]
        prev = hashes[lo - 1] if lo else self.prev  # from inside the batch: the hash before
        for k in range(lo, n, _READ_CHUNK):
            end = min(k + _READ_CHUNK, n)
            chunk = rows_to_events(self.run_id, rows[k:end], first + k, prev)
            yield chunk, parts[k:end], hashes[k:end]
            prev = hashes[end - 1]
        raise LogCorrupt(
            self.run_id,
            first,
            f"the seal of the batch of seqs {first}..{stop - 1} does not match it",
        )


def _check_hashes(run_id: str, rows: Sequence[Row]) -> None:
    """Each row's hash is the digest of its bytes (what a read relies on)."""
    computed = hash_bodies([body for _, body, _ in rows])
    for (seq, _, given), actual in zip(rows, computed, strict=True):
        if given != actual:
            raise InvalidAppend(f"run {run_id!r} seq {seq}: the hash given is not its bytes' hash")


class SQLiteStore:
    """An :class:`~substrate.stores.base.EventStore` in one SQLite file.

    Args:
        path: the database file (created if absent; its folder must exist).
        durability: ``"process"`` (default) or ``"strict"``.
        timeout: seconds to wait for another writer's lock before giving up.
        mmap_bytes: how much of the file SQLite reads through a memory map (``PRAGMA
            mmap_size``) rather than a ``pread`` call per page: a long log is read a
            few percent faster. 0 turns it off (for a file system that maps badly: an
            I/O error under a map is a ``SIGBUS``, not an error SQLite can report).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "process",
        timeout: float = 30.0,
        mmap_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        if durability not in ("process", "strict"):
            raise StoreError(f"durability must be 'process' or 'strict', not {durability!r}")
        if isinstance(mmap_bytes, bool) or not isinstance(mmap_bytes, int) or mmap_bytes < 0:
            raise StoreError(f"mmap_bytes must be a whole number of bytes >= 0, not {mmap_bytes!r}")
        self.path = os.fspath(path)
        self.durability: Durability = durability
        self._lock = threading.Lock()
        self._heads: dict[str, Head] = {}
        self._wal_fd: int | None = None
        try:
            self._db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store at {self.path!r}: {exc}") from exc
        try:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"SQLite store at {self.path!r} cannot use WAL (got {mode!r})")
            sync = "FULL" if durability == "strict" else "NORMAL"
            self._db.execute(f"PRAGMA synchronous={sync}")
            self._db.execute(f"PRAGMA mmap_size={mmap_bytes}")
            self._db.executescript(SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?)", (STORE_FORMAT,)
            )
            fmt = self._db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()[0]
            if fmt == "1":
                fmt = self._upgrade_from_format_1()
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"cannot open SQLite store at {self.path!r}: {exc}") from exc
        if fmt != STORE_FORMAT:
            self._db.close()
            raise StoreError(
                f"SQLite store at {self.path!r} has format {fmt!r}; "
                f"this Foldline reads format {STORE_FORMAT!r}"
            )

    # -- helpers --------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store at {self.path!r}: {what} failed: {exc}") from exc

    def _abort(self, run_id: str) -> None:
        """Roll back a failed append and forget what we believed the run's head was."""
        self._heads.pop(run_id, None)
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the connection is unusable; the next call reports it

    def _read_head(self, run_id: str) -> Head:
        return _head_of(self._db.execute(_HEAD, (run_id,)).fetchone())

    def _upgrade_from_format_1(self) -> str:
        """Format 1 had a row per event only: its rows are rows of format 2 as they are
        (the batch columns are NULL). Returns the format the file has now."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            fmt = str(db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()[0])
            if fmt == "1":  # else another process upgraded it meanwhile
                for column in ("stop INTEGER", "sizes BLOB", "hashes TEXT"):
                    db.execute(f"ALTER TABLE events ADD COLUMN {column}")
                db.execute("UPDATE meta SET value = ? WHERE key = 'format'", (STORE_FORMAT,))
                fmt = STORE_FORMAT
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return fmt

    # -- EventStore -----------------------------------------------------------------

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
        db = self._db
        with self._lock:
            cached = self._heads.get(run_id)
            params = rows = None
            if (
                cached is not None
                and cached.next_seq == expected_seq
                and expected_seq
                and not blobs
            ):
                one = _statement_params(run_id, events, bodies, hashes, cached)
                if one is not None:
                    params, head = one
            if params is None:  # checked in full: InvalidAppend names what is wrong
                rows = prepare_rows(run_id, expected_seq, events, bodies, hashes)
                if hashes is not None and len(rows) >= _BATCH_MIN:
                    _check_hashes(run_id, rows)  # a batch's seal vouches for them
            try:
                if params is not None:
                    # The common case: a sealed batch of a run this handle wrote last, and
                    # nothing else. One INSERT statement is atomic by itself (SQLite
                    # commits it as it ends), so it needs no BEGIN and COMMIT round trips.
                    # The (run_id, seq) key is the fence: had another writer taken the seq
                    # the cached head points at, the whole statement fails.
                    db.execute(_INSERT_ROWS[len(events)], params)
                else:
                    assert rows is not None
                    cached = self._append_in_transaction(
                        run_id, expected_seq, events, rows, cached, blobs
                    )
                    head = Head(rows[-1][0] + 1, rows[-1][2]) if rows else cached

            except sqlite3.IntegrityError:
                # Another writer took this seq (or created this run) since we last
                # looked: the fence held, nothing of ours was written.
                self._abort(run_id)
                with self._errors(f"append to run {run_id!r}"):
                    actual = self._read_head(run_id).next_seq
                raise ConcurrentAppend(run_id, expected_seq, actual) from None
            except sqlite3.Error as exc:
                self._abort(run_id)
                raise StoreError(
                    f"SQLite store at {self.path!r}: append to run {run_id!r} failed: {exc}"
                ) from exc
            except BaseException:
                self._abort(run_id)
                raise
            self._heads[run_id] = head
        if durable and self.durability == "process":
            self.sync()
        return head

    def _append_in_transaction(
        self,
        run_id: str,
        expected_seq: int,
        events: Sequence[Event],
        rows: list[Row],
        cached: Head | None,
        blobs: Mapping[str, bytes] | None,
    ) -> Head:
        """An append in BEGIN IMMEDIATE ... COMMIT: a new run, blobs, an unknown head or a
        long batch. Returns the head the batch was checked against."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        if cached is None or cached.next_seq != expected_seq:
            # Not known to be the head: read it under the write lock.
            cached = self._read_head(run_id)
            if cached.next_seq != expected_seq:
                raise ConcurrentAppend(run_id, expected_seq, cached.next_seq)
        check_link(run_id, cached.hash, events)
        if blobs:
            db.executemany(
                "INSERT OR IGNORE INTO blobs (digest, body) VALUES (?, ?)", blobs.items()
            )
        if rows:
            if expected_seq == 0:
                info = run_info(run_id, events[0], 0)
                db.execute(
                    "INSERT INTO runs (run_id, created_at, graph_hash) VALUES (?, ?, ?)",
                    (run_id, info.created_at, info.graph_hash),
                )
            if len(rows) == 1:
                seq, body, h = rows[0]
                db.execute(_INSERT_EVENT, (run_id, seq, body, h))
            elif len(rows) < _BATCH_MIN:
                db.executemany(_INSERT_EVENT, [(run_id, s, b, h) for s, b, h in rows])
            else:
                for lo in range(0, len(rows), _BATCH_MAX):
                    part = rows[lo : lo + _BATCH_MAX]
                    first, stop = part[0][0], part[-1][0] + 1
                    blob, sizes, joined, seal = _batch_columns(
                        [r[1] for r in part], [r[2] for r in part]
                    )
                    db.execute(_INSERT_BATCH, (run_id, first, blob, seal, stop, sizes, joined))
        db.execute("COMMIT")
        return cached

    def read(self, run_id: str, from_seq: int = 0) -> list[Event]:
        events: list[Event] = []
        for chunk in self.read_chunks(run_id, from_seq):
            events += chunk
        return events

    def read_chunks(self, run_id: str, from_seq: int = 0) -> Iterator[list[Event]]:
        """See :meth:`EventStore.read_chunks`. Each chunk is one short query over a range
        of seqs below the head seen at the start, so no lock or transaction is held
        between chunks (the rows below a head never change)."""
        for events, _, _ in self._sealed_chunks(run_id, from_seq, with_bodies=False):
            yield events

    def read_sealed(self, run_id: str, from_seq: int = 0) -> SealedLog:
        log = SealedLog([], [], [])
        for events, bodies, hashes in self._sealed_chunks(run_id, from_seq):
            log.events.extend(events)
            log.bodies.extend(bodies)
            log.hashes.extend(hashes)
        return log

    def _sealed_chunks(
        self, run_id: str, from_seq: int, *, with_bodies: bool = True
    ) -> Iterator[tuple[list[Event], Sequence[bytes], Sequence[str]]]:
        """Verified chunks of the log, each event with its stored bytes and hash.

        Rows of one event are checked a chunk at a time, as they were written; a batch row
        is yielded once its seal is checked (computed by the worker thread for a long one,
        while the rows after it are decoded: one batch of look-ahead).
        """
        start = max(from_seq, 0)
        db = self._db
        what = f"read of run {run_id!r}"
        with self._lock, self._errors(what):
            head = self._read_head(run_id)
        if start >= head.next_seq:
            return
        pos, prev, lo = start, None, start
        if start:
            with self._lock, self._errors(what):
                row = db.execute(_ROW_BEFORE, (run_id, start)).fetchone()
            if row is not None and row[2] is not None and row[2] > start:
                lo = row[0]  # start is inside a batch: read it from its first event
            elif row is not None and (row[2] or row[0] + 1) == start:
                prev = _head_of(row).hash
            else:
                raise LogCorrupt(run_id, start - 1, f"seq {start - 1} is missing")
        waiting: _Batch | None = None
        singles: list[Row] = []

        def flush() -> Iterator[tuple[list[Event], Sequence[bytes], Sequence[str]]]:
            nonlocal waiting, singles, prev
            if waiting is not None:
                yield from waiting.verified()
                waiting = None
            if singles:
                rows, singles = singles, []
                bodies = [r[1] for r in rows]
                hashes = [r[2] for r in rows]
                events = verify_bodies(run_id, bodies, hashes, rows[0][0], prev)
                if events is None:  # something is wrong: check row by row, to say what
                    events = rows_to_events(run_id, rows, rows[0][0], prev)
                yield events, bodies, hashes
                prev = hashes[-1]

        quick = True  # the last range held rows of one event only
        while pos < head.next_seq:
            upto = min(head.next_seq, pos + _READ_CHUNK)
            if quick and lo == pos:
                # Rows of one event only, none missing (the common case): the query and the
                # checks of the format before batches, in bulk. Anything else (a batch row,
                # a gap, damage) is read again below, with the columns that say what.
                with self._lock, self._errors(what):
                    pairs = db.execute(_BODIES_IN, (run_id, pos, upto)).fetchall()
                if len(pairs) == upto - pos:
                    bodies, hashes = zip(*pairs, strict=True)
                    events = verify_bodies(run_id, bodies, hashes, pos, prev)
                    if events is not None:
                        yield from flush()  # a batch before these, once its seal is checked
                        yield events, bodies, hashes
                        prev, pos = hashes[-1], upto
                        lo = pos
                        continue
            with self._lock, self._errors(what):
                rows = db.execute(_ROWS_IN, (run_id, lo, upto)).fetchall()
            quick = all(r[3] is None for r in rows)
            seals: list[Future[str] | None] = [
                _sealer().submit(seal_of, r[1], r[4], r[5])
                if r[3] is not None and len(r[1]) >= _SEAL_IN_THREAD_BYTES
                else None
                for r in rows
            ]
            missing, taken = (pos if not rows else -1), 0
            for (seq, body, hash_, stop, sizes, joined), sealing in zip(rows, seals, strict=True):
                if seq != pos and not (stop is not None and seq < pos < stop):
                    missing = pos
                    break
                taken += 1
                if stop is None:  # one event
                    singles.append((seq, body, hash_))
                    pos += 1
                    continue
                yield from flush()  # what comes before this batch, in order
                row = (seq, stop, body, sizes, joined, hash_)
                batch = _Batch(run_id, pos, prev, row, sealing, with_bodies)
                waiting, prev, pos = batch, batch.last_hash, stop
            if missing >= 0:
                for sealing in seals[taken:]:  # the rows not taken
                    if sealing is not None:
                        sealing.cancel()
                yield from flush()
                raise LogCorrupt(run_id, missing, f"seq {missing} is missing")
            if singles:
                yield from flush()
            lo = pos
        yield from flush()
        if prev == head.hash:
            with self._lock:
                self._heads[run_id] = head

    def head(self, run_id: str) -> Head:
        with self._lock, self._errors(f"head of run {run_id!r}"):
            head = self._read_head(run_id)
            self._heads[run_id] = head
            return head

    def list_runs(self) -> list[RunInfo]:
        with self._lock, self._errors("list_runs"):
            rows = self._db.execute(
                "SELECT r.run_id, r.created_at, r.graph_hash,"
                " (SELECT coalesce(max(stop), max(seq) + 1) FROM events e"
                " WHERE e.run_id = r.run_id AND e.seq = (SELECT max(seq) FROM events x"
                " WHERE x.run_id = r.run_id))"
                " FROM runs r ORDER BY r.created_at, r.run_id"
            ).fetchall()
        return [RunInfo(rid, at, gh, n or 0) for rid, at, gh, n in rows]

    def put_graph(self, graph_hash: str, body: bytes) -> None:
        with self._lock, self._errors("put_graph"):
            self._db.execute(
                "INSERT OR IGNORE INTO graphs (graph_hash, body) VALUES (?, ?)", (graph_hash, body)
            )

    def get_graph(self, graph_hash: str) -> bytes:
        with self._lock, self._errors("get_graph"):
            row = self._db.execute(
                "SELECT body FROM graphs WHERE graph_hash = ?", (graph_hash,)
            ).fetchone()
        if row is None:
            raise StoreError(f"graph {graph_hash} is not in the store at {self.path!r}")
        return bytes(row[0])

    def put_blob(self, data: bytes) -> str:
        key = digest(data)
        with self._lock, self._errors("put_blob"):
            self._db.execute(
                "INSERT OR IGNORE INTO blobs (digest, body) VALUES (?, ?)", (key, data)
            )
        return key

    def get_blob(self, digest: str) -> bytes:
        with self._lock, self._errors("get_blob"):
            row = self._db.execute("SELECT body FROM blobs WHERE digest = ?", (digest,)).fetchone()
        if row is None:
            raise BlobMissing(digest)
        return bytes(row[0])

    def has_blob(self, digest: str) -> bool:
        with self._lock, self._errors("has_blob"):
            row = self._db.execute("SELECT 1 FROM blobs WHERE digest = ?", (digest,)).fetchone()
        return row is not None

    def sync(self) -> None:
        """fsync the write-ahead log: every append committed so far survives power loss.

        Under ``synchronous=NORMAL`` SQLite writes each commit to the WAL without
        syncing it; syncing the WAL file makes all of them durable (on recovery
        SQLite replays the checksummed frames it finds there).
        """
        with self._lock:
            if self._wal_fd is None:
                try:
                    self._wal_fd = os.open(self.path + "-wal", os.O_RDONLY)
                except FileNotFoundError:
                    return  # nothing written since the last checkpoint, which synced
            os.fsync(self._wal_fd)

    def close(self) -> None:
        with self._lock:
            if self._wal_fd is not None:
                os.close(self._wal_fd)
                self._wal_fd = None
            self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- test hooks: damage the log the way a disk or a newer writer would --------

    def _row_at(self, run_id: str, seq: int) -> tuple[Any, ...]:
        row = self._db.execute(
            "SELECT seq, body, hash, stop, sizes, hashes FROM events"
            " WHERE run_id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1",
            (run_id, seq),
        ).fetchone()
        assert row is not None
        return tuple(row)

    def _rewrite(
        self,
        run_id: str,
        row: tuple[Any, ...],
        seq: int,
        body: bytes | None,
        hash_: str | None,
        reseal: bool,
    ) -> None:
        first, old_body, seal, stop, sizes, joined = row
        if stop is None:
            self._db.execute(
                "UPDATE events SET body = ?, hash = ? WHERE run_id = ? AND seq = ?",
                (
                    old_body if body is None else body,
                    seal if hash_ is None else hash_,
                    run_id,
                    first,
                ),
            )
            return
        parts, hashes = _split(old_body, sizes), _hash_list(joined)
        assert parts is not None
        assert hashes is not None
        if body is not None:
            parts[seq - first] = body
        if hash_ is not None:
            hashes[seq - first] = hash_
        blob, new_sizes, new_joined, new_seal = _batch_columns(parts, hashes)
        self._db.execute(
            "UPDATE events SET body = ?, hash = ?, sizes = ?, hashes = ?"
            " WHERE run_id = ? AND seq = ?",
            (blob, new_seal if reseal else seal, new_sizes, new_joined, run_id, first),
        )

    def _put_raw(self, run_id: str, seq: int, body: bytes, *, rehash: bool) -> None:
        """Store ``body`` at ``seq``: as a newer writer would (``rehash``: its hash, and a
        batch's seal, follow), or as a disk would damage it (they stay as they were)."""
        with self._lock:
            row = self._row_at(run_id, seq)
            self._rewrite(run_id, row, seq, body, digest(body) if rehash else None, rehash)

    def _put_raw_hash(self, run_id: str, seq: int, value: str) -> None:
        """Damage the stored hash of ``seq`` (a batch's seal stays as it was)."""
        with self._lock:
            self._rewrite(run_id, self._row_at(run_id, seq), seq, None, value, False)
