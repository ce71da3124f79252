"""The store's other tables: row jobs' resume state, batch jobs, the ledger across kernels, uploads.

Each is a view on a `mistral_magic.store.Store`, sharing its connection, lock and
scrubbing: ``store.records``, ``store.jobs``, ``store.ledger`` and ``store.uploads``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

from .db import BATCH, chunks, marks, parse_time
from .schema import now
from .secrets import Scrubber

if TYPE_CHECKING:
    from . import Store

_JOB_COLUMNS = ("key", "job_id", "backend", "model", "rows", "status", "created", "updated")
_JOB_READ = (*_JOB_COLUMNS, "read")

#: a ledger row: `mistral_magic.money.usage.CallRecord`'s fields and whether the answer came
#: from the cache; the kernel's session id is kept beside them.
LEDGER_FIELDS = (
    "time", "chat", "model", "kind", "prompt_tokens", "completion_tokens", "cost",
    "latency_s", "ttft_s", "status", "backend", "batch", "cached", "error", "pages",
    "audio_minutes", "characters", "uses", "cached_tokens", "cached_saved",
)
_LEDGER_DEFAULTS = {"kind": "chat", "status": "ok", "batch": False, "cached": False}


class Records:
    """Finished rows of row jobs (an extraction): (job, row key) -> the record as JSON.

    The caller keeps only records that became a row: a resumed job never meets a bad one.
    """

    def __init__(self, store: Store):
        self._store = store

    def put(self, job: str, records: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> int:
        """Keep finished rows of `job` (row key -> record), a transaction per batch; how many.

        Each record is made into text as it is written: `records` may be a generator that
        makes them (a row job's vectors as text), and none is kept longer than its row.
        """
        items = iter(records.items() if isinstance(records, Mapping) else records)
        written = 0
        while (first := next(items, None)) is not None:
            secrets, stamp = self._store.scrub.secrets(), now()
            with self._store.writing() as conn:
                written += conn.executemany(
                    "INSERT OR REPLACE INTO records (job, key, record, created) VALUES (?, ?, ?, ?)",
                    ((job, key, Scrubber.text(json.dumps(record, ensure_ascii=False, default=str),
                                              secrets), stamp)
                     for key, record in chain((first,), islice(items, BATCH - 1))),
                ).rowcount
        return written

    def get_many(self, job: str, keys: Iterable[str]) -> dict[str, Any]:
        """The finished rows of `job` among `keys` (one query per chunk of keys)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        with self._store.reading() as conn:
            if conn is None:
                return found
            for chunk in chunks(keys):
                for key, record in conn.execute(
                    f"SELECT key, record FROM records WHERE job = ? AND key IN ({marks(chunk)})",
                    [job, *chunk],
                ):
                    found[key] = json.loads(record)
        return found

    def delete(self, job: str | None = None) -> int:
        """Forget the finished rows of `job` (of every job when None); how many there were."""
        if not self._store.exists:
            return 0
        with self._store.writing() as conn:
            if job is None:
                return conn.execute("DELETE FROM records").rowcount
            return conn.execute("DELETE FROM records WHERE job = ?", (job,)).rowcount

    def count(self, job: str | None = None) -> int:
        """How many finished rows are kept, for `job` or for every job."""
        with self._store.reading() as conn:
            if conn is None:
                return 0
            if job is None:
                return conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
            return conn.execute("SELECT COUNT(*) FROM records WHERE job = ?", (job,)).fetchone()[0]


@dataclass(frozen=True)
class BatchJob:
    """A Batch API job this folder started, found again by the key of its request lines."""

    key: str
    job_id: str
    backend: str | None
    model: str | None
    rows: int | None
    status: str | None
    created: datetime
    updated: datetime
    read: datetime | None = None  # when its results were read back (it is not reattached then)


class BatchJobs:
    """The Batch API jobs started from this folder: the same call after a restart reattaches."""

    def __init__(self, store: Store):
        self._store = store

    def put(
        self,
        key: str,
        job_id: str,
        *,
        backend: str | None = None,
        model: str | None = None,
        rows: int | None = None,
        status: str | None = None,
    ) -> None:
        """Remember the job submitted for the request lines `key` (replacing an older one)."""
        secrets = self._store.scrub.secrets()
        text = Scrubber.text
        stamp = now()
        with self._store.writing() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO batch_jobs ({','.join(_JOB_COLUMNS)}) "
                f"VALUES ({marks(_JOB_COLUMNS)})",
                (key, text(job_id, secrets), text(backend, secrets), text(model, secrets), rows,
                 text(status, secrets), stamp, stamp),
            )

    def get(self, key: str) -> BatchJob | None:
        """The job started for the request lines `key`, or None."""
        with self._store.reading() as conn:
            row = None if conn is None else conn.execute(
                f"SELECT {','.join(_JOB_READ)} FROM batch_jobs WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else _job(row)

    def mark_read(self, job_ids: Iterable[str]) -> int:
        """Record that these jobs' results were read back; how many remembered jobs that was."""
        job_ids = list(job_ids)
        if not job_ids or not self._store.exists:
            return 0
        stamp = now()
        with self._store.writing() as conn:
            return sum(conn.execute(
                f"UPDATE batch_jobs SET read = ?, updated = ? WHERE job_id IN ({marks(chunk)})",
                [stamp, stamp, *chunk]).rowcount for chunk in chunks(job_ids))

    def set_status(self, job_id: str, status: str) -> int:
        """Record a job's latest status; how many remembered jobs have that id."""
        if not self._store.exists:
            return 0
        secrets = self._store.scrub.secrets()
        with self._store.writing() as conn:
            return conn.execute(
                "UPDATE batch_jobs SET status = ?, updated = ? WHERE job_id = ?",
                (Scrubber.text(status, secrets), now(), job_id),
            ).rowcount

    def list(self) -> list[BatchJob]:
        """Every job this folder started, the newest first."""
        with self._store.reading() as conn:
            rows = [] if conn is None else conn.execute(
                f"SELECT {','.join(_JOB_READ)} FROM batch_jobs ORDER BY created DESC"
            ).fetchall()
        return [_job(row) for row in rows]

    def delete(self, key: str) -> bool:
        """Forget the job of `key`: the next identical call submits a new one."""
        if not self._store.exists:
            return False
        with self._store.writing() as conn:
            return conn.execute("DELETE FROM batch_jobs WHERE key = ?", (key,)).rowcount > 0


def _job(row: tuple) -> BatchJob:
    key, job_id, backend, model, rows, status, created, updated, read = row
    return BatchJob(key, job_id, backend, model, rows, status, parse_time(created),
                    parse_time(updated), parse_time(read))


class StoredLedger:
    """Every call of every kernel in this folder, for ``%mistral usage --all``."""

    def __init__(self, store: Store):
        self._store = store

    def append(self, records: Iterable[Any], *, session: str | None = None) -> int:
        """Add `CallRecord`s (or mappings of its fields) of `session` (the store's by default)."""
        session = session or self._store.session

        def write(conn, batch, secrets):
            conn.executemany(
                f"INSERT INTO ledger (session, {','.join(LEDGER_FIELDS)}) "
                f"VALUES (?, {marks(LEDGER_FIELDS)})",
                [(session, *(_ledger_value(r, name, secrets) for name in LEDGER_FIELDS))
                 for r in batch],
            )

        return self._store.batched(records, write)

    def frame(self, *, session: str | None = None):
        """The calls (of one `session` when given), oldest first, as a DataFrame.

        The columns and dtypes of ``Ledger.to_frame()``, plus ``session``, ``batch`` and
        ``cached``. Imports pandas.
        """
        import pandas as pd

        columns = ("time", "session", *LEDGER_FIELDS[1:])
        sql, args = f"SELECT {','.join(columns)} FROM ledger", []
        if session is not None:
            sql, args = sql + " WHERE session = ?", [session]
        with self._store.reading() as conn:
            rows = [] if conn is None else conn.execute(sql + " ORDER BY time, id", args).fetchall()
        data = {name: [row[i] for row in rows] for i, name in enumerate(columns)}
        frame = {name: pd.Series(data[name], dtype=object) for name in columns}
        frame["time"] = pd.Series(pd.to_datetime(data["time"], utc=True),
                                  dtype="datetime64[ns, UTC]")
        for name in ("prompt_tokens", "completion_tokens", "pages", "characters", "uses",
                     "cached_tokens"):
            frame[name] = pd.Series(data[name], dtype="Int64")
        for name in ("cost", "latency_s", "ttft_s", "audio_minutes", "cached_saved"):
            frame[name] = pd.Series([math.nan if v is None else v for v in data[name]],
                                    dtype="float64")
        for name in ("batch", "cached"):
            frame[name] = pd.Series([bool(v) for v in data[name]], dtype=bool)
        return pd.DataFrame(frame, columns=list(columns))

    def __len__(self) -> int:
        with self._store.reading() as conn:
            return 0 if conn is None else conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]


def _ledger_value(record: Any, name: str, secrets: list[str]) -> Any:
    default = _LEDGER_DEFAULTS.get(name)
    if isinstance(record, Mapping):
        value = record.get(name, default)
    else:
        value = getattr(record, name, default)
    if name == "time":
        if isinstance(value, datetime):
            # A naive time is taken as UTC, as the ledger's are.
            value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
            return value.astimezone(timezone.utc).isoformat(timespec="microseconds")
        return now() if value is None else str(value)
    if name in ("batch", "cached"):
        return int(bool(value))
    if name in ("pages", "audio_minutes", "characters", "uses", "cached_tokens", "cached_saved"):
        return value
    return Scrubber.text(value, secrets)


class Uploads:
    """Files uploaded to a backend, by content: (backend URL, sha256) -> file id.

    A file id is no secret (it needs the key to be read); signed URLs are never kept.
    """

    def __init__(self, store: Store):
        self._store = store

    def get(self, backend: str, sha256: str) -> str | None:
        """The id of the file with this content on `backend`, or None."""
        with self._store.reading() as conn:
            row = None if conn is None else conn.execute(
                "SELECT file_id FROM uploads WHERE backend = ? AND sha256 = ?", (backend, sha256)
            ).fetchone()
        return None if row is None else row[0]

    def put(self, backend: str, sha256: str, file_id: str, *, name: str | None = None,
            size: int | None = None) -> None:
        """Remember that `backend` holds this content as `file_id` (replacing an older id)."""
        secrets = self._store.scrub.secrets()
        with self._store.writing() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO uploads (backend, sha256, file_id, name, bytes, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (Scrubber.text(backend, secrets), sha256, file_id, Scrubber.text(name, secrets),
                 size, now()),
            )

    def forget(self, backend: str, sha256: str) -> bool:
        """Forget an upload the backend no longer has (a 404): the next use uploads again."""
        if not self._store.exists:
            return False
        with self._store.writing() as conn:
            return conn.execute("DELETE FROM uploads WHERE backend = ? AND sha256 = ?",
                                (backend, sha256)).rowcount > 0
