"""The resume cache: a row's result kept by the request that made it.

A row job keeps each finished row here, keyed by `request_key` (the sha256 of the
backend's URL and the exact request), so that running the same call again, after an
interrupt or a failure, pays only for the rows not done. A record goes in only once
it fits its columns, so a re-run never meets a bad cached row.

Anything with `get(key)` and `put(key, record)` can stand behind `Session.cache`;
`MemoryCache` keeps the records for the kernel's life (a persistent store can take
its place with the same keys).
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any


def request_key(backend_url: str | None, request: dict) -> str:
    """The cache key of a request sent to a backend."""
    payload = json.dumps([backend_url, request], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class MemoryCache:
    """Row results by request key, in memory; safe to use from several threads."""

    def __init__(self) -> None:
        self._records: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        """The record kept for `key`, or None."""
        with self._lock:
            return self._records.get(key)

    def put(self, key: str, record: Any) -> None:
        """Keep `record` for `key` (replacing what was there)."""
        with self._lock:
            self._records[key] = record

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._records.clear()
