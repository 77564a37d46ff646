from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from substrate.codec import digest
from substrate.errors import ConcurrentAppend, InvalidAppend, LogCorrupt, StoreError
from substrate.events import Head, Inline, NodeCompleted, seal
from substrate.stores import MemoryStore, SQLiteStore, open_store
from substrate.stores import sqlite as sqlite_store
from tests.substrate.store_contract import StoreContract, drafts


class TestSQLiteStore(StoreContract):
    def make_store(self, tmp_path: Path) -> SQLiteStore:
        return SQLiteStore(tmp_path / "runs.db")

    def second_handle(self, store: Any, tmp_path: Path) -> SQLiteStore:
        return SQLiteStore(tmp_path / "runs.db")

    def count_blobs(self, store: Any) -> int:
        return int(store._db.execute("SELECT count(*) FROM blobs").fetchone()[0])


def _pragma(store: SQLiteStore, name: str) -> Any:
    return store._db.execute(f"PRAGMA {name}").fetchone()[0]


def test_wal_and_durability_modes(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "p.db") as process:
        assert _pragma(process, "journal_mode") == "wal"
        assert _pragma(process, "synchronous") == 1  # NORMAL
    with SQLiteStore(tmp_path / "s.db", durability="strict") as strict:
        assert _pragma(strict, "synchronous") == 2  # FULL


def _rows(store: SQLiteStore) -> list[tuple[int, int | None]]:
    return [tuple(r) for r in store._db.execute("SELECT seq, stop FROM events ORDER BY seq")]


def test_a_batch_after_this_handle_s_own_append_is_one_statement(tmp_path: Path) -> None:
    events, bodies, _ = seal(Head(), drafts(40))
    with SQLiteStore(tmp_path / "runs.db") as store:
        sql: list[str] = []
        store._db.set_trace_callback(sql.append)
        store.append("r", 0, events[:2], bodies=bodies[:2])  # a new run: a transaction
        assert (sql[0], sql[-1]) == ("BEGIN IMMEDIATE", "COMMIT")
        for lo, hi in ((2, 3), (3, 5), (5, 37)):  # 1, 2 and 32 events
            sql.clear()
            store.append("r", lo, events[lo:hi], bodies=bodies[lo:hi])
            assert len(sql) == 1
            assert sql[0].startswith("INSERT INTO events")
        sql.clear()
        store.append("r", 37, events[37:], bodies=bodies[37:])  # 3 events: one statement
        assert len(sql) == 1
        assert store.read("r") == events
        assert _rows(store) == [(i, None) for i in range(40)]  # a row per event


def test_a_long_append_is_written_as_batches_of_a_bounded_size(tmp_path: Path) -> None:
    m = sqlite_store._BATCH_MAX
    events, bodies, head = seal(Head(), drafts(2 * m + 5 + sqlite_store._BATCH_MIN))
    with SQLiteStore(tmp_path / "runs.db") as store:
        store.append("r", 0, events[:5], bodies=bodies[:5])  # short: a row per event
        assert store.append("r", 5, events[5:], bodies=bodies[5:]) == head
        rows = _rows(store)
        assert rows[:5] == [(i, None) for i in range(5)]
        assert rows[5:] == [(5, m + 5), (m + 5, 2 * m + 5), (2 * m + 5, len(events))]
        assert store.read("r") == events
        for start in (4, 5, 6, m + 4, m + 5, m + 6, len(events) - 1):
            assert store.read("r", start) == events[start:]
            assert store.read_sealed("r", start).bodies == bodies[start:]
        assert store.head("r") == head
        assert store.list_runs()[0].length == len(events)
    with SQLiteStore(tmp_path / "runs.db") as again:  # a fresh handle reads the head back
        assert again.head("r") == head
        more, more_bodies, _ = seal(head, drafts(1, start=len(events)))
        again.append("r", len(events), more, bodies=more_bodies)
        assert again.read("r") == events + more


def test_a_long_append_with_a_wrong_hash_given_is_refused(tmp_path: Path) -> None:
    events, bodies, _ = seal(Head(), drafts(sqlite_store._BATCH_MIN))
    hashes = [digest(b) for b in bodies]
    hashes[-1] = "0" * 64  # a batch's seal would vouch for it
    with SQLiteStore(tmp_path / "runs.db") as store:
        with pytest.raises(InvalidAppend, match=r"seq 63: the hash given is not its bytes' hash"):
            store.append("r", 0, events, bodies=bodies, hashes=hashes)
        assert store.read("r") == []


def test_a_stale_insert_is_fenced_by_the_row_that_began_at_its_head(tmp_path: Path) -> None:
    m = sqlite_store._BATCH_MIN
    events, bodies, _ = seal(Head(), drafts(2 + 2 * m))
    with SQLiteStore(tmp_path / "runs.db") as mine, SQLiteStore(tmp_path / "runs.db") as other:
        mine.append("r", 0, events[:2], bodies=bodies[:2])
        assert other.head("r").next_seq == 2  # other now believes the head is 2
        mine.append("r", 2, events[2 : 2 + m], bodies=bodies[2 : 2 + m])  # a batch row
        with pytest.raises(ConcurrentAppend) as info:
            other.append("r", 2, events[2:4], bodies=bodies[2:4])  # the one-statement path
        assert (info.value.expected, info.value.actual) == (2, 2 + m)
        with pytest.raises(ConcurrentAppend):  # a batch from a stale head: a transaction
            other.append("r", 2, events[2 : 2 + m], bodies=bodies[2 : 2 + m])
        other.append("r", 2 + m, events[2 + m :], bodies=bodies[2 + m :])
        assert mine.read("r") == events
        assert _rows(mine)[2:] == [(2, 2 + m), (2 + m, 2 + 2 * m)]


def test_a_format_1_file_is_upgraded_in_place(tmp_path: Path) -> None:
    events, bodies, head = seal(Head(), drafts(5))
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # what format 1 wrote
        db.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE runs (run_id TEXT PRIMARY KEY, created_at INTEGER NOT NULL,"
            " graph_hash TEXT);"
            "CREATE TABLE events (run_id TEXT NOT NULL, seq INTEGER NOT NULL,"
            " body BLOB NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;"
            "INSERT INTO meta VALUES ('format', '1');"
            "INSERT INTO runs VALUES ('r', 1000, 'graph-1');"
        )
        db.executemany(
            "INSERT INTO events VALUES ('r', ?, ?, ?)",
            [(i, b, digest(b)) for i, b in enumerate(bodies)],
        )
    with SQLiteStore(path) as store:
        assert store.read("r") == events
        assert store.head("r") == head
        more, more_bodies, _ = seal(head, drafts(sqlite_store._BATCH_MIN, start=5))
        store.append("r", 5, more, bodies=more_bodies)
        assert store.read("r") == events + more
        assert _pragma_format(store) == sqlite_store.STORE_FORMAT


def _pragma_format(store: SQLiteStore) -> str:
    return str(store._db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()[0])


def test_a_stale_cached_head_is_fenced_by_the_key(tmp_path: Path) -> None:
    events, bodies, _ = seal(Head(), drafts(6))
    with SQLiteStore(tmp_path / "runs.db") as mine, SQLiteStore(tmp_path / "runs.db") as other:
        mine.append("r", 0, events[:2], bodies=bodies[:2])  # mine now believes the head is 2
        other.append("r", 2, events[2:4], bodies=bodies[2:4])
        with pytest.raises(ConcurrentAppend) as info:
            mine.append("r", 2, events[2:3], bodies=bodies[2:3])  # the one-statement path
        assert (info.value.expected, info.value.actual) == (2, 4)
        assert mine.read("r") == events[:4]  # nothing of the losing batch was written
        mine.append("r", 4, events[4:], bodies=bodies[4:])  # it carries on from the real head
        assert other.read("r") == events


def test_reads_go_through_a_memory_map_unless_turned_off(tmp_path: Path) -> None:
    events, bodies, _ = seal(Head(), drafts(50))
    for mmap_bytes, expected in ((None, 256 * 1024 * 1024), (0, 0), (1 << 20, 1 << 20)):
        kwargs = {} if mmap_bytes is None else {"mmap_bytes": mmap_bytes}
        path = tmp_path / f"m{expected}.db"
        with SQLiteStore(path, **kwargs) as store:
            assert _pragma(store, "mmap_size") == expected
            store.append("r", 0, events, bodies=bodies)
        with SQLiteStore(path, **kwargs) as again:
            assert again.read("r") == events
    for bad in (-1, 1.5, "big", True):
        with pytest.raises(StoreError, match=rf"mmap_bytes must be .* not {bad!r}"):
            SQLiteStore(tmp_path / "bad.db", mmap_bytes=bad)  # type: ignore[arg-type]


def test_durable_append_fsyncs_the_wal_under_process_durability(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    with SQLiteStore(tmp_path / "runs.db") as store:
        events, bodies, head = seal(Head(), drafts(2))
        store.append("r1", 0, events, bodies=bodies)
        assert synced == []  # process durability: no fsync per commit
        more, more_bodies, _ = seal(head, drafts(1, start=2))
        store.append("r1", 2, more, bodies=more_bodies, durable=True)
        assert len(synced) == 1
        wal = os.stat(tmp_path / "runs.db-wal")
        assert os.fstat(synced[0]).st_ino == wal.st_ino  # it was the WAL that was synced


def test_strict_durability_needs_no_extra_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", calls.append)
    with SQLiteStore(tmp_path / "runs.db", durability="strict") as store:
        events, bodies, _ = seal(Head(), drafts(2))
        store.append("r1", 0, events, bodies=bodies, durable=True)
    assert calls == []  # SQLite itself fsyncs every commit under synchronous=FULL


def test_reopen_sees_the_log(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "runs.db") as store:
        events, bodies, _ = seal(Head(), drafts(4))
        store.append("r1", 0, events, bodies=bodies)
    with SQLiteStore(tmp_path / "runs.db") as again:
        assert again.read("r1") == events
        assert again.head("r1").next_seq == 4


def test_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"cannot open SQLite store at '.*/missing/runs.db'"):
        SQLiteStore(tmp_path / "missing" / "runs.db")


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open SQLite store"):
        SQLiteStore(junk)


def test_bad_durability_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="durability must be 'process' or 'strict', not 'fast'"):
        SQLiteStore(tmp_path / "x.db", durability="fast")  # type: ignore[arg-type]


def test_driver_errors_are_translated(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    store._db.close()
    with pytest.raises(StoreError, match="read of run 'r1' failed"):
        store.read("r1")
    assert not isinstance(StoreError("x"), sqlite3.Error)


def test_open_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    s = open_store(f"sqlite://{tmp_path}/a.db")  # sqlite:///abs/path
    assert isinstance(s, SQLiteStore)
    assert s.path == f"{tmp_path}/a.db"
    s.close()
    t = open_store(str(tmp_path / "b.db"))
    assert isinstance(t, SQLiteStore)
    t.close()
    with pytest.raises(StoreError, match="unknown store URL scheme 'redis'"):
        open_store("redis://localhost")
    with pytest.raises(StoreError, match="has no path"):
        open_store("sqlite://")


def _batch_log(tmp_path: Path) -> tuple[SQLiteStore, list[Any], int]:
    n = sqlite_store._BATCH_MIN
    events, bodies, _ = seal(Head(), drafts(3 + n))
    store = SQLiteStore(tmp_path / "runs.db")
    store.append("r", 0, events[:3], bodies=bodies[:3])
    store.append("r", 3, events[3:], bodies=bodies[3:])  # one batch row, seqs 3..
    return store, events, 3


def test_a_damaged_seal_or_sizes_column_is_named(tmp_path: Path) -> None:
    store, events, first = _batch_log(tmp_path)
    with store:
        db = store._db
        seal_ = db.execute("SELECT hash FROM events WHERE seq = ?", (first,)).fetchone()[0]
        db.execute("UPDATE events SET hash = ? WHERE seq = ?", ("0" * 64, first))
        last = len(events) - 1
        with pytest.raises(
            LogCorrupt,
            match=rf"at seq {first}: the seal of the batch of seqs "
            rf"{first}..{last} does not match it",
        ):
            store.read("r")
        db.execute("UPDATE events SET hash = ?, sizes = x'01' WHERE seq = ?", (seal_, first))
        with pytest.raises(LogCorrupt, match=r"is damaged \(its sizes or hashes do not fit"):
            store.read_sealed("r")


# Python 3.12 warns on a fork while threads run (the parent's sealer thread does): the
# child here only reads, with a thread of its own, and leaves with os._exit.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_reads_batches_with_a_sealer_of_its_own(tmp_path: Path) -> None:
    big = [(i, "n", NodeCompleted(Inline("x" * 2000))) for i in range(sqlite_store._BATCH_MIN)]
    events, bodies, _ = seal(Head(), big)
    with SQLiteStore(tmp_path / "runs.db") as store:
        store.append("r", 0, events, bodies=bodies)  # over 64 KiB: sealed in the thread
        assert store.read("r") == events  # the parent's sealer thread is started
    pid = os.fork()
    if pid == 0:  # the child: read again, then leave without the parent's cleanup
        try:
            with SQLiteStore(tmp_path / "runs.db") as again:
                ok = again.read("r") == events
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung reading a batch")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
