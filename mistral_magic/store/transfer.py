"""Answers between stores: `export` a standalone store, `import_from` another one.

Also the `responses` table's columns and upsert, which `Store.put` shares. Functions
take the `Store` they work on, so this module never imports the package back.

An import reads a file from elsewhere, so it reads it as data: opened read-only and
``query_only``, refused in one line when it is no store (a view, a trigger, a virtual
table or a generated column anywhere: `db._check_store`), when it is over
`MAX_IMPORT_BYTES` on disk or holds over `MAX_IMPORT_ROWS` answers, when an answer's
columns do not have the types a store writes, or when reading it takes longer than
`IMPORT_SECONDS`. Every answer is checked before any is added. Imported answers are
never signed (`provenance`): their tool calls are asked about before they run.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from ..errors import one_line
from . import db
from .db import BATCH, MEMORY, StoreError, chunks, marks
from .schema import now

WRITTEN = (
    "key", "kind", "model", "backend", "response", "prompt_tokens", "completion_tokens",
    "cost", "notebook", "cell", "created", "signature",
)  # what a put sets; the reuse counts are the store's own
COLUMNS = (*WRITTEN, "hits", "saved", "last_used")
UPSERT = (
    f"INSERT INTO responses ({','.join(WRITTEN)}) VALUES ({marks(WRITTEN)}) "
    "ON CONFLICT(key) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in WRITTEN if c != "key")
)
#: the most an import takes: a course's answers are far fewer (and an export of more
#: can be split by notebook)
MAX_IMPORT_ROWS = 200_000
MAX_IMPORT_BYTES = 256 << 20
#: the longest an import may spend reading its file (a bound, not an expectation)
IMPORT_SECONDS = 120.0
IMPORT_FIX = "ask for the file again as %mistral cache export writes it"
_KEY = re.compile(r"[\w.:-]{1,256}")


def note_uses(conn: sqlite3.Connection, uses: list[tuple], stamp: str) -> None:
    """Record which notebook (and cell) stored or reused each key: what export selects."""
    conn.executemany(
        "INSERT INTO uses (key, notebook, cell, last_used) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(key, notebook) DO UPDATE SET cell=excluded.cell, last_used=excluded.last_used",
        [(key, notebook, cell, stamp) for key, notebook, cell in uses if notebook],
    )



def export(
    store,
    path: str | os.PathLike,
    *,
    keys: Iterable[str] | None = None,
    notebook: str | None = None,
) -> int:
    """Write a standalone store of some answers: `keys`, those `notebook` used, or all.

    It has this schema, no WAL and no reuse counts, so ``MistralMagics.cache_path``
    can point at it, or `import_from` read it. A file already there is replaced
    only if it is a store. Returns the number of answers written.
    """
    target = db.resolve_path(path)
    if target == MEMORY or target == store.path:
        raise StoreError(f"Export to another file than {target}, e.g. 'answers.sqlite'")
    db.check_replaceable(target)
    if keys is None and notebook is not None:
        keys = store.keys(notebook=notebook)
    wanted = None if keys is None else list(dict.fromkeys(keys))
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        out = sqlite3.connect(partial, isolation_level=None)
        try:
            db.migrate(out)
            out.execute("BEGIN")
            written = _copy_to(store, out, wanted, notebook)
            out.execute("COMMIT")
        finally:
            out.close()
        os.replace(partial, target)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"Cannot write {target} ({exc}); export to another path") from None
    finally:
        partial.unlink(missing_ok=True)
    return written


def _copy_to(store, out: sqlite3.Connection, keys: list[str] | None, notebook: str | None) -> int:
    """Copy answers (and who used them) into `out`'s open transaction; how many."""
    select = f"SELECT {','.join(WRITTEN)} FROM responses"
    queries = [(select, [])] if keys is None else [
        (f"{select} WHERE key IN ({marks(chunk)})", chunk) for chunk in chunks(keys)
    ]
    written: list[str] = []
    with store.reading() as conn:
        if conn is None:
            return 0
        for sql, args in queries:
            cursor = conn.execute(sql, args)
            while rows := cursor.fetchmany(BATCH):
                out.executemany(UPSERT, rows)
                written.extend(row[0] for row in rows)
        for chunk in chunks(written):
            used = conn.execute(
                f"SELECT key, notebook, cell, last_used FROM uses WHERE key IN ({marks(chunk)})",
                chunk,
            )
            out.executemany(
                "INSERT OR REPLACE INTO uses VALUES (?, ?, ?, ?)",
                [use for use in used if notebook is None or use[1] == notebook],
            )
    return len(written)


def import_from(store, path: str | os.PathLike) -> int:
    """Add the answers of another store (an export); answers already here are kept.

    Returns how many were added. The other file is only read, within bounds; a file
    that is no export, too large, or with an answer of the wrong types adds nothing.
    """
    source = db.resolve_path(path)
    if source == MEMORY or not Path(source).is_file():
        raise StoreError(f"No store at {source}; give the path of a file written by export")
    if source == store.path:
        return 0
    size = sum(f.stat().st_size for f in (source, Path(f"{source}-wal")) if f.exists())
    if size > MAX_IMPORT_BYTES:
        raise StoreError(
            f"Cannot import {source}: it is {size / 2**20:,.0f} MB, over the "
            f"{MAX_IMPORT_BYTES >> 20} MB an import reads; export fewer answers (one "
            "notebook's, as %mistral cache export writes by default) and import that"
        )
    src = db.connect_readonly(source, store.timeout_s, "importing", current=False, fix=IMPORT_FIX)
    deadline = time.monotonic() + IMPORT_SECONDS
    # Beyond the schema checks: a read that runs too long is stopped, not waited for.
    src.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        src.execute("PRAGMA query_only=ON")
        # An older or newer store may have other columns: take those both know.
        theirs = {row[1] for row in src.execute("SELECT * FROM pragma_table_info('responses')")}
        columns = [c for c in WRITTEN if c in theirs and c != "signature"]
        if not {"key", "response"} <= set(columns):
            return 0
        src.execute("BEGIN")  # one snapshot for the check and the copy
        count = src.execute(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM responses LIMIT {MAX_IMPORT_ROWS + 1})"
        ).fetchone()[0]
        if count > MAX_IMPORT_ROWS:
            raise StoreError(
                f"Cannot import {source}: it holds over {MAX_IMPORT_ROWS:,} answers, more than "
                "an import takes; export one notebook's answers (the default of %mistral cache "
                "export) and import that"
            )
        select = f"SELECT {','.join(columns)} FROM responses"
        for _ in _checked(src.execute(select), columns, source):
            pass  # every answer is checked before any is added
        return _add(store, _checked(src.execute(select), columns, source))
    except sqlite3.Error as exc:
        if time.monotonic() > deadline:
            raise StoreError(f"Cannot import {source}: reading it took over {IMPORT_SECONDS:g} s, "
                             f"which no export takes; {IMPORT_FIX}") from None
        raise db.failed_error(source, exc) from None
    finally:
        src.close()


def _add(store, entries: Iterable[dict]) -> int:
    """Insert checked entries whose keys are not here yet, unsigned; how many."""
    added = 0

    def write(conn, batch, secrets):
        nonlocal added
        # Skip the keys already here (llm's embed_multi), then insert the rest.
        keys = [entry["key"] for entry in batch]
        here = {r[0] for chunk in chunks(keys) for r in conn.execute(
            f"SELECT key FROM responses WHERE key IN ({marks(chunk)})", chunk)}
        stamp = now()
        rows = [store._row(entry, secrets, entry.get("created") or stamp, signed=False)
                for entry in batch if entry["key"] not in here]
        conn.executemany(f"INSERT INTO responses ({','.join(WRITTEN)}) VALUES ({marks(WRITTEN)})",
                         rows)
        note_uses(conn, [(row[0], row[8], row[9]) for row in rows], stamp)
        added += len(rows)

    store.batched(entries, write)
    return added


def _checked(cursor: sqlite3.Cursor, columns: list[str], source) -> Iterator[dict]:
    """The rows as entries, each checked against the types a store writes (else one line)."""
    number = 0
    while rows := cursor.fetchmany(BATCH):
        for row in rows:
            number += 1
            entry = dict(zip(columns, row, strict=True))
            problem = _problem(entry)
            if problem is not None:
                column, expected = problem
                raise StoreError(
                    f"Cannot import {source}: answer {number} has {column} "
                    f"{one_line(repr(entry[column]), 40)} where a store has {expected}; {IMPORT_FIX}"
                )
            entry["response"] = json.loads(entry["response"])
            yield entry


def _problem(entry: dict) -> tuple[str, str] | None:
    """The first column of `entry` that no store writes as it is, and what it should be."""
    key = entry["key"]
    if not (isinstance(key, str) and _KEY.fullmatch(key)):
        return "key", "a request key"
    for column in ("kind", "model", "backend", "notebook", "cell"):
        value = entry.get(column)
        if value is not None and not (isinstance(value, str) and len(value) <= 1000):
            return column, "text or NULL"
    for column in ("prompt_tokens", "completion_tokens"):
        value = entry.get(column)
        if value is not None and not (type(value) is int and value >= 0):
            return column, "a count or NULL"
    cost = entry.get("cost")
    if cost is not None and not (type(cost) in (int, float) and math.isfinite(cost) and cost >= 0):
        return "cost", "a price in USD or NULL"
    if not (isinstance(entry["response"], str) and _is_json(entry["response"])):
        return "response", "JSON text"
    created = entry.get("created")
    if created is not None and not (isinstance(created, str) and _is_time(created)):
        return "created", "an ISO 8601 time or NULL"
    return None


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python reads
        return False
    return True


def _is_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
