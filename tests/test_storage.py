"""The conversation store: round trips, in-place updates, cascades, migrations, threads."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from phichat.domain import Conversation, Message, Source, SourcePassage
from phichat.errors import AmbiguousId, NotFound, StorageError
from phichat.storage import ConversationStore, open_database
from phichat.storage.db import default_database_path
from phichat.storage.migrations import MIGRATIONS, apply_migrations


class Clock:
    """A clock the test advances by hand, so "most recently updated" is deterministic."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "phichat.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[ConversationStore]:
    with ConversationStore(db_path, clock=Clock()) as opened:
        yield opened


def grounded_answer() -> Message:
    return Message(
        role="assistant",
        text="Paris is the capital [1], on the Seine [2].",
        search_used=True,
        grounded=True,
        query="capital of France",
        sources=[
            Source(
                1,
                "Paris — Wikipedia",
                "https://en.wikipedia.org/wiki/Paris",
                (SourcePassage("Paris is the capital of France.", 0.83, "Overview"),),
            ),
            Source(
                2,
                "Seine",
                "https://example.org/seine",
                (SourcePassage("The Seine flows through Paris.", 0.5), SourcePassage("x", -1.25)),
            ),
        ],
        timings={"search_s": 0.4, "ttft_s": 0.12, "new_tokens": 11.0},
    )


def add(store: ConversationStore, conversation: Conversation, message: Message) -> Message:
    conversation.messages.append(message)
    store.save_message(conversation, message)
    return message


def test_a_conversation_round_trips_with_sources_timings_stopped_and_error(
    store: ConversationStore, db_path: Path
) -> None:
    conversation = Conversation(title="Capital of France")
    add(store, conversation, Message(role="user", text="What is the capital of France?"))
    add(store, conversation, grounded_answer())
    add(store, conversation, Message(role="user", text="And of Italy?"))
    add(store, conversation, Message(role="assistant", text="Rome, I thi", stopped=True))
    add(store, conversation, Message(role="assistant", text="", error="search failed: timeout"))
    store.close()

    with ConversationStore(db_path) as reopened:
        loaded = reopened.load(conversation.id)

    assert loaded == conversation


def test_saving_a_message_again_updates_it_in_place(store: ConversationStore) -> None:
    conversation = Conversation(title="t")
    add(store, conversation, Message(role="user", text="q1"))
    answer = add(store, conversation, Message(role="assistant", text="partial"))
    add(store, conversation, Message(role="user", text="q2"))

    answer.text = "partial, then finished [1]"
    answer.stopped = True
    answer.error = "oops"
    answer.sources = [Source(1, "S", "https://example.org/s")]
    store.save_message(conversation, answer)

    loaded = store.load(conversation.id)
    assert [m.text for m in loaded.messages] == ["q1", "partial, then finished [1]", "q2"]
    assert loaded.messages[1].stopped is True
    assert loaded.messages[1].error == "oops"
    assert loaded.messages[1].sources == answer.sources
    assert store.list_conversations()[0].message_count == 3


def test_messages_keep_the_order_they_were_first_saved_in(store: ConversationStore) -> None:
    conversation = Conversation()
    texts = [f"message {i}" for i in range(12)]
    for i, text in enumerate(texts):
        role = "user" if i % 2 == 0 else "assistant"
        # created_at runs backwards, so ordering by time would reverse them.
        add(store, conversation, Message(role=role, text=text, created_at=100.0 - i))
    assert [m.text for m in store.load(conversation.id).messages] == texts


def test_a_regenerated_answer_replaces_the_deleted_one_at_the_end(
    store: ConversationStore,
) -> None:
    conversation = Conversation()
    add(store, conversation, Message(role="user", text="q"))
    old = add(store, conversation, Message(role="assistant", text="old answer"))
    conversation.messages.remove(old)
    store.delete_message(conversation, old)
    add(store, conversation, Message(role="assistant", text="new answer"))
    assert [m.text for m in store.load(conversation.id).messages] == ["q", "new answer"]


def test_deleting_a_conversation_cascades_to_its_messages(
    store: ConversationStore, db_path: Path
) -> None:
    kept, doomed = Conversation(title="kept"), Conversation(title="doomed")
    for conversation in (kept, doomed):
        add(store, conversation, Message(role="user", text="q"))
        add(store, conversation, Message(role="assistant", text="a"))

    store.delete(doomed.id)

    with pytest.raises(NotFound):
        store.load(doomed.id)
    assert [c.id for c in store.list_conversations()] == [kept.id]
    raw = sqlite3.connect(db_path)
    try:
        rows = raw.execute("SELECT conversation_id FROM messages").fetchall()
    finally:
        raw.close()
    assert rows == [(kept.id,), (kept.id,)]


def test_rename_sticks_even_when_a_stale_title_is_saved_later(store: ConversationStore) -> None:
    conversation = Conversation()
    conversation.title = "first words of the question"
    add(store, conversation, Message(role="user", text="first words of the question"))

    store.rename(conversation.id, "Trip planning")
    add(store, conversation, Message(role="assistant", text="answer"))  # stale in-memory title

    assert store.load(conversation.id).title == "Trip planning"
    assert store.list_conversations()[0].title == "Trip planning"


def test_missing_conversations_raise_not_found_with_one_line(store: ConversationStore) -> None:
    for action in (
        lambda: store.load("nope\nnope"),
        lambda: store.rename("nope", "x"),
        lambda: store.delete("nope"),
    ):
        with pytest.raises(NotFound) as caught:
            action()
        assert "\n" not in str(caught.value)
        assert "nope" in str(caught.value)


def test_list_is_most_recently_updated_first_with_message_counts(
    store: ConversationStore,
) -> None:
    older, newer = Conversation(title="older"), Conversation(title="newer")
    add(store, older, Message(role="user", text="1"))
    add(store, newer, Message(role="user", text="1"))
    add(store, newer, Message(role="assistant", text="2"))
    assert [(c.title, c.message_count) for c in store.list_conversations()] == [
        ("newer", 2),
        ("older", 1),
    ]

    add(store, older, Message(role="assistant", text="2"))  # touching it moves it up
    summaries = store.list_conversations()
    assert [c.title for c in summaries] == ["older", "newer"]
    assert summaries[0].updated_at > summaries[1].updated_at
    assert summaries[0].created_at == older.created_at


def test_resolve_id_accepts_unique_prefixes_like_git(store: ConversationStore) -> None:
    for conversation_id in ("abc111111111", "abc222222222", "def333333333"):
        add(store, Conversation(id=conversation_id), Message(role="user", text="q"))

    assert store.resolve_id("abc1") == "abc111111111"
    assert store.resolve_id(" def ") == "def333333333"
    assert store.resolve_id("abc222222222") == "abc222222222"
    with pytest.raises(AmbiguousId, match="matches 2 conversations"):
        store.resolve_id("abc")
    with pytest.raises(NotFound, match="starting with 'zz'"):
        store.resolve_id("zz")
    with pytest.raises(NotFound):
        store.resolve_id("   ")
    # LIKE wildcards are not wildcards here.
    with pytest.raises(NotFound):
        store.resolve_id("%")


def test_preferences_default_overwrite_and_persist(store: ConversationStore, db_path: Path) -> None:
    assert store.get_preference("theme") is None
    assert store.get_preference("theme", "textual-dark") == "textual-dark"
    store.set_preference("theme", "nord")
    store.set_preference("theme", "gruvbox")
    store.close()
    with ConversationStore(db_path) as reopened:
        assert reopened.get_preference("theme") == "gruvbox"


def test_default_location_is_the_data_dir(tmp_path: Path) -> None:
    # conftest points PHICHAT_DATA_DIR at tmp_path / "data", which does not exist yet.
    assert default_database_path() == tmp_path / "data" / "phichat.db"
    with ConversationStore() as store:
        add(store, Conversation(), Message(role="user", text="q"))
    assert (tmp_path / "data" / "phichat.db").is_file()


def test_database_uses_wal_and_enforces_foreign_keys(db_path: Path) -> None:
    connection = open_database(db_path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute(
                "INSERT INTO messages (id, conversation_id, position, role, text, created_at) "
                "VALUES ('m', 'no-such-conversation', 1, 'user', 'x', 0)"
            )
    finally:
        connection.close()


# ---- migrations ------------------------------------------------------------------------------
def applied(path: Path) -> list[tuple[int, str]]:
    raw = sqlite3.connect(path)
    try:
        return raw.execute("SELECT number, name FROM migrations ORDER BY number").fetchall()
    finally:
        raw.close()


def test_a_new_database_gets_every_migration_once(db_path: Path) -> None:
    open_database(db_path).close()
    expected = [(n, f.__name__) for n, f in enumerate(MIGRATIONS, start=1)]
    assert applied(db_path) == expected
    assert expected[0] == (1, "m001_conversations_and_messages")

    connection = open_database(db_path)  # re-opening applies nothing twice
    try:
        assert apply_migrations(connection) == []
    finally:
        connection.close()
    assert applied(db_path) == expected


def test_a_database_at_migration_1_upgrades_and_keeps_its_data(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    old = sqlite3.connect(db_path, isolation_level=None)
    assert apply_migrations(old, MIGRATIONS[:1]) == ["m001_conversations_and_messages"]
    old.execute("INSERT INTO conversations VALUES ('c1', 'from an old phichat', 1.0, 2.0)")
    old.execute(
        "INSERT INTO messages (id, conversation_id, position, role, text, created_at) "
        "VALUES ('m1', 'c1', 1, 'user', 'hello', 1.0)"
    )
    with pytest.raises(sqlite3.OperationalError):
        old.execute("SELECT * FROM preferences")
    old.close()

    with ConversationStore(db_path) as store:
        assert store.load("c1").messages[0].text == "hello"
        store.set_preference("theme", "nord")  # the table migration 2 adds
        assert store.get_preference("theme") == "nord"
    assert [name for _, name in applied(db_path)] == [f.__name__ for f in MIGRATIONS]


def test_a_database_from_a_newer_phichat_is_refused(db_path: Path) -> None:
    open_database(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute("INSERT INTO migrations VALUES (99, 'm099_from_the_future', 0)")
    raw.commit()
    raw.close()
    with pytest.raises(StorageError, match="newer or different version"):
        open_database(db_path)


def test_a_file_that_is_not_a_database_gives_a_one_line_error(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not SQLite " * 100)
    with pytest.raises(StorageError) as caught:
        ConversationStore(db_path)
    assert str(db_path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_using_a_closed_store_is_a_storage_error(store: ConversationStore) -> None:
    store.close()
    with pytest.raises(StorageError):
        store.list_conversations()


# ---- threads ---------------------------------------------------------------------------------
def test_two_threads_saving_into_one_conversation_lose_nothing(
    store: ConversationStore,
) -> None:
    conversation = Conversation(title="busy")
    per_thread = 40
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def save_many(label: str) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                message = Message(role="user", text=f"{label}{i}")
                store.save_message(conversation, message)
                message.text += " (edited)"
                store.save_message(conversation, message)
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=save_many, args=(label,)) for label in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    texts = [m.text for m in store.load(conversation.id).messages]
    assert len(texts) == 2 * per_thread
    assert all(text.endswith(" (edited)") for text in texts)
    # Each thread's messages keep their own order, however the two interleaved.
    for label in "ab":
        mine = [t for t in texts if t.startswith(label)]
        assert mine == [f"{label}{i} (edited)" for i in range(per_thread)]


def test_storage_imports_no_ui_chat_or_heavy_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys, phichat.storage, phichat.storage.export; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('textual', 'rich', 'torch', 'transformers') or m.startswith('phichat.chat')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_deleted_conversation_stays_deleted_when_a_late_answer_is_saved(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "db.sqlite")
    conversation = Conversation(title="secret question")
    store.save_message(conversation, Message("user", "secret question"))
    store.delete(conversation.id)
    store.save_message(conversation, Message("assistant", "partial", stopped=True))
    assert store.list_conversations() == []
