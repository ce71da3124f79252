"""The store's SQLite file: where it lives, opening it safely, sharing it, no secrets in it.

`mistral_magic.store` is the interface; this module is the file underneath it:

- `resolve_path` turns ``MistralMagics.cache_path`` (None, a folder or a file) into
  the file, and `make_folder` creates its folder with a ``.gitignore`` of ``*``;
- `connect` opens it for writing (WAL, busy timeout, migrations from `schema`
  applied) or, where the file or folder cannot be written, for reading only; a file
  that is not a store is a one-line `StoreError`;
- `Database` holds the one connection: opened on first use, shared by threads behind
  a lock, reopened in a forked child, every write one ``BEGIN IMMEDIATE`` transaction,
  every SQLite failure a one-line `StoreError`;
- credentials are taken out of everything before it is written (`secrets`).

Standard library only: it is imported lazily by the session, never by ``%load_ext``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from ..errors import ConfigError, one_line
from .schema import MIGRATIONS_TABLE, migrate, pending_migrations
from .secrets import Scrubber

FOLDER = ".mistral_magic"
FILENAME = "store.sqlite"
MEMORY = ":memory:"
GITIGNORE = "*\n"

MOVE_FIX = "move it away or set MistralMagics.cache_path to another file"
#: the longest text or blob a value read or written may be: answers are far smaller, and
#: a file from elsewhere cannot make a read build one of gigabytes
MAX_VALUE_BYTES = 64 << 20


class StoreError(ConfigError):
    """The store's file cannot be used as asked; the message names the file and the fix."""


# -- where ---------------------------------------------------------------------------


def resolve_path(path: str | os.PathLike | None) -> Path | str:
    """The store's file: ``.mistral_magic/store.sqlite`` by default, inside a folder given.

    Relative paths are made absolute now, so a later ``os.chdir`` does not move the store.
    """
    if path is None:
        return Path.cwd() / FOLDER / FILENAME
    if str(path) == MEMORY:
        return MEMORY
    resolved = Path(path).expanduser().absolute()
    return resolved / FILENAME if resolved.is_dir() else resolved


def make_folder(file: Path) -> None:
    """Create the file's folder; one the store creates, or ``.mistral_magic``, is git-ignored.

    A folder of the user's own is left as it is: a store placed next to a notebook may
    be meant to be shipped with it.
    """
    folder = file.parent
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if created or folder.name == FOLDER:
            with open(folder / ".gitignore", "x", encoding="utf-8") as f:
                f.write(GITIGNORE)
    except FileExistsError:
        pass  # the .gitignore is there already, maybe written by another kernel just now
    except OSError as exc:
        raise StoreError(
            f"Cannot create the store {file} ({type(exc).__name__}: {exc.strerror or exc}); "
            "set MistralMagics.cache_path to a file in a writable folder"
        ) from None


# -- opening -------------------------------------------------------------------------


def connect(
    file: Path | str, timeout_s: float, create: bool
) -> tuple[sqlite3.Connection, str | None]:
    """Open the store; returns the connection and, when it can only be read, why.

    `create` makes the file (the caller made its folder). Without it the file must exist.
    """
    if file == MEMORY:
        conn = _sqlite(MEMORY, timeout_s)
        migrate(conn)
        return conn, None
    try:
        conn = _sqlite(str(file), timeout_s)
    except sqlite3.OperationalError as exc:
        return _unwritable(file, timeout_s, exc, create)
    try:
        _check_store(conn, file)
        _use_wal(conn, timeout_s)
        # WAL with synchronous=NORMAL never corrupts; a power cut may lose the last commits.
        conn.execute("PRAGMA synchronous=NORMAL")
        migrate(conn)
        return conn, None
    except sqlite3.OperationalError as exc:
        conn.close()
        if is_busy(exc):
            raise locked_error(file, timeout_s) from None
        # Could not switch to WAL or migrate: the file or its folder is read-only.
        return _unwritable(file, timeout_s, exc, create)
    except BaseException:
        conn.close()
        raise


def _unwritable(file, timeout_s: float, exc: sqlite3.OperationalError, create: bool):
    """A store that cannot be written: an error when it was to be created, else read-only."""
    if create:
        raise StoreError(
            f"Cannot create the store {file} ({exc}); "
            "set MistralMagics.cache_path to a file in a writable folder"
        ) from None
    return connect_readonly(file, timeout_s, str(exc)), str(exc)


def _use_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch the file to WAL, waiting while another connection holds it.

    SQLite answers a journal-mode change with "locked" at once, without its busy
    handler: two kernels creating the store together would otherwise fail. Once one
    has switched, the file stays in WAL and the others find it so.
    """
    deadline = time.monotonic() + timeout_s
    pause = 0.001
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused because another connection holds the file."""
    name = getattr(exc, "sqlite_errorname", None)  # Python 3.11+
    if name is not None:
        return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    return "locked" in str(exc)  # Python 3.10 gives only the message


def _sqlite(target: str, timeout_s: float, uri: bool = False) -> sqlite3.Connection:
    # One connection is shared by the kernel thread and the background loop's thread
    # behind the Store's lock; transactions are begun explicitly (BEGIN IMMEDIATE).
    conn = sqlite3.connect(
        target, timeout=timeout_s, isolation_level=None, check_same_thread=False, uri=uri
    )
    # A store may be a file from elsewhere: no value it makes may grow past a bound, and
    # its schema may not call functions with side effects.
    if hasattr(conn, "setlimit"):  # Python 3.11+
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.execute("PRAGMA trusted_schema=OFF")
    return conn


def connect_readonly(
    file: Path, timeout_s: float, reason: str, current: bool = True, fix: str = MOVE_FIX
) -> sqlite3.Connection:
    """The store opened for reading only (a WAL file in a read-only folder needs immutable).

    `current` requires this version's tables (a store read in place); an older store
    read to import from need not have them. `fix` ends the error for a file that is no store.
    """
    for mode in ("mode=ro", "immutable=1"):
        try:
            conn = _sqlite(f"{file.as_uri()}?{mode}", timeout_s, uri=True)
        except sqlite3.OperationalError:
            continue
        try:
            _check_store(conn, file, fix)
            missing = pending_migrations(conn)
        except sqlite3.OperationalError:
            conn.close()
            continue
        except BaseException:
            conn.close()
            raise
        if missing and current:
            conn.close()
            raise StoreError(
                f"The store {file} is read-only ({reason}) and lacks this version's "
                "tables; copy it to a writable folder and set MistralMagics.cache_path to the copy"
            )
        return conn
    raise StoreError(
        f"Cannot open the store {file} ({reason}); "
        "set MistralMagics.cache_path to a file in a writable folder"
    )


def _check_store(conn: sqlite3.Connection, file: Path | str, fix: str = MOVE_FIX) -> None:
    """Refuse a file that is not SQLite, a SQLite database of something else, or one whose
    schema would run queries of its own (views, triggers, virtual tables, generated columns):
    a store has tables and indexes only, so reading one is bounded by its size."""
    try:
        objects = conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
        tables = {name for kind, name, _ in objects if kind == "table"}
        if objects and MIGRATIONS_TABLE not in tables:
            raise StoreError(
                f"{file} is a SQLite database of something else, not a mistral_magic store: {fix}"
            )
        for kind, name, sql in objects:
            if kind in ("view", "trigger") or (sql or "").lstrip()[:14].upper() == "CREATE VIRTUAL":
                _refuse_schema(file, f"a {kind if kind != 'table' else 'virtual table'}", name, fix)
        for name in sorted(tables):
            if any(hidden in (2, 3) for (hidden,) in conn.execute(
                    "SELECT hidden FROM pragma_table_xinfo(?)", (name,))):
                _refuse_schema(file, "a generated column in table", name, fix)
    except sqlite3.OperationalError:
        raise  # locked or unreadable: the caller decides (wait, or open read-only)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{file} is not a mistral_magic store ({exc}): {fix}") from None


def _refuse_schema(file: Path | str, what: str, name: str, fix: str) -> None:
    raise StoreError(
        f"{file} is not a mistral_magic store: it holds {what} {one_line(repr(name), 60)}, "
        f"which a store never has (it would run queries of its own when read): {fix}"
    )


def check_replaceable(target: Path) -> None:
    """Refuse to write an export over a file that is not a store, or a store in use."""
    if not target.exists():
        return
    wal = Path(f"{target}-wal")
    if wal.exists() and wal.stat().st_size:
        raise StoreError(f"{target} is in use by a kernel; close it, or export to another name")
    if not target.stat().st_size:
        return
    try:
        conn = _sqlite(f"{target.as_uri()}?mode=ro", 1.0, uri=True)
        try:
            _check_store(conn, target)
        finally:
            conn.close()
    except (StoreError, sqlite3.Error):
        raise StoreError(
            f"{target} exists and is not a mistral_magic store; export to another name"
        ) from None


def locked_error(file: Path | str, timeout_s: float) -> StoreError:
    return StoreError(
        f"The store {file} stayed locked by another process for {timeout_s:g} s; run it again, "
        "or set MistralMagics.cache_path to another file"
    )


def failed_error(file: Path | str, exc: sqlite3.Error) -> StoreError:
    """The one line for an SQLite failure during an operation."""
    if isinstance(exc, sqlite3.OperationalError):
        return StoreError(
            f"The store {file} failed ({exc}); check the disk, or set MistralMagics.cache_path "
            "to another file"
        )
    return StoreError(f"The store {file} is damaged ({exc}): {MOVE_FIX}")


# -- the connection ------------------------------------------------------------------

#: rows per write transaction when many are written: one commit per batch.
BATCH = 1000
TIMEOUT_S = 30.0


class Database:
    """The store's file, opened on first use and shared by every thread behind one lock.

    Reads find nothing (and create nothing) while there is no file; the first write
    creates it. Each write is one ``BEGIN IMMEDIATE`` transaction.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        secrets: Callable[[], Iterable[str | None]] | None = None,
        timeout_s: float = TIMEOUT_S,
    ):
        self.path = resolve_path(path)
        self.timeout_s = timeout_s
        self.scrub = Scrubber(secrets)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._readonly: str | None = None  # why writes are refused, when opened read-only
        _open_databases.add(self)

    def __repr__(self) -> str:
        state = "read-only" if self._readonly else "" if self.exists else "not created yet"
        return f"<{type(self).__name__} {self.path}{f' ({state})' if state else ''}>"

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def exists(self) -> bool:
        """Whether the file exists yet (in memory, always)."""
        return self.path == MEMORY or Path(self.path).is_file()

    @property
    def readonly(self) -> bool:
        """Whether the file can only be read (opens it to find out)."""
        with self.reading():
            return self._readonly is not None

    def close(self) -> None:
        """Close the connection; the next use opens it again (in memory: a new, empty store)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None

    def _open(self, create: bool) -> sqlite3.Connection | None:
        """The connection, opened on first use; None when there is no file and none is wanted."""
        if self._conn is not None:
            if self.exists:
                return self._conn
            # The file was deleted under us (the folder removed): start a new one.
            self._conn.close()
            self._conn = None
        creating = not self.exists
        if creating:
            if not create:
                return None
            make_folder(Path(self.path))
        self._conn, self._readonly = connect(self.path, self.timeout_s, creating)
        return self._conn

    def _after_fork(self) -> None:
        # The child must not use its parent's connection (SQLite forbids it), and the
        # lock may have been held by a thread that the child does not have.
        self._lock = threading.RLock()
        self._conn = None

    @contextmanager
    def guard(self) -> Iterator[None]:
        """An SQLite failure inside becomes a one-line `StoreError`."""
        try:
            yield
        except sqlite3.Error as exc:
            if is_busy(exc):
                raise locked_error(self.path, self.timeout_s) from None
            raise failed_error(self.path, exc) from None

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection | None]:
        """The connection for reads: None when there is no store yet (nothing is created)."""
        with self._lock, self.guard():
            yield self._open(create=False)

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, locked up front: two kernels never deadlock upgrading."""
        with self._lock, self.guard():
            conn = self._open(create=True)
            if self._readonly is not None:
                raise StoreError(
                    f"The store {self.path} is read-only ({self._readonly}): its answers are "
                    "read but nothing new is kept; copy it to a writable folder and set "
                    "MistralMagics.cache_path to the copy"
                )
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    def batched(self, items: Iterable[Any], write: Callable[..., None]) -> int:
        """`write(conn, batch, secrets)` per `BATCH` items, each batch one transaction."""
        iterator = iter(items)
        written = 0
        while batch := list(islice(iterator, BATCH)):
            secrets = self.scrub.secrets()
            with self.writing() as conn:
                write(conn, batch, secrets)
            written += len(batch)
        return written


_open_databases: weakref.WeakSet[Database] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for database in list(_open_databases):
        database._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


# -- small helpers -----------------------------------------------------------------

#: keys per ``IN (...)`` list: under the 999 variables of the oldest SQLite builds.
CHUNK = 500


def chunks(items: list, size: int = CHUNK) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def marks(items: Sized) -> str:
    """The ``?, ?, ...`` placeholders for `items`."""
    return ",".join("?" * len(items))


def parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
