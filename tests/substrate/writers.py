"""Child processes for the crash and race tests (run as ``python -m tests.substrate.writers``).

``crash DB RUN DURABILITY``: append batches of 1-7 events to RUN forever, each
event saying which batch it belongs to, its index and the batch size; print
``ready`` after the first commit. The parent SIGKILLs it at a random moment.

``race DB RUN WRITER ROUNDS``: for each round, read the head, print ``ready``,
wait for a ``go`` line on stdin, append a 20-event batch at that head, and print
``won`` or ``lost``.
"""

from __future__ import annotations

import sys

from substrate.errors import ConcurrentAppend
from substrate.events import EventData, Inline, NodeCompleted, RunStarted, seal
from substrate.stores.sqlite import SQLiteStore


def _batch(batch: int, size: int, writer: str, at: int) -> list[tuple[int, str | None, EventData]]:
    return [
        (at + i, f"{writer}.{batch}", NodeCompleted(Inline({"batch": batch, "i": i, "size": size})))
        for i in range(size)
    ]


def crash(db: str, run_id: str, durability: str) -> None:
    store = SQLiteStore(db, durability="strict" if durability == "strict" else "process")
    head = store.head(run_id)
    if head.next_seq == 0:
        events, bodies, head = seal(head, [(0, None, RunStarted("crash", Inline({}), "00"))])
        store.append(run_id, 0, events, bodies=bodies)
        batch = 0
    else:
        last = store.read(run_id, head.next_seq - 1)[0].data
        batch = last.output.value["batch"] + 1 if isinstance(last, NodeCompleted) else 0  # type: ignore[union-attr]
    announced = False
    while True:
        size = batch % 7 + 1
        events, bodies, new_head = seal(head, _batch(batch, size, "w", head.next_seq))
        store.append(run_id, head.next_seq, events, bodies=bodies, durable=batch % 5 == 0)
        head = new_head
        batch += 1
        if not announced:
            print("ready", flush=True)
            announced = True


def race(db: str, run_id: str, writer: str, rounds: int) -> None:
    store = SQLiteStore(db)
    for _ in range(rounds):
        head = store.head(run_id)
        events, bodies, _ = seal(head, _batch(head.next_seq, 20, writer, head.next_seq))
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return
        try:
            store.append(run_id, head.next_seq, events, bodies=bodies)
            print("won", flush=True)
        except ConcurrentAppend:
            print("lost", flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "crash":
        crash(args[0], args[1], args[2])
    elif mode == "race":
        race(args[0], args[1], args[2], int(args[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
