from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from substrate.errors import ConcurrentAppend, StoreError
from substrate.events import Head, seal
from substrate.stores import MemoryStore, SQLiteStore, open_store
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
