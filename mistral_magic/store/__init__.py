"""The store: one SQLite file that outlives the kernel, shared by every kernel in a folder.

It keeps five things:

- **the response cache**: each successful call's answer, keyed by its exact request
  (`request_key`), with its usage and cost at the time, how often it was reused (and
  the money that saved), and which notebooks used it;
- **the resume state of row jobs** (``store.records``): an extraction's finished rows,
  so the same call after a restart pays only for the rest (the caller stores only rows
  that validated);
- **the Batch API jobs** this folder started (``store.jobs``), so the same call
  reattaches to its job;
- **the ledger** of every call across kernels (``store.ledger``), for
  ``%mistral usage --all``;
- **uploads** (``store.uploads``): which file id a backend gave a document's content,
  so sending the same file again does not upload it again (never its signed URL).

Where
    ``.mistral_magic/store.sqlite`` in the working directory (resolved when the `Store`
    is made), or the file given as `path` (``MistralMagics.cache_path``; a folder holds
    ``store.sqlite``; ``":memory:"`` keeps it in memory). Nothing is created until the
    first write: reading a store that does not exist finds nothing and leaves no file.
    A folder the store creates, and ``.mistral_magic`` always, gets a ``.gitignore`` of
    ``*``; a store put in a folder of your own (say, next to a notebook to ship it) is
    left for you to commit or not.

Sharing
    WAL journal, a 30 s busy timeout, writes in ``BEGIN IMMEDIATE`` transactions: two
    kernels may read and write at once. Within a process a `Store` is safe from any
    thread (one connection behind a lock); a forked child opens its own connection.
    Many rows go in one transaction per 1,000 and are read with one query per 500 keys.

Never a key
    Dict keys that carry credentials (``api_key``, ``authorization``, ``headers``, ...)
    are dropped from requests before hashing and from responses before storing, and any
    text equal to a key in use (``MISTRAL_API_KEY``, ``MISTRAL_SERVER_KEY``, or what
    `secrets` returns) is written as ``[redacted]``, in every table.

Failures
    A file that is not a store, a folder that cannot be written, a store locked for
    longer than the timeout: each is a one-line `StoreError` (a `ConfigError`) naming
    the file and the fix. A store in a read-only place is opened read-only: its answers
    are served (a shipped cache, replayed) and hits are not counted; a write raises
    `StoreError`, which the caller may show once and carry on.

Moving answers
    ``export(path, notebook=...)`` writes a standalone store (same schema, no WAL, hit
    counts reset) of the entries a notebook used, which ``cache_path`` can point at;
    ``import_from(path)`` adds another store's entries, keeping the ones already here;
    it reads the file as data, within bounds (`transfer`), and refuses in one line a
    file that is no export (views, triggers, too large, wrong types).

Whose answers
    Each answer put here is signed with this user's key, kept outside every store
    (`provenance`); an `Entry` read back is ``foreign`` unless its signature checks:
    imported, shipped, written on another machine, or edited. A foreign answer's tool
    calls are shown and approved before they run (`mistral_magic.toolloop`).

Example::

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> store = Store(folder / "store.sqlite")
    >>> request = {"model": "mistral-small-latest",
    ...            "messages": [{"role": "user", "content": "Hi"}]}
    >>> key = request_key("offline", request)
    >>> store.put(key, {"text": "Hello!", "finish_reason": "stop"}, kind="chat",
    ...           model="mistral-small-2603", prompt_tokens=5, completion_tokens=3,
    ...           cost=0.002, notebook="intro.ipynb")
    >>> store.get(key, notebook="intro.ipynb").response["text"]
    'Hello!'
    >>> store.stats().saved_usd
    0.002
    >>> store.export(folder / "intro-answers.sqlite", notebook="intro.ipynb")
    1
    >>> with Store(folder / "intro-answers.sqlite") as shipped:
    ...     shipped.get(key).response["text"]
    'Hello!'
    >>> store.close()
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import transfer
from .db import (
    MEMORY,
    TIMEOUT_S,
    Database,
    StoreError,
    chunks,
    marks,
    parse_time,
)
from .provenance import Signer
from .schema import now
from .secrets import Scrubber, is_secret_name
from .tables import BatchJob, BatchJobs, Records, StoredLedger, Uploads
from .transfer import COLUMNS, UPSERT, note_uses

__all__ = ["BatchJob", "Entry", "Store", "StoreError", "StoreStats", "request_key"]

_NOT_THE_ANSWER = frozenset({"stream", "prompt_cache_key"})


def request_key(backend: str | None, request: Mapping[str, Any]) -> str:
    """The cache key of a request: sha256 of ``[backend, request]`` as sorted JSON.

    `backend` is the server URL (what extraction's resume keys have always used) or a
    backend kind. Credential keys, ``stream`` and ``prompt_cache_key`` (where the server
    looks for a cached prefix) are left out: none changes the answer. For any other
    request this is exactly the resume key extraction has used.
    """
    clean = {k: v for k, v in request.items()
             if k not in _NOT_THE_ANSWER and not is_secret_name(k)}
    payload = json.dumps([backend, clean], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """A cached answer: the response as stored, its usage and cost then, and its reuse."""

    key: str
    kind: str
    model: str | None
    backend: str | None
    response: Any
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float | None  # at the time; None = unknown price
    notebook: str | None  # the notebook and cell that stored it, when given
    cell: str | None
    created: datetime
    hits: int
    saved: float  # USD its hits did not pay
    last_used: datetime | None
    #: not stored by this user (imported, shipped, written elsewhere, edited): its tool
    #: calls are data, shown and approved before they run (`provenance`)
    foreign: bool


@dataclass(frozen=True)
class StoreStats:
    """What ``%mistral cache`` shows: entries, reuse, money saved and size on disk."""

    path: str
    entries: int
    hits: int
    saved_usd: float
    unpriced_hits: int  # hits on answers of unknown price: their saving is not counted
    size_bytes: int  # the file and its WAL
    records: int
    jobs: int
    calls: int
    readonly: bool


class Store(Database):
    """The folder's store (see the module's manual); every method is safe from any thread.

    `path` as ``MistralMagics.cache_path`` (None: ``.mistral_magic/store.sqlite`` here);
    `session` names this kernel's ledger rows; `secrets` returns keys in use beyond the
    environment's (e.g. one set with ``%mistral key``), never to be written; `signer`
    (this user's key by default) signs what is put and checks what is read.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        session: str | None = None,
        secrets: Callable[[], Iterable[str | None]] | None = None,
        timeout_s: float = TIMEOUT_S,
        signer: Signer | None = None,
    ):
        super().__init__(path, secrets=secrets, timeout_s=timeout_s)
        self.session = session or uuid.uuid4().hex[:12]
        #: signs the answers put here as this user's and tells them from foreign ones
        self.signer = signer or Signer()
        #: finished rows of row jobs, for resuming: ``store.records.put/get_many``
        self.records = Records(self)
        #: Batch API jobs started here: ``store.jobs.put/get/set_status/list``
        self.jobs = BatchJobs(self)
        #: every call of every kernel: ``store.ledger.append/frame``
        self.ledger = StoredLedger(self)
        #: documents uploaded to a backend, by content: ``store.uploads.get/put/forget``
        self.uploads = Uploads(self)

    def __enter__(self) -> Store:
        return self

    # -- the response cache ------------------------------------------------------------

    def put(
        self,
        key: str,
        response: Any,
        *,
        kind: str = "chat",
        model: str | None = None,
        backend: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        cost: float | None = None,
        notebook: str | None = None,
        cell: str | None = None,
    ) -> None:
        """Store (or replace, keeping its reuse counts) the answer to the request `key`.

        `response` is JSON: the text or structured content, finish reason, thinking,
        tool calls. `kind` is chat, extract, ocr, embed...; `cost` is at the time.
        """
        self.put_many([{
            "key": key, "response": response, "kind": kind, "model": model,
            "backend": backend, "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens, "cost": cost, "notebook": notebook,
            "cell": cell,
        }])

    def put_many(self, entries: Iterable[Mapping[str, Any]]) -> int:
        """Store answers (mappings of `put`'s arguments), a transaction per batch; how many."""

        def write(conn, batch, secrets):
            stamp = now()
            rows = [self._row(entry, secrets, stamp) for entry in batch]
            conn.executemany(UPSERT, rows)
            note_uses(conn, [(row[0], row[8], row[9]) for row in rows], stamp)

        return self.batched(entries, write)

    def _row(self, entry: Mapping[str, Any], secrets: list[str], created: str, *,
             signed: bool = True) -> tuple:
        """The `WRITTEN` columns of an entry, credentials scrubbed; `signed` as this user's."""
        key = entry["key"]
        if not isinstance(key, str) or not key:
            raise StoreError(f"A cache key is a non-empty string from request_key, not {key!r}")
        text = Scrubber.text
        response = self.scrub.json(entry.get("response"), secrets)
        return (
            key, text(entry.get("kind") or "chat", secrets), text(entry.get("model"), secrets),
            text(entry.get("backend"), secrets), response,
            entry.get("prompt_tokens"), entry.get("completion_tokens"), entry.get("cost"),
            text(entry.get("notebook"), secrets), text(entry.get("cell"), secrets), created,
            self.signer.sign(key, response) if signed else None,
        )

    def get(
        self, key: str, *, hit: bool = True, notebook: str | None = None, cell: str | None = None
    ) -> Entry | None:
        """The stored answer to `key`, or None; `hit` counts it as reused (its cost saved)."""
        return self.get_many([key], hit=hit, notebook=notebook, cell=cell).get(key)

    def get_many(
        self,
        keys: Iterable[str],
        *,
        hit: bool = True,
        notebook: str | None = None,
        cell: str | None = None,
    ) -> dict[str, Entry]:
        """The stored answers among `keys` (one query per chunk), counted as hits by `notebook`.

        A read-only store serves its answers without counting.
        """
        keys = list(dict.fromkeys(keys))
        rows: dict[str, tuple] = {}
        with self.reading() as conn:
            if conn is None:
                return {}
            for chunk in chunks(keys):
                sql = f"SELECT {','.join(COLUMNS)} FROM responses WHERE key IN ({marks(chunk)})"
                rows.update((row[0], row) for row in conn.execute(sql, chunk))
            counted = hit and bool(rows) and self._readonly is None
            if counted:
                self._count_hits(list(rows), notebook, cell)
        entries = {key: self._entry(row) for key, row in rows.items()}
        if counted:
            stamp = datetime.now(timezone.utc)
            entries = {
                key: replace(e, hits=e.hits + 1, saved=e.saved + (e.cost or 0.0), last_used=stamp)
                for key, e in entries.items()
            }
        return entries

    def _count_hits(self, keys: list[str], notebook: str | None, cell: str | None) -> None:
        stamp = now()
        secrets = self.scrub.secrets()
        with self.writing() as conn:
            for chunk in chunks(keys):
                conn.execute(
                    "UPDATE responses SET hits = hits + 1, saved = saved + COALESCE(cost, 0), "
                    f"last_used = ? WHERE key IN ({marks(chunk)})",
                    [stamp, *chunk],
                )
            notebook, cell = Scrubber.text(notebook, secrets), Scrubber.text(cell, secrets)
            note_uses(conn, [(key, notebook, cell) for key in keys], stamp)

    def delete(self, keys: str | Iterable[str]) -> int:
        """Forget the answers to `keys` (one key or many); how many there were."""
        keys = [keys] if isinstance(keys, str) else list(dict.fromkeys(keys))
        if not keys or not self.exists:
            return 0
        deleted = 0
        with self.writing() as conn:
            for chunk in chunks(keys):
                where = f"WHERE key IN ({marks(chunk)})"
                deleted += conn.execute(f"DELETE FROM responses {where}", chunk).rowcount
                conn.execute(f"DELETE FROM uses {where}", chunk)
        return deleted

    def keys(self, *, notebook: str | None = None) -> list[str]:
        """Every stored key, oldest first, or those a notebook used (stored or was answered)."""
        sql, args = "SELECT key FROM responses", []
        if notebook is not None:
            sql, args = sql + " WHERE key IN (SELECT key FROM uses WHERE notebook = ?)", [notebook]
        with self.reading() as conn:
            return [] if conn is None else [r[0] for r in conn.execute(sql + " ORDER BY created", args)]

    def entries(self, *, notebook: str | None = None, limit: int | None = None) -> list[Entry]:
        """Stored answers, the most recently used first (reading them is not a hit)."""
        sql, args = f"SELECT {','.join(COLUMNS)} FROM responses", []
        if notebook is not None:
            sql, args = sql + " WHERE key IN (SELECT key FROM uses WHERE notebook = ?)", [notebook]
        sql += " ORDER BY COALESCE(last_used, created) DESC"
        if limit is not None:
            sql, args = sql + " LIMIT ?", [*args, int(limit)]
        with self.reading() as conn:
            return [] if conn is None else [self._entry(row) for row in conn.execute(sql, args)]

    def __len__(self) -> int:
        with self.reading() as conn:
            return 0 if conn is None else conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def stats(self) -> StoreStats:
        """Entries, hits, money saved by hits, size on disk (file and WAL), the other tables."""
        counts = (0, 0, 0.0, 0, 0, 0, 0)
        with self.reading() as conn:
            if conn is not None:
                counts = conn.execute(
                    "SELECT COUNT(*), COALESCE(SUM(hits), 0), COALESCE(SUM(saved), 0), "
                    "COALESCE(SUM(CASE WHEN cost IS NULL THEN hits ELSE 0 END), 0), "
                    "(SELECT COUNT(*) FROM records), (SELECT COUNT(*) FROM batch_jobs), "
                    "(SELECT COUNT(*) FROM ledger) FROM responses"
                ).fetchone()
            readonly = self._readonly is not None
        size = 0
        if self.path != MEMORY:
            for name in (self.path, Path(f"{self.path}-wal")):
                size += name.stat().st_size if name.exists() else 0
        entries, hits, saved, unpriced, records, jobs, calls = counts
        return StoreStats(str(self.path), entries, hits, float(saved), unpriced, size,
                          records, jobs, calls, readonly)

    def clear(self) -> int:
        """Forget every answer and every row job's finished rows; how many answers.

        Batch jobs and the ledger stay: they are history, not answers. The file is then
        compacted, so what was cleared is gone from the disk too.
        """
        if not self.exists:
            return 0
        with self.writing() as conn:
            cleared = conn.execute("DELETE FROM responses").rowcount
            conn.execute("DELETE FROM uses")
            conn.execute("DELETE FROM records")
        with self.reading() as conn:
            conn.execute("VACUUM")
            if self.path != MEMORY:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return cleared
    def _entry(self, row: tuple) -> Entry:
        """A `COLUMNS` row as an Entry, foreign unless this user's signature checks."""
        (key, kind, model, backend, response, prompt, completion, cost, notebook, cell, created,
         signature, hits, saved, last_used) = row
        return Entry(key, kind, model, backend, json.loads(response), prompt, completion, cost,
                     notebook, cell, parse_time(created), hits, saved, parse_time(last_used),
                     foreign=not self.signer.verify(key, response, signature))

    # -- moving answers between stores -------------------------------------------------

    def export(self, path: str | os.PathLike, *, keys: Iterable[str] | None = None,
               notebook: str | None = None) -> int:
        """Write a standalone store of some answers: `keys`, those `notebook` used, or all.

        It has this schema, no WAL and no reuse counts, so ``MistralMagics.cache_path``
        can point at it, or `import_from` read it. A file already there is replaced
        only if it is a store. Returns the number of answers written.
        """
        return transfer.export(self, path, keys=keys, notebook=notebook)

    def import_from(self, path: str | os.PathLike) -> int:
        """Add the answers of another store (an export); answers already here are kept.

        Returns how many were added. The other file is only read.
        """
        return transfer.import_from(self, path)


