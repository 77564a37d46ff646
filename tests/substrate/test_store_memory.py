from __future__ import annotations

from pathlib import Path
from typing import Any

from substrate.stores.memory import MemoryStore
from tests.substrate.store_contract import StoreContract


class TestMemoryStore(StoreContract):
    def make_store(self, tmp_path: Path) -> MemoryStore:
        return MemoryStore()

    def count_blobs(self, store: Any) -> int:
        return len(store._blobs)
