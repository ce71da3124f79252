"""The store's schema as numbered migrations; the names of those applied are kept in the file.

A later version changes the schema by appending a function decorated with
`@migration` (never by editing or renaming one already released): `migrate` applies,
in order and in one transaction, the ones a file lacks, and records each name with
its time in ``mistral_magic_migrations``. A file written by a newer version keeps
working: its extra migrations are left alone, and queries name their columns. Add a
column with a default, so that older versions can still insert rows.
(The pattern of simonw/llm's ``migrations.py``.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone

MIGRATIONS_TABLE = "mistral_magic_migrations"

MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []


def migration(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    """Append a migration; its name is recorded once applied, so never rename one."""
    MIGRATIONS.append(fn)
    return fn


def pending_migrations(conn: sqlite3.Connection) -> list[str]:
    """The names of the migrations this file lacks."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    done: set[str] = set()
    if MIGRATIONS_TABLE in tables:
        done = {row[0] for row in conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")}
    return [fn.__name__ for fn in MIGRATIONS if fn.__name__ not in done]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply what is missing in one write transaction (two kernels apply it once); the names."""
    if not pending_migrations(conn):
        return []
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
            "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        # Read again under the write lock: another kernel may have just applied them.
        pending = set(pending_migrations(conn))
        applied = []
        for fn in MIGRATIONS:
            if fn.__name__ in pending:
                fn(conn)
                conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)",
                    (fn.__name__, now()),
                )
                applied.append(fn.__name__)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied


@migration
def m001_responses(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE responses (
            key TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            model TEXT,
            backend TEXT,
            response TEXT NOT NULL,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            cost REAL,
            notebook TEXT,
            cell TEXT,
            created TEXT NOT NULL,
            hits INTEGER NOT NULL DEFAULT 0,
            saved REAL NOT NULL DEFAULT 0,
            last_used TEXT
        )"""
    )
    # Which notebooks used an entry (made it or were answered from it): what export selects.
    db.execute(
        """CREATE TABLE uses (
            key TEXT NOT NULL,
            notebook TEXT NOT NULL,
            cell TEXT,
            last_used TEXT NOT NULL,
            PRIMARY KEY (key, notebook)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX uses_notebook ON uses (notebook)")


@migration
def m002_records(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE records (
            job TEXT NOT NULL,
            key TEXT NOT NULL,
            record TEXT NOT NULL,
            created TEXT NOT NULL,
            PRIMARY KEY (job, key)
        ) WITHOUT ROWID"""
    )


@migration
def m003_batch_jobs(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE batch_jobs (
            key TEXT PRIMARY KEY,
            job_id TEXT NOT NULL,
            backend TEXT,
            model TEXT,
            rows INTEGER,
            status TEXT,
            created TEXT NOT NULL,
            updated TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX batch_jobs_job_id ON batch_jobs (job_id)")


@migration
def m004_ledger(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE ledger (
            id INTEGER PRIMARY KEY,
            time TEXT NOT NULL,
            session TEXT,
            chat TEXT,
            model TEXT,
            kind TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            cost REAL,
            latency_s REAL,
            ttft_s REAL,
            status TEXT,
            backend TEXT,
            batch INTEGER NOT NULL DEFAULT 0,
            cached INTEGER NOT NULL DEFAULT 0,
            error TEXT
        )"""
    )


@migration
def m005_batch_jobs_read(db: sqlite3.Connection) -> None:
    # When a job's results were read back into a notebook: such a job is never reattached
    # (its rows are in the resume cache; the same lines again mean a new job).
    db.execute("ALTER TABLE batch_jobs ADD COLUMN read TEXT")


@migration
def m006_uploads(db: sqlite3.Connection) -> None:
    # Files uploaded to a backend (its URL) for their content (sha256), so a re-run sends
    # the file id again instead of the file; signed URLs are never kept here.
    db.execute(
        """CREATE TABLE uploads (
            backend TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            file_id TEXT NOT NULL,
            name TEXT,
            bytes INTEGER,
            created TEXT NOT NULL,
            PRIMARY KEY (backend, sha256)
        ) WITHOUT ROWID"""
    )


@migration
def m007_ledger_pages(db: sqlite3.Connection) -> None:
    # OCR calls are priced per page: the ledger keeps how many.
    db.execute("ALTER TABLE ledger ADD COLUMN pages INTEGER")


@migration
def m008_responses_signature(db: sqlite3.Connection) -> None:
    # Who stored an answer (`provenance`): this user's signature, or NULL. Answers stored
    # before are left unsigned, never signed here: a migrated file may be someone else's.
    db.execute("ALTER TABLE responses ADD COLUMN signature TEXT")


@migration
def m009_ledger_audio(db: sqlite3.Connection) -> None:
    # Audio is priced per minute heard and speech per character spoken: the ledger keeps both.
    db.execute("ALTER TABLE ledger ADD COLUMN audio_minutes REAL")
    db.execute("ALTER TABLE ledger ADD COLUMN characters INTEGER")


@migration
def m010_ledger_uses(db: sqlite3.Connection) -> None:
    # Built-in tools are priced per use: the ledger keeps how many (kind "tool").
    db.execute("ALTER TABLE ledger ADD COLUMN uses INTEGER")


@migration
def m011_ledger_cached_tokens(db: sqlite3.Connection) -> None:
    # Prompt tokens the server took from its prompt cache (billed at a tenth), and what
    # they saved: `%mistral usage --all` shows them for every kernel.
    db.execute("ALTER TABLE ledger ADD COLUMN cached_tokens INTEGER")
    db.execute("ALTER TABLE ledger ADD COLUMN cached_saved REAL")


def now() -> str:
    """The current UTC time as ISO 8601 text: sortable, and readable in any SQLite tool."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")
