"""A regenerate (or a compare of the last question) that fails keeps the answer it replaces.

The old answer is only deleted once the new one has text to take its place.
"""

from __future__ import annotations

import threading
from pathlib import Path

from phichat.chat.events import Done, Failed, Token
from phichat.chat.session import Session, TurnOptions
from phichat.domain import Conversation
from phichat.errors import ModelServerError, SearchUnavailable
from phichat.features.compare import CompareDone, run_compare
from phichat.models.base import ChatMessage, GenerationOptions
from phichat.models.scripted import ScriptedModel
from phichat.retrieval.types import PackBudget, Retrieval
from phichat.storage.conversations import ConversationStore


def options() -> TurnOptions:
    return TurnOptions(GenerationOptions(max_new_tokens=64), context_chars=4000)


def server_gone(_messages: list[ChatMessage]) -> str:
    raise ModelServerError("cannot reach the model server at http://127.0.0.1:9/v1")


class BrokenRetriever:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def retrieve(self, query, budget: PackBudget, progress, stop) -> Retrieval:  # type: ignore[no-untyped-def]
        raise self.error


def asked_and_answered(tmp_path: Path, replies, retriever=None):  # type: ignore[no-untyped-def]
    store = ConversationStore(tmp_path / "phichat.db")
    session = Session(ScriptedModel(replies), options(), retriever=retriever, store=store)
    conversation = Conversation()
    events = list(session.respond(conversation, "What causes tides?", False, threading.Event()))
    assert isinstance(events[-1], Done)
    return store, session, conversation


def saved_texts(store: ConversationStore, conversation: Conversation) -> list[str]:
    return [m.text for m in store.load(conversation.id).messages]


def test_a_regenerate_that_fails_before_any_text_keeps_the_old_answer(tmp_path: Path) -> None:
    store, session, conversation = asked_and_answered(tmp_path, ["The Moon.", server_gone])
    old = conversation.messages[-1]
    events = list(session.regenerate(conversation, False, threading.Event()))
    assert isinstance(events[-1], Failed)
    assert "cannot reach the model server" in events[-1].error
    assert conversation.messages[-1] is old
    assert [m.text for m in conversation.messages] == ["What causes tides?", "The Moon."]
    assert saved_texts(store, conversation) == ["What causes tides?", "The Moon."]


def test_a_regenerate_whose_search_breaks_keeps_the_old_answer(tmp_path: Path) -> None:
    # A search engine's malformed reply may surface as a bug (TypeError) or an error.
    for error in (TypeError("'NoneType' object is not iterable"), SearchUnavailable("down")):
        store, session, conversation = asked_and_answered(
            tmp_path / type(error).__name__, ["The Moon.", "Sun too."], BrokenRetriever(error)
        )
        try:
            events = list(session.regenerate(conversation, True, threading.Event()))
        except TypeError:
            events = []
        assert not any(isinstance(e, Done) for e in events)
        assert [m.text for m in conversation.messages] == ["What causes tides?", "The Moon."]
        assert saved_texts(store, conversation) == ["What causes tides?", "The Moon."]


def test_a_regenerate_stopped_before_its_first_word_keeps_the_old_answer(tmp_path: Path) -> None:
    store, session, conversation = asked_and_answered(tmp_path, ["The Moon.", "Sun too."])
    stop = threading.Event()
    stop.set()
    events = list(session.regenerate(conversation, False, stop))
    assert isinstance(events[-1], Failed)
    assert [m.text for m in conversation.messages] == ["What causes tides?", "The Moon."]
    assert saved_texts(store, conversation) == ["What causes tides?", "The Moon."]


def test_a_regenerate_replaces_the_old_answer_once_new_text_arrives(tmp_path: Path) -> None:
    store, session, conversation = asked_and_answered(tmp_path, ["The Moon.", "The Moon and Sun."])
    seen_at_first_token: list[str] = []
    for event in session.regenerate(conversation, False, threading.Event()):
        if isinstance(event, Token) and not seen_at_first_token:
            seen_at_first_token = saved_texts(store, conversation)
    # Until the first word the old answer was still saved; then it was replaced.
    assert seen_at_first_token in (["What causes tides?"], ["What causes tides?", "The"])
    assert saved_texts(store, conversation) == ["What causes tides?", "The Moon and Sun."]
    assert [m.text for m in conversation.messages] == ["What causes tides?", "The Moon and Sun."]


def test_a_compare_of_the_last_question_that_fails_keeps_the_old_answer(tmp_path: Path) -> None:
    store, session, conversation = asked_and_answered(
        tmp_path, ["The Moon.", server_gone], BrokenRetriever(SearchUnavailable("down"))
    )
    events = list(run_compare(session, conversation, None, threading.Event()))
    assert isinstance(events[-1], CompareDone)
    assert [m.text for m in conversation.messages] == ["What causes tides?", "The Moon."]
    assert saved_texts(store, conversation) == ["What causes tides?", "The Moon."]


def test_a_compare_of_the_last_question_replaces_the_old_answer(tmp_path: Path) -> None:
    store, session, conversation = asked_and_answered(tmp_path, ["The Moon.", "Gravity."])
    list(run_compare(session, conversation, None, threading.Event()))
    assert saved_texts(store, conversation) == ["What causes tides?", "Gravity.", "Gravity."]
