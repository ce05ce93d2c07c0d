"""Save, list, load, rename and delete conversations in the SQLite database.

``ConversationStore`` implements the ``MessageStore`` protocol that ``chat.Session`` uses,
so the user's message reaches the disk before generation starts and the answer as soon as
it ends or is stopped. One connection is shared by every thread, behind a lock.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from phichat.domain import Conversation, Message
from phichat.errors import AmbiguousId, NotFound, StorageError
from phichat.storage.converters import message_from_row, message_to_row
from phichat.storage.db import open_database, transaction
from phichat.textsafe import one_line


@dataclass(frozen=True)
class ConversationSummary:
    """One line of the conversation list: no messages, just their count."""

    id: str
    title: str
    created_at: float
    updated_at: float
    message_count: int


_SAVE_CONVERSATION = """
INSERT INTO conversations (id, title, created_at, updated_at)
VALUES (:id, :title, :created_at, :updated_at)
ON CONFLICT (id) DO UPDATE SET
    -- The title is set once, by the first save that has one; rename() changes it later.
    -- So a stale in-memory title never undoes a rename made elsewhere.
    title = CASE WHEN conversations.title = '' THEN excluded.title ELSE conversations.title END,
    updated_at = excluded.updated_at
"""

_SAVE_MESSAGE = """
INSERT INTO messages (
    id, conversation_id, position, role, text, created_at, search_used, grounded,
    query, sources, timings, stopped, error, context, compare_side
)
VALUES (
    :id, :conversation_id,
    (SELECT coalesce(max(position), 0) + 1 FROM messages WHERE conversation_id = :conversation_id),
    :role, :text, :created_at, :search_used, :grounded,
    :query, :sources, :timings, :stopped, :error, :context, :compare_side
)
ON CONFLICT (id) DO UPDATE SET
    -- Saving a message again (an answer that was stopped, or finished) updates it in
    -- place and keeps its position.
    text = excluded.text,
    search_used = excluded.search_used,
    grounded = excluded.grounded,
    query = excluded.query,
    sources = excluded.sources,
    timings = excluded.timings,
    stopped = excluded.stopped,
    error = excluded.error,
    context = excluded.context,
    compare_side = excluded.compare_side
"""


_TIMES_ARE_NUMBERS = (
    "typeof(c.created_at) IN ('integer', 'real') AND typeof(c.updated_at) IN ('integer', 'real')"
    " AND typeof(c.title) = 'text'"
)


class ConversationStore:
    def __init__(self, path: Path | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self._db = open_database(path)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._clock = clock  # "updated" times come from here, so tests can fix them
        # Conversations deleted through this store. A turn still finishing in a worker
        # thread may try to save its answer after the user deleted the conversation; that
        # save must not bring the conversation back.
        self._deleted: set[str] = set()

    # ---- messages (the chat.Session MessageStore protocol) ---------------------------------
    def save_message(self, conversation: Conversation, message: Message) -> None:
        """Insert or update ``message``, creating the conversation's row if needed.

        Saving into a conversation this store has deleted does nothing.
        """
        row = message_to_row(message, conversation.id, position=0)  # position set in SQL
        with self._using(write=True) as db:
            if conversation.id in self._deleted:
                return
            self._touch(db, conversation)
            db.execute(_SAVE_MESSAGE, row)

    def delete_message(self, conversation: Conversation, message: Message) -> None:
        with self._using(write=True) as db:
            deleted = db.execute(
                "DELETE FROM messages WHERE id = ? AND conversation_id = ?",
                (message.id, conversation.id),
            ).rowcount
            if deleted:
                db.execute(
                    "UPDATE conversations SET updated_at = ? WHERE id = ?",
                    (self._clock(), conversation.id),
                )

    # ---- conversations ---------------------------------------------------------------------
    def list_conversations(self) -> list[ConversationSummary]:
        """Every conversation, the most recently updated first.

        A row whose times are not numbers (damaged by hand or by another program) is left
        out; ``damaged_conversations`` counts them.
        """
        with self._using(write=False) as db:
            rows = db.execute(
                f"""
                SELECT c.id, c.title, c.created_at, c.updated_at,
                       (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id)
                           AS message_count
                FROM conversations c
                WHERE {_TIMES_ARE_NUMBERS}
                ORDER BY c.updated_at DESC, c.rowid DESC
                """
            ).fetchall()
        return [
            ConversationSummary(
                id=row["id"],
                title=row["title"],
                created_at=row["created_at"],
                updated_at=row["updated_at"],
                message_count=row["message_count"],
            )
            for row in rows
        ]

    def damaged_conversations(self) -> int:
        """How many conversations ``list_conversations`` leaves out as damaged."""
        with self._using(write=False) as db:
            row = db.execute(
                f"SELECT count(*) FROM conversations c WHERE NOT ({_TIMES_ARE_NUMBERS})"
            ).fetchone()
        return int(row[0])

    def load(self, conversation_id: str) -> Conversation:
        with self._using(write=False) as db:
            head = db.execute(
                "SELECT id, title, created_at FROM conversations WHERE id = ?",
                (conversation_id,),
            ).fetchone()
            if head is None:
                raise NotFound(f"no saved conversation has the id '{one_line(conversation_id)}'")
            rows = db.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY position, rowid",
                (conversation_id,),
            ).fetchall()
        return Conversation(
            id=head["id"],
            title=head["title"],
            created_at=head["created_at"],
            messages=[message_from_row(row) for row in rows],
        )

    def resolve_id(self, prefix: str) -> str:
        """The one conversation id that starts with ``prefix`` (an exact id always wins)."""
        wanted = prefix.strip()
        shown = one_line(wanted, 40)
        if not wanted:
            raise NotFound("give a conversation id (see `phichat history`)")
        with self._using(write=False) as db:
            matches: list[str] = [
                row["id"]
                for row in db.execute(
                    "SELECT id FROM conversations WHERE substr(id, 1, ?) = ? ORDER BY id",
                    (len(wanted), wanted),
                )
            ]
        if wanted in matches:
            return wanted
        if not matches:
            raise NotFound(f"no saved conversation has an id starting with '{shown}'")
        if len(matches) > 1:
            examples = ", ".join(matches[:3]) + (", …" if len(matches) > 3 else "")
            raise AmbiguousId(
                f"'{shown}' matches {len(matches)} conversations ({examples}); "
                "give more characters of the id"
            )
        return matches[0]

    def rename(self, conversation_id: str, title: str) -> None:
        with self._using(write=True) as db:
            changed = db.execute(
                "UPDATE conversations SET title = ?, updated_at = ? WHERE id = ?",
                (title, self._clock(), conversation_id),
            ).rowcount
        if not changed:
            raise NotFound(f"no saved conversation has the id '{one_line(conversation_id)}'")

    def delete(self, conversation_id: str) -> None:
        """Delete a conversation and (by the foreign key's cascade) all its messages."""
        with self._using(write=True) as db:
            self._deleted.add(conversation_id)
            deleted = db.execute(
                "DELETE FROM conversations WHERE id = ?", (conversation_id,)
            ).rowcount
        if not deleted:
            raise NotFound(f"no saved conversation has the id '{one_line(conversation_id)}'")

    # ---- preferences -----------------------------------------------------------------------
    def get_preference(self, key: str, default: str | None = None) -> str | None:
        with self._using(write=False) as db:
            row = db.execute("SELECT value FROM preferences WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row["value"])

    def set_preference(self, key: str, value: str) -> None:
        with self._using(write=True) as db:
            db.execute(
                "INSERT INTO preferences (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # ---- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- helpers ---------------------------------------------------------------------------
    def _touch(self, db: sqlite3.Connection, conversation: Conversation) -> None:
        db.execute(
            _SAVE_CONVERSATION,
            {
                "id": conversation.id,
                "title": conversation.title,
                "created_at": conversation.created_at,
                "updated_at": self._clock(),
            },
        )

    @contextmanager
    def _using(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """Hold the lock around one use of the connection; a write is one transaction.

        SQLite failures (a full disk, a file locked by another program, a closed store)
        become one-line StorageErrors.
        """
        with self._lock:
            try:
                if write:
                    with transaction(self._db):
                        yield self._db
                else:
                    yield self._db
            except sqlite3.Error as exc:
                raise StorageError(f"the conversation database failed: {exc}") from None
