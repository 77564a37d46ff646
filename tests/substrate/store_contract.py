"""The contract every event store keeps, as one abstract test class.

Each store's test module subclasses :class:`StoreContract` and provides
``make_store``; the Postgres store will subclass it the same way.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from substrate.blobs import pack, unpack
from substrate.codec import digest, encode
from substrate.errors import (
    BlobMissing,
    ConcurrentAppend,
    InvalidAppend,
    LogCorrupt,
    StoreError,
    UnknownEventKind,
)
from substrate.events import (
    Event,
    EventData,
    Head,
    Inline,
    ModelCalled,
    NodeCompleted,
    NodeStarted,
    RunStarted,
    seal,
)
from substrate.stores.base import EventStore


def drafts(n: int, *, start: int = 0, node: str = "n") -> list[tuple[int, str | None, EventData]]:
    out: list[tuple[int, str | None, EventData]] = []
    for i in range(start, start + n):
        if i == 0:
            out.append((1_000, None, RunStarted("graph-1", Inline({"x": 1}), "5eed")))
        else:
            out.append((1_000 + i, f"{node}{i}", NodeCompleted(Inline({"i": i}))))
    return out


class StoreContract:
    """Behaviour shared by every ``EventStore``."""

    def make_store(self, tmp_path: Path) -> Any:
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> Any:
        s = self.make_store(tmp_path)
        yield s
        s.close()

    def write(self, store: EventStore, run_id: str, n: int, head: Head = Head()) -> list[Event]:
        events, bodies, _ = seal(head, drafts(n, start=head.next_seq))
        store.append(run_id, head.next_seq, events, bodies=bodies)
        return events

    # -- append / read ---------------------------------------------------------------

    def test_is_an_event_store(self, store: Any) -> None:
        assert isinstance(store, EventStore)

    def test_empty_run_reads_empty(self, store: EventStore) -> None:
        assert store.read("nope") == []
        assert store.head("nope") == Head()

    def test_append_then_read_back_identical(self, store: EventStore) -> None:
        events = self.write(store, "r1", 5)
        back = store.read("r1")
        assert back == events
        assert [encode(e) for e in back] == [encode(e) for e in events]

    def test_append_with_the_hashes_seal_computed_reads_back_identical(
        self, store: EventStore
    ) -> None:
        for n, run_id in ((1, "one"), (4, "batch")):
            events, bodies, head = seal(Head(), drafts(n))
            hashes = [digest(b) for b in bodies]
            assert store.append(run_id, 0, events, bodies=bodies, hashes=hashes) == head
            assert store.read(run_id) == events
            assert store.head(run_id) == head

    def test_hashes_need_bodies_and_one_per_event(self, store: EventStore) -> None:
        events, bodies, _ = seal(Head(), drafts(2))
        hashes = [digest(b) for b in bodies]
        with pytest.raises(InvalidAppend, match="hashes must come with the bodies"):
            store.append("r1", 0, events, hashes=hashes)
        with pytest.raises(InvalidAppend, match=r"\(2 events, 1 hashes\)"):
            store.append("r1", 0, events, bodies=bodies, hashes=hashes[:1])
        assert store.read("r1") == []

    def test_a_wrong_hash_given_reads_back_as_corrupt(self, store: EventStore) -> None:
        events, bodies, _ = seal(Head(), drafts(3))
        hashes = [digest(b) for b in bodies]
        hashes[2] = "0" * 64  # the last: no later event's prev checks it at append
        store.append("r1", 0, events, bodies=bodies, hashes=hashes)
        with pytest.raises(LogCorrupt, match="at seq 2: stored bytes do not match their hash"):
            store.read("r1")

    def test_read_sealed_gives_the_stored_bytes_and_hashes(self, store: EventStore) -> None:
        assert store.read_sealed("nope") == ([], [], [])
        events, bodies, _ = seal(Head(), drafts(5))
        store.append("r1", 0, events[:2], bodies=bodies[:2])
        store.append("r1", 2, events[2:])  # the store encodes these itself
        log = store.read_sealed("r1")
        assert log.events == store.read("r1") == events
        assert log.bodies == bodies
        assert log.hashes == [digest(b) for b in bodies]
        assert store.read_sealed("r1", 3) == (events[3:], bodies[3:], log.hashes[3:])

    def test_append_without_bodies_encodes_itself(self, store: EventStore) -> None:
        events, _, head = seal(Head(), drafts(3))
        assert store.append("r1", 0, events) == head
        assert store.read("r1") == events

    def test_batches_continue_the_chain(self, store: EventStore) -> None:
        first = self.write(store, "r1", 3)
        head = store.head("r1")
        assert head.next_seq == 3
        second = self.write(store, "r1", 4, head)
        assert store.read("r1") == first + second
        assert store.read("r1", 5) == (first + second)[5:]
        assert store.read("r1", 7) == []
        assert store.read("r1", 99) == []

    def test_runs_are_independent(self, store: EventStore) -> None:
        a = self.write(store, "a", 2)
        b = self.write(store, "b", 3)
        assert store.read("a") == a
        assert store.read("b") == b

    def test_list_runs(self, store: EventStore) -> None:
        self.write(store, "b", 2)
        self.write(store, "a", 3)
        infos = store.list_runs()
        assert sorted((i.run_id, i.length, i.graph_hash, i.created_at) for i in infos) == [
            ("a", 3, "graph-1", 1_000),
            ("b", 2, "graph-1", 1_000),
        ]

    def test_empty_append_is_a_no_op(self, store: EventStore) -> None:
        self.write(store, "r1", 2)
        head = store.head("r1")
        assert store.append("r1", 2, []) == head
        assert len(store.read("r1")) == 2

    # -- the fence -------------------------------------------------------------------

    def test_stale_expected_seq_raises_and_writes_nothing(self, store: EventStore) -> None:
        self.write(store, "r1", 3)
        # A writer that still believes the log has 1 event.
        stale, stale_bodies, _ = seal(Head(1, _hash_of(store, "r1", 0)), drafts(2, start=1))
        with pytest.raises(ConcurrentAppend) as info:
            store.append("r1", 1, stale, bodies=stale_bodies)
        assert (info.value.run_id, info.value.expected, info.value.actual) == ("r1", 1, 3)
        assert str(info.value) == (
            "concurrent append to run 'r1': expected to write at seq 1; the log now has 3 events"
        )
        assert len(store.read("r1")) == 3

    def test_expected_seq_past_the_end_raises(self, store: EventStore) -> None:
        self.write(store, "r1", 2)
        events, bodies, _ = seal(Head(5, "x" * 64), drafts(1, start=5))
        with pytest.raises(ConcurrentAppend):
            store.append("r1", 5, events, bodies=bodies)
        assert len(store.read("r1")) == 2

    def test_two_store_handles_race_one_wins(self, store: EventStore, tmp_path: Path) -> None:
        other = self.second_handle(store, tmp_path)
        try:
            self.write(store, "r1", 2)
            other.head("r1")
            head = store.head("r1")
            mine, mine_b, _ = seal(head, drafts(3, start=2, node="mine"))
            theirs, theirs_b, _ = seal(head, drafts(3, start=2, node="theirs"))
            store.append("r1", 2, mine, bodies=mine_b)
            with pytest.raises(ConcurrentAppend):
                other.append("r1", 2, theirs, bodies=theirs_b)
            assert store.read("r1")[2:] == mine
            assert other.read("r1")[2:] == mine
        finally:
            if other is not store:
                other.close()

    def second_handle(self, store: EventStore, tmp_path: Path) -> EventStore:
        """Another handle on the same storage (the same object for the memory store)."""
        return store

    def test_threads_race_exactly_one_wins(self, store: EventStore) -> None:
        self.write(store, "r1", 1)
        head = store.head("r1")
        barrier = threading.Barrier(8)
        outcomes: list[str] = []

        def contender(k: int) -> None:
            events, bodies, _ = seal(head, drafts(4, start=1, node=f"t{k}-"))
            barrier.wait()
            try:
                store.append("r1", 1, events, bodies=bodies)
                outcomes.append(f"won{k}")
            except ConcurrentAppend:
                outcomes.append("lost")

        threads = [threading.Thread(target=contender, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [o for o in outcomes if o.startswith("won")]
        assert len(winners) == 1
        assert outcomes.count("lost") == 7
        log = store.read("r1")
        assert len(log) == 5
        assert {e.node.split("-")[0] for e in log[1:] if e.node} == {"t" + winners[0][3:]}

    # -- invalid batches (caller bugs) ----------------------------------------------

    def test_batch_with_wrong_seqs_is_refused(self, store: EventStore) -> None:
        events, _, _ = seal(Head(), drafts(3))
        with pytest.raises(InvalidAppend, match="event 0 of the batch has seq 0, expected 1"):
            store.append("r1", 1, events)
        assert store.read("r1") == []

    def test_batch_with_broken_chain_is_refused(self, store: EventStore) -> None:
        events, _, _ = seal(Head(), drafts(3))
        events[2] = msgspec.structs.replace(events[2], prev="0" * 64)
        with pytest.raises(InvalidAppend, match="seq 2: prev is not the hash of seq 1"):
            store.append("r1", 0, events)
        assert store.read("r1") == []

    def test_batch_not_linked_to_the_head_is_refused(self, store: EventStore) -> None:
        self.write(store, "r1", 2)
        events, _, _ = seal(Head(2, "f" * 64), drafts(1, start=2))
        with pytest.raises(InvalidAppend, match="is not the hash of the last stored event"):
            store.append("r1", 2, events)

    def test_kind_must_match_data(self, store: EventStore) -> None:
        events, _, _ = seal(Head(), drafts(1))
        bad = msgspec.structs.replace(events[0], kind="run.completed")
        with pytest.raises(InvalidAppend, match=r"kind 'run\.completed' does not match"):
            store.append("r1", 0, [bad])

    # -- corruption ------------------------------------------------------------------

    @settings(
        max_examples=25,
        # Each subclass (store) is its own executor; every example uses a fresh run id.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(seq=st.integers(0, 5), offset=st.integers(0, 10_000), flip=st.integers(1, 255))
    def test_one_corrupted_byte_is_log_corrupt_naming_run_and_seq(
        self, store: Any, seq: int, offset: int, flip: int
    ) -> None:
        run_id = f"c-{seq}-{offset}-{flip}"
        events = self.write(store, run_id, 6)
        body = bytearray(encode(events[seq]))
        body[offset % len(body)] ^= flip
        store._put_raw(run_id, seq, bytes(body), rehash=False)
        with pytest.raises(LogCorrupt) as info:
            store.read(run_id)
        assert (info.value.run_id, info.value.seq) == (run_id, seq)
        assert str(info.value).startswith(f"log of run {run_id!r} is corrupt at seq {seq}: ")

    def test_rehashed_tampering_breaks_the_chain_at_the_next_seq(self, store: Any) -> None:
        events = self.write(store, "r1", 4)
        forged = msgspec.structs.replace(events[1], at=42)
        store._put_raw("r1", 1, encode(forged), rehash=True)
        with pytest.raises(LogCorrupt, match=r"run 'r1' is corrupt at seq 2: prev is not the hash"):
            store.read("r1")

    def test_unknown_kind_in_the_log_names_kind_and_seq(self, store: Any) -> None:
        events = self.write(store, "r1", 3)
        body = encode(events[2]).replace(b'"node.completed"', b'"node.exploded"')
        store._put_raw("r1", 2, body, rehash=True)
        with pytest.raises(UnknownEventKind) as info:
            store.read("r1")
        assert (info.value.kind, info.value.seq, info.value.run_id) == ("node.exploded", 2, "r1")

    # -- blobs and graphs ------------------------------------------------------------

    def test_same_large_prompt_in_50_steps_is_stored_once(self, store: EventStore) -> None:
        prompt = {"messages": [{"role": "user", "content": "summarize this " * 800}]}
        head = Head()
        for step in range(50):
            pending: dict[str, bytes] = {}
            data = ModelCalled(
                call=0,
                model="mock:m",
                request_hash="h",
                request=pack(prompt, pending),
                response=pack({"content": f"answer {step}"}, pending),
            )
            batch: list[tuple[int, str | None, EventData]] = [(step, f"s{step}", data)]
            if step == 0:
                batch.insert(0, (0, None, RunStarted("g", Inline({}), "00")))
            events, bodies, new_head = seal(head, batch)
            store.append("r1", head.next_seq, events, bodies=bodies, blobs=pending)
            head = new_head
        log = store.read("r1")
        refs = {e.data.request for e in log if isinstance(e.data, ModelCalled)}
        assert len(refs) == 1
        (ref,) = refs
        assert unpack(ref, store.get_blob) == prompt
        assert self.count_blobs(store) == 1
        # The events themselves stay small: the prompt is not inlined 50 times.
        assert all(len(encode(e)) < 1024 for e in log)

    def count_blobs(self, store: Any) -> int:
        raise NotImplementedError

    def test_blob_round_trip_and_missing(self, store: EventStore) -> None:
        key = store.put_blob(b"hello")
        assert store.put_blob(b"hello") == key
        assert store.get_blob(key) == b"hello"
        assert store.has_blob(key)
        assert not store.has_blob("0" * 64)
        with pytest.raises(BlobMissing, match=f"^blob {'0' * 64} is not in the store$"):
            store.get_blob("0" * 64)

    def test_graphs(self, store: EventStore) -> None:
        store.put_graph("gh", b'{"nodes":[]}')
        store.put_graph("gh", b'{"nodes":[]}')
        assert store.get_graph("gh") == b'{"nodes":[]}'
        with pytest.raises(StoreError, match="graph nope is not in the store"):
            store.get_graph("nope")

    def test_durable_append_and_sync_work(self, store: EventStore) -> None:
        events, bodies, _ = seal(Head(), drafts(2))
        store.append("r1", 0, events, bodies=bodies, durable=True)
        store.sync()
        assert store.read("r1") == events


def _hash_of(store: EventStore, run_id: str, seq: int) -> str:
    from substrate.codec import digest

    return digest(encode(store.read(run_id)[seq]))


# A fixture-free smoke check that the contract above keeps NodeStarted importable
# for subclasses that extend it.
__all__ = ["StoreContract", "drafts", "NodeStarted"]
