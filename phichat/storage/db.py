"""Open the conversation database: one SQLite file, WAL journal, foreign keys on.

The connection is shared between threads (the TUI saves messages from its workers), so it
is opened with ``check_same_thread=False``; ``ConversationStore`` serialises every use of
it with a lock. Transactions are explicit (``isolation_level=None`` plus ``transaction``),
so a migration's DDL and its bookkeeping row commit together.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from phichat import paths
from phichat.errors import StorageError

DATABASE_NAME = "phichat.db"

# How long a writer waits for another process (a second phichat) to finish its write.
_BUSY_TIMEOUT_MS = 5000


def default_database_path() -> Path:
    return paths.data_dir() / DATABASE_NAME


def open_database(path: Path | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date."""
    from phichat.storage.migrations import apply_migrations

    path = path if path is not None else default_database_path()
    if path.exists() and not _writable(path):
        return open_read_only(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create the data folder {path.parent}: {exc.strerror}") from None
    try:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the conversation database {path}: {exc}") from None
    try:
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        # WAL: readers never block the writer, and a killed process loses no committed row.
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
        apply_migrations(connection)
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise StorageError(f"cannot use the conversation database {path}: {exc}") from None
    except BaseException:
        connection.close()
        raise
    return connection


def _writable(path: Path) -> bool:
    """Whether SQLite could write ``path``: the file, and its folder for the WAL files."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def open_read_only(path: Path) -> sqlite3.Connection:
    """Open an existing database that this user may not write (a read-only data folder).

    Reading still works (``history``, ``history show``, export); a write fails with a
    one-line StorageError. ``immutable=1`` because a read-only folder cannot hold the WAL
    index SQLite would otherwise create, so nothing else may be writing the file either.
    """
    from phichat.storage.migrations import MIGRATIONS, applied_migrations_read_only

    uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
    try:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        done = applied_migrations_read_only(connection)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the conversation database {path}: {exc}") from None
    if done != [function.__name__ for function in MIGRATIONS]:
        connection.close()
        raise StorageError(
            f"the conversation database {path} is read-only and needs an upgrade this "
            "phichat cannot write; make its folder writable"
        )
    return connection


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run a block as one write transaction: commit on success, roll back on any error."""
    # IMMEDIATE takes the write lock up front, so two processes never deadlock upgrading
    # a read lock to a write lock halfway through.
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
