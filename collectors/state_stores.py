"""The recall state stores of a process: one per SQLAlchemy URL, opened on first use.

Kept apart from :mod:`collectors.recall_state` so that holding the (empty) set costs nothing:
SQLAlchemy is imported only when a store is opened, which happens only on targets with the
recall probe on (see :func:`collectors.registry.recall_state_store`).
"""

from __future__ import annotations

import threading
from typing import Any

from collectors.registry import recall_state_store


class StateStores:
    """One store (engine) per URL, shared by the jobs of a process (via ``ctx.shared``) and
    disposed when the process stops."""

    def __init__(self) -> None:
        self._stores: dict[str, Any] = {}  # URL -> collectors.recall_state.RecallStateStore
        self._lock = threading.Lock()

    def open(self, url: str) -> Any:
        with self._lock:
            store = self._stores.get(url)
            if store is None:
                store = recall_state_store(url)
                self._stores[url] = store
            return store

    def close(self) -> None:
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.dispose()
