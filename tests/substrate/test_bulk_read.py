"""Reading a log in bulk: the same events, and the same errors, as row by row.

``decode_events`` decodes many bodies in one pass and the stores verify rows a chunk
at a time (hashes, decoding, seqs, chain). Whatever the damage, and wherever it is in a
long log, the error must be the one a row-by-row reader raises first.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from substrate.codec import digest, encode
from substrate.errors import LogCorrupt, UnknownEventKind
from substrate.events import (
    EVENT_TYPES,
    Event,
    EventData,
    Head,
    Inline,
    NodeCompleted,
    RunStarted,
    decode_event,
    decode_events,
    seal,
)
from substrate.stores.base import hash_bodies
from substrate.stores.memory import MemoryStore
from substrate.stores.sqlite import _READ_CHUNK, SQLiteStore
from tests.substrate.strategies import for_type

# -- decode_events -----------------------------------------------------------------------

any_data: st.SearchStrategy[EventData] = st.sampled_from(sorted(EVENT_TYPES)).flatmap(
    lambda kind: for_type(EVENT_TYPES[kind])
)


@settings(max_examples=60)
@given(
    datas=st.lists(any_data, max_size=8),
    start=st.integers(0, 2**40),
    node=st.none() | st.text(max_size=12),
)
def test_decode_events_equals_decode_event_one_by_one(
    datas: list[EventData], start: int, node: str | None
) -> None:
    events, bodies, _ = seal(Head(start, None), [(i, node, d) for i, d in enumerate(datas)])
    back = decode_events(bodies, run_id="r", start=start)
    assert back == events == [decode_event(b, seq=start + i) for i, b in enumerate(bodies)]
    assert [type(e.data) for e in back] == [type(d) for d in datas]
    assert [encode(e) for e in back] == bodies


def _bodies(n: int) -> list[bytes]:
    drafts: list[tuple[int, str | None, EventData]] = [(0, None, RunStarted("g", Inline({}), "00"))]
    drafts += [(i, f"n{i}", NodeCompleted(Inline(i))) for i in range(1, n)]
    return seal(Head(), drafts)[1]


def _unknown_kind(body: bytes) -> bytes:
    return body.replace(b'"node.completed"', b'"node.exploded"')


def _garbage(body: bytes) -> bytes:
    return body[:-3]


def _other_seq(body: bytes) -> bytes:
    ev = decode_event(body)
    return encode(msgspec.structs.replace(ev, seq=ev.seq + 100))


def _bad_data(body: bytes) -> bytes:
    return body.replace(b'"output"', b'"outptu"')


DAMAGE = [_unknown_kind, _garbage, _other_seq, _bad_data]


def _error(fn: Any) -> tuple[type[BaseException], int, str]:
    with pytest.raises(LogCorrupt) as info:  # UnknownEventKind is a LogCorrupt
        fn()
    return type(info.value), info.value.seq, str(info.value)


@pytest.mark.parametrize("first", DAMAGE)
@pytest.mark.parametrize("later", DAMAGE)
def test_decode_events_raises_what_the_first_bad_body_raises(first: Any, later: Any) -> None:
    bodies = _bodies(7)
    bodies[2] = first(bodies[2])
    bodies[5] = later(bodies[5])
    one_by_one = _error(lambda: [decode_event(b, run_id="r", seq=i) for i, b in enumerate(bodies)])
    assert _error(lambda: decode_events(bodies, run_id="r")) == one_by_one
    assert one_by_one[1] == 2


def test_hash_bodies_is_digest() -> None:
    bodies = [b"", b"x", *_bodies(5)]
    assert hash_bodies(bodies) == [digest(b) for b in bodies]


# -- stores: a log longer than a read chunk ------------------------------------------------

Reader = Callable[..., list[Event]]


def _chunked(store: Any, run_id: str, from_seq: int = 0) -> list[Event]:
    chunks = list(store.read_chunks(run_id, from_seq))
    assert all(chunks), "no chunk is empty"
    if isinstance(store, SQLiteStore):
        assert all(len(c) <= _READ_CHUNK for c in chunks)
    return [ev for chunk in chunks for ev in chunk]


def _sealed(store: Any, run_id: str, from_seq: int = 0) -> list[Event]:
    log = store.read_sealed(run_id, from_seq)
    assert log.bodies == [encode(ev) for ev in log.events], "the stored bytes, canonical"
    assert log.hashes == [digest(b) for b in log.bodies], "the stored hashes, verified"
    return list(log.events)


@pytest.fixture(params=["read", "read_chunks", "read_sealed"], scope="module")
def read_via(request: pytest.FixtureRequest) -> Reader:
    """Every way of reading a log: whole, a chunk at a time, and with the stored bytes
    and hashes (the same events, the same errors)."""
    if request.param == "read":
        return lambda store, run_id, from_seq=0: store.read(run_id, from_seq)
    return _chunked if request.param == "read_chunks" else _sealed


LONG = 2 * _READ_CHUNK + 37


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    s = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "runs.db")
    yield s
    s.close()


@pytest.fixture
def long_log(store: Any) -> list[Event]:
    drafts: list[tuple[int, str | None, EventData]] = [(0, None, RunStarted("g", Inline({}), "00"))]
    drafts += [(i, f"m[{i}]/body", NodeCompleted(Inline(i))) for i in range(1, LONG)]
    events, bodies, _ = seal(Head(), drafts)
    store.append("r", 0, events, bodies=bodies)
    return events


def _set_hash(store: Any, seq: int, value: str) -> None:
    if isinstance(store, MemoryStore):
        log = store._logs["r"]
        log[seq] = (seq, log[seq][1], value)
    else:
        store._put_raw_hash("r", seq, value)


def test_long_log_reads_back_whole_and_from_any_seq(
    store: Any, long_log: list[Event], read_via: Reader
) -> None:
    assert read_via(store, "r") == long_log
    for start in (1, _READ_CHUNK - 1, _READ_CHUNK, _READ_CHUNK + 1, LONG - 1, LONG):
        assert read_via(store, "r", start) == long_log[start:]
    assert store.head("r") == Head(LONG, digest(encode(long_log[-1])))


@settings(max_examples=20, deadline=None)
@given(seq=st.integers(0, LONG - 1), offset=st.integers(0, 10_000), flip=st.integers(1, 255))
def test_a_flipped_byte_anywhere_in_a_long_log_names_its_seq(
    tmp_path_factory: pytest.TempPathFactory, read_via: Reader, seq: int, offset: int, flip: int
) -> None:
    for store in (MemoryStore(), SQLiteStore(tmp_path_factory.mktemp("db") / "runs.db")):
        events, bodies, _ = seal(
            Head(), [(i, f"n{i}", NodeCompleted(Inline(i))) for i in range(LONG)]
        )
        store.append("r", 0, events, bodies=bodies)
        body = bytearray(bodies[seq])
        body[offset % len(body)] ^= flip
        store._put_raw("r", seq, bytes(body), rehash=False)
        for start in (0, max(seq - 3, 0)):
            with pytest.raises(LogCorrupt) as info:
                read_via(store, "r", start)
            assert (info.value.run_id, info.value.seq) == ("r", seq)
        store.close()


def test_a_damaged_hash_column_names_its_seq(
    store: Any, long_log: list[Event], read_via: Reader
) -> None:
    seq = _READ_CHUNK + 5
    _set_hash(store, seq, "0" * 64)
    with pytest.raises(LogCorrupt, match=rf"at seq {seq}: stored bytes do not match their hash"):
        read_via(store, "r")


def test_the_first_of_two_faults_is_named(
    store: Any, long_log: list[Event], read_via: Reader
) -> None:
    late = 2 * _READ_CHUNK + 3
    store._put_raw("r", late, _unknown_kind(encode(long_log[late])), rehash=True)
    early = 7
    forged = msgspec.structs.replace(long_log[early], at=42)
    store._put_raw("r", early, encode(forged), rehash=True)  # breaks the chain at early + 1
    with pytest.raises(LogCorrupt, match=rf"at seq {early + 1}: prev is not the hash"):
        read_via(store, "r")
    with pytest.raises(UnknownEventKind):
        read_via(store, "r", early + 1 + 1)


def test_an_event_stored_under_another_seq_is_caught(
    store: Any, long_log: list[Event], read_via: Reader
) -> None:
    seq = _READ_CHUNK + 2
    store._put_raw("r", seq, encode(long_log[seq + 1]), rehash=True)
    with pytest.raises(LogCorrupt, match=rf"at seq {seq}: event claims seq {seq + 1}"):
        read_via(store, "r")


def test_missing_rows_are_named(tmp_path: Path, read_via: Reader) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    drafts = [(i, f"n{i}", NodeCompleted(Inline(i))) for i in range(LONG)]
    events, bodies, _ = seal(Head(), drafts)
    # Four appends: rows of one event, a batch, rows of one event, a batch.
    cuts = [0, 10, _READ_CHUNK + 9, _READ_CHUNK + 20, LONG]
    for lo, hi in itertools.pairwise(cuts):
        store.append("r", lo, events[lo:hi], bodies=bodies[lo:hi])
    store.close()
    gap, after = cuts[2], cuts[3]  # the rows of the third append go missing
    with sqlite3.connect(tmp_path / "runs.db") as db:
        db.execute("DELETE FROM events WHERE run_id = 'r' AND seq >= ? AND seq < ?", (gap, after))
    with SQLiteStore(tmp_path / "runs.db") as again:
        with pytest.raises(LogCorrupt, match=rf"at seq {gap}: seq {gap} is missing"):
            read_via(again, "r")
        assert read_via(again, "r", after + 1) == events[after + 1 :]
        # Reading from just after the gap needs the last missing row's hash: it is named.
        with pytest.raises(LogCorrupt, match=rf"at seq {after - 1}: seq {after - 1} is missing"):
            read_via(again, "r", after)


def test_chunks_stop_at_the_head_seen_first_and_the_store_serves_between_them(
    store: Any, long_log: list[Event]
) -> None:
    chunks = store.read_chunks("r")
    first = next(chunks)
    # The store is free between chunks: an append is taken, and is not read by this pass.
    more, bodies, _ = seal(
        Head(LONG, digest(encode(long_log[-1]))), [(LONG, "late", NodeCompleted(Inline(0)))]
    )
    store.append("r", LONG, more, bodies=bodies)
    rest = [ev for chunk in chunks for ev in chunk]
    assert first + rest == long_log
    assert read_all_chunks(store, "r") == [*long_log, *more]
    assert list(store.read_chunks("nope")) == []
    assert list(store.read_chunks("r", LONG + 1)) == []


def test_a_fault_in_a_late_chunk_raises_after_the_earlier_chunks(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    events, bodies, _ = seal(Head(), [(i, f"n{i}", NodeCompleted(Inline(i))) for i in range(LONG)])
    store.append("r", 0, events, bodies=bodies)
    bad = 2 * _READ_CHUNK + 1
    store._put_raw("r", bad, bodies[bad].replace(b'"n', b'"m', 1), rehash=False)
    chunks = store.read_chunks("r")
    assert next(chunks) + next(chunks) == events[: 2 * _READ_CHUNK]
    with pytest.raises(LogCorrupt, match=rf"at seq {bad}: stored bytes do not match"):
        next(chunks)
    store.close()


def read_all_chunks(store: Any, run_id: str) -> list[Event]:
    return [ev for chunk in store.read_chunks(run_id) for ev in chunk]
