"""An in-process event store: the reference implementation of the contract.

It keeps the same canonical bytes and hashes as the durable stores, so reading
back goes through the same verification; it is what tests and benchmarks use
when durability is beside the point.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence

from substrate.codec import digest
from substrate.errors import BlobMissing, ConcurrentAppend, StoreError
from substrate.events import Event, Head, decode_event
from substrate.stores.base import (
    Durability,
    Row,
    RunInfo,
    SealedLog,
    check_link,
    prepare_rows,
    rows_to_events,
    run_info,
)

__all__ = ["MemoryStore"]


class MemoryStore:
    """Runs, graphs and blobs in dictionaries, guarded by one lock."""

    durability: Durability = "process"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[str, list[Row]] = {}
        self._graphs: dict[str, bytes] = {}
        self._blobs: dict[str, bytes] = {}

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
        rows = prepare_rows(run_id, expected_seq, events, bodies, hashes)
        with self._lock:
            log = self._logs.get(run_id)
            length = 0 if log is None else len(log)
            if length != expected_seq:
                raise ConcurrentAppend(run_id, expected_seq, length)
            check_link(run_id, log[-1][2] if log else None, events)
            if blobs:
                for key, data in blobs.items():
                    self._blobs.setdefault(key, data)
            if not rows:
                return Head(length, log[-1][2] if log else None)
            if log is None:
                log = self._logs[run_id] = []
            log.extend(rows)
            return Head(len(log), log[-1][2])

    def read(self, run_id: str, from_seq: int = 0) -> list[Event]:
        return self.read_sealed(run_id, from_seq).events

    def read_chunks(self, run_id: str, from_seq: int = 0) -> Iterator[list[Event]]:
        events = self.read(run_id, from_seq)
        if events:
            yield events

    def read_sealed(self, run_id: str, from_seq: int = 0) -> SealedLog:
        with self._lock:
            log = list(self._logs.get(run_id, ()))
        start = max(from_seq, 0)
        prev = log[start - 1][2] if 0 < start <= len(log) else None
        rows = log[start:]
        events = rows_to_events(run_id, rows, start, prev)
        return SealedLog(events, [row[1] for row in rows], [row[2] for row in rows])

    def head(self, run_id: str) -> Head:
        with self._lock:
            log = self._logs.get(run_id)
            return Head(len(log), log[-1][2]) if log else Head()

    def list_runs(self) -> list[RunInfo]:
        with self._lock:
            firsts = [(rid, log[0][1], len(log)) for rid, log in self._logs.items()]
        infos = [run_info(rid, decode_event(body, run_id=rid, seq=0), n) for rid, body, n in firsts]
        return sorted(infos, key=lambda i: (i.created_at, i.run_id))

    def put_graph(self, graph_hash: str, body: bytes) -> None:
        with self._lock:
            self._graphs.setdefault(graph_hash, body)

    def get_graph(self, graph_hash: str) -> bytes:
        with self._lock:
            body = self._graphs.get(graph_hash)
        if body is None:
            raise StoreError(f"graph {graph_hash} is not in the store")
        return body

    def put_blob(self, data: bytes) -> str:
        key = digest(data)
        with self._lock:
            self._blobs.setdefault(key, data)
        return key

    def get_blob(self, digest: str) -> bytes:
        with self._lock:
            data = self._blobs.get(digest)
        if data is None:
            raise BlobMissing(digest)
        return data

    def has_blob(self, digest: str) -> bool:
        with self._lock:
            return digest in self._blobs

    def sync(self) -> None:
        """Nothing to do: memory is as durable as it gets."""

    def close(self) -> None:
        """Nothing to release."""

    # -- test hooks: damage the log the way a disk or a newer writer would --------

    def _put_raw(self, run_id: str, seq: int, body: bytes, *, rehash: bool) -> None:
        with self._lock:
            log = self._logs[run_id]
            old = log[seq]
            log[seq] = (seq, body, digest(body) if rehash else old[2])
