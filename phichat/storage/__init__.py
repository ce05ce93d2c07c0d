"""Conversations on disk: one SQLite database with numbered migrations, and export."""

from phichat.errors import AmbiguousId, NotFound, StorageError
from phichat.storage.conversations import ConversationStore, ConversationSummary
from phichat.storage.db import default_database_path, open_database

__all__ = [
    "AmbiguousId",
    "ConversationStore",
    "ConversationSummary",
    "NotFound",
    "StorageError",
    "default_database_path",
    "open_database",
]
