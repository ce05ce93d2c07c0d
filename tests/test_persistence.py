"""A turn through Session with the real store: nothing already shown is lost to a crash."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from phichat.chat.events import Done, Token
from phichat.chat.session import Session, TurnOptions
from phichat.domain import Conversation, Source, SourcePassage
from phichat.models.base import ChatMessage, GenerationOptions
from phichat.models.scripted import ScriptedModel
from phichat.retrieval.types import Retrieval
from phichat.storage import ConversationStore


def options() -> TurnOptions:
    return TurnOptions(GenerationOptions(max_new_tokens=64), context_chars=4000)


def test_the_user_message_is_on_disk_before_generation_starts(tmp_path: Path) -> None:
    db_path = tmp_path / "phichat.db"
    seen_on_disk: list[list[tuple[str, str]]] = []

    def reply(messages: list[ChatMessage]) -> str:
        # A second connection sees only what was committed: what a crash right now would keep.
        with ConversationStore(db_path) as other:
            loaded = other.load(conversation.id)
            seen_on_disk.append([(m.role, m.text) for m in loaded.messages])
        return "Fine, thanks."

    conversation = Conversation()
    with ConversationStore(db_path) as store:
        session = Session(ScriptedModel([reply]), options(), store=store)
        events = list(session.respond(conversation, "How are you?", False, threading.Event()))
    assert isinstance(events[-1], Done)
    assert seen_on_disk == [[("user", "How are you?")]]

    with ConversationStore(db_path) as reopened:
        loaded = reopened.load(conversation.id)
    assert [(m.role, m.text) for m in loaded.messages] == [
        ("user", "How are you?"),
        ("assistant", "Fine, thanks."),
    ]
    assert loaded.title == "How are you?"


def test_a_stopped_answer_is_saved_with_its_partial_text_and_sources(tmp_path: Path) -> None:
    db_path = tmp_path / "phichat.db"
    stop = threading.Event()
    conversation = Conversation()
    pinned = Retrieval(
        query="fort opening hours",
        sources=[Source(1, "Fort", "https://example.org/fort", (SourcePassage("At 9.", 0.7),))],
        context_text="[1] Fort\nAt 9.",
    )
    with ConversationStore(db_path) as store:
        session = Session(
            ScriptedModel(["It opens at nine [1] and closes at five."]), options(), store=store
        )
        shown: list[str] = []
        for event in session.respond(conversation, "When?", False, stop, pinned_sources=pinned):
            if isinstance(event, Token):
                shown.append(event.text)
                if len(shown) == 3:
                    stop.set()  # what Escape does in the TUI
    assert "".join(shown) == "It opens at"

    with ConversationStore(db_path) as reopened:
        answer = reopened.load(conversation.id).messages[-1]
    assert answer.role == "assistant"
    assert answer.stopped is True
    assert answer.text == "It opens at"
    assert answer.grounded is True
    assert answer.sources == pinned.sources


def test_a_process_killed_mid_answer_keeps_the_user_message(tmp_path: Path) -> None:
    db_path = tmp_path / "phichat.db"
    script = textwrap.dedent(
        f"""
        import os, threading
        from pathlib import Path
        from phichat.chat.session import Session, TurnOptions
        from phichat.domain import Conversation
        from phichat.models.base import GenerationOptions
        from phichat.models.scripted import ScriptedModel
        from phichat.storage import ConversationStore

        def die(messages):
            os._exit(9)  # no cleanup, no close: like a kill -9 during generation

        store = ConversationStore(Path({str(db_path)!r}))
        session = Session(ScriptedModel([die]), TurnOptions(GenerationOptions()), store=store)
        conversation = Conversation(id="killed000001")
        for event in session.respond(conversation, "Remember me", False, threading.Event()):
            pass
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == 9, result.stderr.decode()

    with ConversationStore(db_path) as store:
        loaded = store.load("killed000001")
    assert [(m.role, m.text) for m in loaded.messages] == [("user", "Remember me")]
