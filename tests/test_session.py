"""One turn through Session.respond: events, persistence hooks, search hook, stop, regenerate."""

from __future__ import annotations

import threading

from phichat.chat.events import Done, Failed, SourcesReady, Status, Token
from phichat.chat.query import follow_up_query
from phichat.chat.session import Session, TurnOptions
from phichat.domain import Conversation, Message, Source, SourcePassage
from phichat.models.base import GenerationOptions
from phichat.models.phi3 import Phi3Model
from phichat.models.scripted import ScriptedModel
from phichat.retrieval.types import PackBudget, Retrieval


class RecordingStore:
    def __init__(self) -> None:
        self.saved: list[tuple[str, str, str]] = []
        self.deleted: list[str] = []

    def save_message(self, conversation: Conversation, message: Message) -> None:
        self.saved.append((conversation.id, message.role, message.text))

    def delete_message(self, conversation: Conversation, message: Message) -> None:
        self.deleted.append(message.id)


class CannedRetriever:
    def __init__(self) -> None:
        self.budgets: list[PackBudget] = []

    def retrieve(self, query, budget, progress, stop) -> Retrieval:  # type: ignore[no-untyped-def]
        self.budgets.append(budget)
        progress("fetching", "reading 1 of 1 pages")
        source = Source(
            1, "Fort George", "https://example.org/fort", (SourcePassage("Opens at 9.", 0.9),)
        )
        return Retrieval(query=query, sources=[source], context_text="[1] Fort George\nOpens at 9.")


def options(max_new_tokens: int = 64) -> TurnOptions:
    return TurnOptions(GenerationOptions(max_new_tokens=max_new_tokens), context_chars=4000)


def test_a_turn_streams_tokens_then_finishes_and_saves_both_messages() -> None:
    store = RecordingStore()
    session = Session(ScriptedModel(["Hello there, traveller."]), options(), store=store)
    conversation = Conversation()
    events = list(session.respond(conversation, "  hi  ", search=False, stop=threading.Event()))
    tokens = [e.text for e in events if isinstance(e, Token)]
    assert "".join(tokens) == "Hello there, traveller."
    done = events[-1]
    assert isinstance(done, Done)
    assert done.message.text == "Hello there, traveller."
    assert done.message.search_used is False
    assert [m.role for m in conversation.messages] == ["user", "assistant"]
    assert conversation.title == "hi"
    assert store.saved == [
        (conversation.id, "user", "hi"),
        (conversation.id, "assistant", done.message.text),
    ]


def test_the_user_message_is_saved_before_generation_starts() -> None:
    store = RecordingStore()
    seen_at_generation: list[int] = []

    def reply(messages):  # type: ignore[no-untyped-def]
        seen_at_generation.append(len(store.saved))
        return "ok"

    session = Session(ScriptedModel([reply]), options(), store=store)
    list(session.respond(Conversation(), "hi", search=False, stop=threading.Event()))
    assert seen_at_generation == [1]


def test_an_empty_message_fails_without_touching_the_conversation() -> None:
    conversation = Conversation()
    events = list(
        Session(ScriptedModel(), options()).respond(conversation, "  \n", False, threading.Event())
    )
    assert events == [Failed("the message is empty")]
    assert conversation.messages == []


def test_search_without_a_retriever_says_so_and_still_answers() -> None:
    session = Session(ScriptedModel(["plain answer"]), options())
    events = list(session.respond(Conversation(), "hi", search=True, stop=threading.Event()))
    statuses = [e for e in events if isinstance(e, Status)]
    assert any("not available" in s.detail for s in statuses)
    assert isinstance(events[-1], Done)
    assert events[-1].message.grounded is False


def test_search_packs_sources_into_the_prompt_and_records_them() -> None:
    model = ScriptedModel(["It opens at 9 [1]."])
    retriever = CannedRetriever()
    session = Session(model, options(), retriever=retriever)
    events = list(
        session.respond(Conversation(), "When does Fort George open?", True, threading.Event())
    )
    assert Status("fetching", "reading 1 of 1 pages") in events
    ready = next(e for e in events if isinstance(e, SourcesReady))
    assert ready.query == "When does Fort George open?"
    assert [s.n for s in ready.sources] == [1]
    message = events[-1].message
    assert (
        message.grounded
        and message.query == ready.query
        and message.sources[0].title == "Fort George"
    )
    assert "Opens at 9." in model.prompts[-1][-1]["content"]
    budget = retriever.budgets[0]
    assert budget.max_chars == 4000
    assert 0 < budget.max_tokens < 4096 - 64


def test_stop_keeps_the_partial_answer_marked_stopped() -> None:
    stop = threading.Event()
    session = Session(ScriptedModel(["one two three four five six"]), options())
    conversation = Conversation()
    received = []
    for event in session.respond(conversation, "count", search=False, stop=stop):
        if isinstance(event, Token):
            received.append(event.text)
            if len(received) == 2:
                stop.set()
    message = conversation.messages[-1]
    assert message.stopped is True
    assert message.text == "one two"


def test_regenerate_replaces_the_last_answer() -> None:
    store = RecordingStore()
    session = Session(ScriptedModel(["first", "second"]), options(), store=store)
    conversation = Conversation()
    list(session.respond(conversation, "hi", False, threading.Event()))
    old_answer = conversation.messages[-1]
    events = list(session.regenerate(conversation, search=False, stop=threading.Event()))
    assert events[-1].message.text == "second"
    assert [m.text for m in conversation.messages] == ["hi", "second"]
    assert store.deleted == [old_answer.id]


def test_a_follow_up_query_carries_the_subject_without_a_model_call() -> None:
    # Two scripted replies: the first answer and the follow-up's answer. A model call
    # for the query would take the second one and leave the answer without text.
    model = ScriptedModel(["Skagway has a railway.", "ok"])
    session = Session(model, options(), retriever=CannedRetriever())
    conversation = Conversation()
    list(session.respond(conversation, "Tell me about Skagway", False, threading.Event()))
    events = list(session.respond(conversation, "what can I do there?", True, threading.Event()))
    ready = next(e for e in events if isinstance(e, SourcesReady))
    assert ready.query == "what can I do there? Skagway"
    assert ready.query == follow_up_query(["Tell me about Skagway"], "what can I do there?")
    assert events[-1].message.text == "ok"
    assert not any("follow-up" in getattr(e, "detail", "") for e in events)


def test_a_turn_on_the_tiny_phi3_ends_with_timings(tiny_phi3: Phi3Model) -> None:
    session = Session(tiny_phi3, options(max_new_tokens=12))
    events = list(session.respond(Conversation(), "Plan a day", False, threading.Event()))
    done = events[-1]
    assert isinstance(done, Done)
    assert done.message.timings["new_tokens"] == 12
    assert done.message.timings["prompt_tokens"] > 0
    assert done.message.timings["tokens_per_s"] > 0


def test_a_streaming_answer_is_checkpointed_so_a_crash_keeps_it(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from phichat.chat import session as session_module

    monkeypatch.setattr(session_module, "PARTIAL_SAVE_INTERVAL_S", 0.0)
    saved: list[tuple[str, str, bool]] = []

    class Store(RecordingStore):
        def save_message(self, conversation: Conversation, message: Message) -> None:
            saved.append((message.id, message.text, message.stopped))

    session = Session(ScriptedModel(["one two three"]), options(), store=Store())
    events = list(session.respond(Conversation(), "count", False, threading.Event()))
    answer = events[-1].message
    checkpoints = [entry for entry in saved if entry[0] == answer.id]
    # Partial saves carry the text so far and are marked unfinished; the last save is final.
    assert checkpoints[:-1] == [
        (answer.id, "one", True),
        (answer.id, "one two", True),
        (answer.id, "one two three", True),
    ]
    assert checkpoints[-1] == (answer.id, "one two three", False)


def test_a_store_failure_is_a_failed_event_not_a_crash() -> None:
    from phichat.errors import PhichatError

    class BrokenStore(RecordingStore):
        def save_message(self, conversation: Conversation, message: Message) -> None:
            raise PhichatError("disk full")

    conversation = Conversation()
    session = Session(ScriptedModel(), options(), store=BrokenStore())
    events = list(session.respond(conversation, "hi", False, threading.Event()))
    assert events == [Failed("could not save the message: disk full")]
    assert conversation.messages == []
