"""The default store: one SQLite file in WAL mode, zero services.

Durability:

* ``process`` — ``synchronous=NORMAL``: a committed append is in the WAL and
  survives the process being killed at any instant, without an fsync per commit.
  ``append(..., durable=True)`` and :meth:`SQLiteStore.sync` fsync the WAL, for the
  moments that need power-loss safety (before a side effect that cannot be undone).
* ``strict`` — ``synchronous=FULL``: every commit is fsynced.

The fence is the primary key (run_id, seq): an append at a seq another writer has
taken violates it, the transaction rolls back whole, and :class:`ConcurrentAppend`
is raised. The store remembers the head of each run it has written or read, so
the common path (this process appending to its own run) is a single
BEGIN / INSERT / COMMIT; otherwise it reads the head inside the write transaction.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from substrate.codec import digest, encode
from substrate.errors import BlobMissing, ConcurrentAppend, LogCorrupt, StoreError
from substrate.events import Event, Head
from substrate.stores.base import (
    Durability,
    Row,
    RunInfo,
    SealedLog,
    check_link,
    prepare_rows,
    rows_to_events,
    run_info,
    verify_bodies,
)

__all__ = ["SQLiteStore", "SCHEMA"]

#: Version of the store's table layout (kept in the ``meta`` table).
STORE_FORMAT: Final = "1"

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
    seq    INTEGER NOT NULL,
    body   BLOB    NOT NULL,
    hash   TEXT    NOT NULL,
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
_HEAD: Final = "SELECT seq, hash FROM events WHERE run_id = ? ORDER BY seq DESC LIMIT 1"
_HASH_AT: Final = "SELECT hash FROM events WHERE run_id = ? AND seq = ?"
_BODIES_IN: Final = (
    "SELECT body, hash FROM events WHERE run_id = ? AND seq >= ? AND seq < ? ORDER BY seq"
)
_ROWS_IN: Final = (
    "SELECT seq, body, hash FROM events WHERE run_id = ? AND seq >= ? AND seq < ? ORDER BY seq"
)
#: Rows fetched and verified at a time by ``read``.
_READ_CHUNK: Final = 1024


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
        row = self._db.execute(_HEAD, (run_id,)).fetchone()
        return Head() if row is None else Head(row[0] + 1, row[1])

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
            else:
                db.executemany(_INSERT_EVENT, [(run_id, s, b, h) for s, b, h in rows])
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
        for events, _, _ in self._sealed_chunks(run_id, from_seq):
            yield events

    def read_sealed(self, run_id: str, from_seq: int = 0) -> SealedLog:
        log = SealedLog([], [], [])
        for events, bodies, hashes in self._sealed_chunks(run_id, from_seq):
            log.events.extend(events)
            log.bodies.extend(bodies)
            log.hashes.extend(hashes)
        return log

    def _sealed_chunks(
        self, run_id: str, from_seq: int
    ) -> Iterator[tuple[list[Event], Sequence[bytes], Sequence[str]]]:
        """Verified chunks of the log, each event with its stored bytes and hash."""
        start = max(from_seq, 0)
        db = self._db
        with self._lock, self._errors(f"read of run {run_id!r}"):
            head = self._read_head(run_id)
            prev = None
            if 0 < start < head.next_seq:
                row = db.execute(_HASH_AT, (run_id, start - 1)).fetchone()
                if row is None:
                    raise LogCorrupt(run_id, start - 1, f"seq {start - 1} is missing")
                prev = row[0]
        seq = start
        while seq < head.next_seq:
            end = min(seq + _READ_CHUNK, head.next_seq)
            with self._lock, self._errors(f"read of run {run_id!r}"):
                rows = db.execute(_BODIES_IN, (run_id, seq, end)).fetchall()
                events = None
                if len(rows) == end - seq:
                    bodies, hashes = zip(*rows, strict=True)
                    events = verify_bodies(run_id, bodies, hashes, seq, prev)
                if events is None:  # something is wrong: read again, row by row, to say what
                    full = db.execute(_ROWS_IN, (run_id, seq, end)).fetchall()
                    events = rows_to_events(run_id, full, seq, prev)
                    if len(events) < end - seq:
                        missing = seq + len(events)
                        raise LogCorrupt(run_id, missing, f"seq {missing} is missing")
                    bodies = tuple(row[1] for row in full)
                    hashes = tuple(row[2] for row in full)
            yield events, bodies, hashes
            prev, seq = hashes[-1], end
        if seq > start and prev == head.hash:
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
                " (SELECT max(seq) + 1 FROM events e WHERE e.run_id = r.run_id)"
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

    def _put_raw(self, run_id: str, seq: int, body: bytes, *, rehash: bool) -> None:
        with self._lock:
            params: tuple[Any, ...]
            if rehash:
                sql, params = (
                    "UPDATE events SET body = ?, hash = ? WHERE run_id = ? AND seq = ?",
                    (
                        body,
                        digest(body),
                        run_id,
                        seq,
                    ),
                )
            else:
                sql, params = (
                    "UPDATE events SET body = ? WHERE run_id = ? AND seq = ?",
                    (
                        body,
                        run_id,
                        seq,
                    ),
                )
            self._db.execute(sql, params)
