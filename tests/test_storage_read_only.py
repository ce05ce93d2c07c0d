"""A data folder this user may not write still opens for reading (history, show, export)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from phichat.domain import Conversation, Message
from phichat.errors import StorageError
from phichat.storage import ConversationStore
from phichat.storage import db as storage_db


def _saved(path: Path) -> Conversation:
    conversation = Conversation(id="abcd00001111", title="Tides")
    with ConversationStore(path) as store:
        for message in (Message(role="user", text="Why tides?"), Message("assistant", "Moon.")):
            conversation.messages.append(message)
            store.save_message(conversation, message)
    return conversation


def test_a_database_that_cannot_be_written_is_opened_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "phichat.db"
    saved = _saved(path)
    # Root ignores permissions, so the permission check is what the test controls.
    monkeypatch.setattr(storage_db, "_writable", lambda _path: False)
    with ConversationStore(path) as store:
        listed = store.list_conversations()
        assert [c.id for c in listed] == [saved.id]
        reopened = store.load(saved.id)
        assert [m.text for m in reopened.messages] == ["Why tides?", "Moon."]
        with pytest.raises(StorageError):
            store.save_message(reopened, Message(role="user", text="and lakes?"))


def test_read_only_opening_never_writes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "phichat.db"
    _saved(path)
    for extra in tmp_path.glob("phichat.db-*"):
        extra.unlink()
    before = path.read_bytes()
    connection = storage_db.open_read_only(path)
    connection.close()
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("phichat.db-*"))


def test_a_writable_database_is_not_opened_read_only(tmp_path: Path) -> None:
    path = tmp_path / "phichat.db"
    _saved(path)
    assert storage_db._writable(path) == (os.access(path, os.W_OK))
