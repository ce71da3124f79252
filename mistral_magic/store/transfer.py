"""Answers between stores: `export` a standalone store, `import_from` another one.

Also the `responses` table's columns and upsert, which `Store.put` shares. Functions
take the `Store` they work on, so this module never imports the package back.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from . import db
from .db import BATCH, MEMORY, StoreError, chunks, marks
from .schema import now

COLUMNS = (
    "key", "kind", "model", "backend", "response", "prompt_tokens", "completion_tokens",
    "cost", "notebook", "cell", "created", "hits", "saved", "last_used",
)
WRITTEN = COLUMNS[:11]  # what a put sets; the reuse counts are the store's own
UPSERT = (
    f"INSERT INTO responses ({','.join(WRITTEN)}) VALUES ({marks(WRITTEN)}) "
    "ON CONFLICT(key) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in WRITTEN if c != "key")
)



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

    Returns how many were added. The other file is only read.
    """
    source = db.resolve_path(path)
    if source == MEMORY or not Path(source).is_file():
        raise StoreError(f"No store at {source}; give the path of a file written by export")
    if source == store.path:
        return 0
    src = db.connect_readonly(source, store.timeout_s, "importing", current=False)
    added = 0

    def write(conn, rows, secrets):
        nonlocal added
        # Skip the keys already here (llm's embed_multi), then insert the rest.
        keys = [row[columns.index("key")] for row in rows]
        here = {r[0] for chunk in chunks(keys) for r in conn.execute(
            f"SELECT key FROM responses WHERE key IN ({marks(chunk)})", chunk)}
        stamp = now()
        entries = []
        for row in rows:
            entry = dict(zip(columns, row, strict=True))
            if entry["key"] not in here:
                entry["response"] = json.loads(entry["response"])
                entries.append(store._row(entry, secrets, entry.get("created") or stamp))
        conn.executemany(
            f"INSERT INTO responses ({','.join(WRITTEN)}) VALUES ({marks(WRITTEN)})", entries
        )
        note_uses(conn, [(e[0], e[8], e[9]) for e in entries], stamp)
        added += len(entries)

    try:
        # An older or newer store may have other columns: take those both know.
        theirs = {row[1] for row in src.execute("PRAGMA table_info(responses)")}
        columns = [c for c in WRITTEN if c in theirs]
        if {"key", "response"} <= set(columns):
            store.batched(src.execute(f"SELECT {','.join(columns)} FROM responses"), write)
    except sqlite3.Error as exc:
        raise db.failed_error(source, exc) from None
    finally:
        src.close()
    return added
