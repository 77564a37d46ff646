"""Event stores: memory, SQLite (default) and, with the ``postgres`` extra, Postgres.

>>> store = open_store("memory://")
>>> store.head("r1")
Head(next_seq=0, hash=None)
"""

from __future__ import annotations

from substrate.errors import StoreError
from substrate.stores.base import Durability, EventStore, RunInfo
from substrate.stores.memory import MemoryStore
from substrate.stores.sqlite import SQLiteStore

__all__ = ["Durability", "EventStore", "RunInfo", "MemoryStore", "SQLiteStore", "open_store"]


def open_store(url: str, *, durability: Durability = "process") -> EventStore:
    """Open a store from a URL.

    ``memory://`` is a fresh in-process store; ``sqlite:///path/to/runs.db`` or a
    bare file path is a SQLite file.

    Raises:
        StoreError: the URL's scheme is unknown or the store cannot be opened.
    """
    if url == "memory://" or url == "memory:":
        return MemoryStore()
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        if not path:
            raise StoreError(f"store URL {url!r} has no path (use sqlite:///path/to/runs.db)")
        # sqlite:///abs -> /abs ; sqlite://rel -> rel
        return SQLiteStore(path, durability=durability)
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise StoreError(
            f"unknown store URL scheme {scheme!r} in {url!r} (expected memory:// or sqlite:///PATH)"
        )
    return SQLiteStore(url, durability=durability)
