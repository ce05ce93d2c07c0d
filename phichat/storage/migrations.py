"""Numbered schema migrations, applied in order and recorded in the ``migrations`` table.

A migration is a named function that takes the connection. Its number is its position in
``MIGRATIONS`` (the first is 1). Append new ones at the end and never edit or reorder one
that has shipped: a user's database remembers which names it has applied.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence

from phichat.errors import StorageError

Migration = Callable[[sqlite3.Connection], None]

MIGRATIONS: list[Migration] = []


def migration(function: Migration) -> Migration:
    MIGRATIONS.append(function)
    return function


@migration
def m001_conversations_and_messages(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )
        """
    )
    # ``position`` keeps the order messages were first saved in; ``sources`` and
    # ``timings`` are JSON because they are only ever read back whole with their message.
    db.execute(
        """
        CREATE TABLE messages (
            id TEXT PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            text TEXT NOT NULL,
            created_at REAL NOT NULL,
            search_used INTEGER NOT NULL DEFAULT 0,
            grounded INTEGER NOT NULL DEFAULT 0,
            query TEXT,
            sources TEXT NOT NULL DEFAULT '[]',
            timings TEXT NOT NULL DEFAULT '{}',
            stopped INTEGER NOT NULL DEFAULT 0,
            error TEXT
        )
        """
    )
    db.execute("CREATE INDEX messages_in_order ON messages (conversation_id, position)")
    db.execute("CREATE INDEX conversations_by_update ON conversations (updated_at)")


@migration
def m002_preferences(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE preferences (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


@migration
def m003_message_context_and_compare(db: sqlite3.Connection) -> None:
    # ``context``: the packed sources block an answer was given (to pin and re-ask).
    # ``compare_side``: "without" or "with" for the two answers of a compare, else NULL.
    db.execute("ALTER TABLE messages ADD COLUMN context TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE messages ADD COLUMN compare_side TEXT")


def applied_migrations(db: sqlite3.Connection) -> list[str]:
    """Names of the migrations already applied to ``db``, in the order they were applied."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS migrations "
        "(number INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, applied_at REAL NOT NULL)"
    )
    return [row[0] for row in db.execute("SELECT name FROM migrations ORDER BY number")]


def applied_migrations_read_only(db: sqlite3.Connection) -> list[str]:
    """Like ``applied_migrations``, for a database opened read-only (no table is created)."""
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'"
    ).fetchone()
    if exists is None:
        return []
    return [row[0] for row in db.execute("SELECT name FROM migrations ORDER BY number")]


def apply_migrations(
    db: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS
) -> list[str]:
    """Apply every migration ``db`` lacks, each in its own transaction; return their names."""
    from phichat.storage.db import transaction

    done = applied_migrations(db)
    known = [function.__name__ for function in migrations]
    if done != known[: len(done)]:
        # A newer phichat (or another program) wrote this file: guessing could destroy data.
        raise StorageError(
            "the conversation database was written by a newer or different version of "
            f"phichat (it has migrations {', '.join(done)}); upgrade phichat to open it"
        )
    newly_applied = []
    for number, function in enumerate(migrations, start=1):
        if number <= len(done):
            continue
        with transaction(db):
            # Check again under the write lock: another phichat process may have opened
            # the same file a moment ago and applied this migration already.
            (count,) = db.execute("SELECT count(*) FROM migrations").fetchone()
            if count >= number:
                continue
            function(db)
            db.execute(
                "INSERT INTO migrations (number, name, applied_at) VALUES (?, ?, ?)",
                (number, function.__name__, time.time()),
            )
        newly_applied.append(function.__name__)
    return newly_applied
