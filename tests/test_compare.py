"""Compare: one question without and with search, saved, reopened, pinned and re-asked."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from phichat.chat.events import Done, Failed, SourcesReady, Status, Token
from phichat.chat.factory import turn_options
from phichat.chat.session import Session
from phichat.config import Settings
from phichat.domain import Conversation, Message, Source, SourcePassage
from phichat.errors import SearchUnavailable
from phichat.features.compare import CompareDone, SideEvent, run_compare
from phichat.features.pinning import last_pinnable, pinned_retrieval
from phichat.models.base import ChatMessage
from phichat.models.scripted import ScriptedModel
from phichat.retrieval.types import PackBudget, Retrieval, RetrievalProgress
from phichat.storage.conversations import ConversationStore
from phichat.storage.migrations import MIGRATIONS, apply_migrations

SOURCES = [
    Source(
        1,
        "Eiffel Tower facts",
        "https://facts.example.org/eiffel",
        (SourcePassage("The tower is 330 m tall and opened on 31 March 1889.", 0.9),),
    ),
    Source(2, "Visiting", "https://visit.example.com/", (SourcePassage("Tickets: €29.40."),)),
]
CONTEXT = '<source n="1" title="Eiffel Tower facts">The tower is 330 m tall.</source>'


class StubRetriever:
    """Returns fixed sources; optional hooks let a test see when retrieval runs."""

    def __init__(
        self,
        started: threading.Event | None = None,
        error: Exception | None = None,
    ) -> None:
        self.started = started
        self.error = error
        self.queries: list[str] = []

    def retrieve(
        self, query: str, budget: PackBudget, progress: RetrievalProgress, stop: threading.Event
    ) -> Retrieval:
        self.queries.append(query)
        if self.started is not None:
            self.started.set()
        progress("fetching", "fetching 2 pages")
        if self.error is not None:
            raise self.error
        progress("ranking", "ranking 4 passages")
        return Retrieval(query=query, sources=list(SOURCES), context_text=CONTEXT)


def collect(events) -> tuple[list[SideEvent], CompareDone | None, list[Failed]]:  # type: ignore[no-untyped-def]
    sides, done, failed = [], None, []
    for event in events:
        if isinstance(event, SideEvent):
            sides.append(event)
        elif isinstance(event, CompareDone):
            done = event
        else:
            failed.append(event)
    return sides, done, failed


def session_with(
    replies: list, retriever: object | None, store: ConversationStore | None = None
) -> Session:  # type: ignore[type-arg]
    return Session(ScriptedModel(replies), turn_options(Settings()), retriever, store)  # type: ignore[arg-type]


def test_retrieval_runs_while_the_answer_without_search_is_generated() -> None:
    retrieval_started = threading.Event()
    overlapped: list[bool] = []

    def offline_reply(messages: list[ChatMessage]) -> str:
        # This runs inside generation of the search-off answer: retrieval must start now.
        overlapped.append(retrieval_started.wait(10))
        return "It is 300 m tall."

    session = session_with(
        [offline_reply, "It is 330 m tall [1]."], StubRetriever(retrieval_started)
    )
    sides, done, failed = collect(
        run_compare(session, Conversation(), "How tall is the Eiffel Tower?", threading.Event())
    )
    assert overlapped == [True] and failed == []
    assert done is not None
    assert done.without is not None and done.without.text == "It is 300 m tall."
    assert done.with_search is not None and done.with_search.text == "It is 330 m tall [1]."
    # The grounded answer's prompt carried the packed sources; the other's did not.
    model = session.model
    assert isinstance(model, ScriptedModel)
    assert CONTEXT not in model.prompts[0][-1]["content"]
    assert CONTEXT in model.prompts[1][-1]["content"]
    # Events are tagged: tokens of each side, retrieval progress on the search side only.
    tokens = {
        side: "".join(e.event.text for e in sides if e.side == side and isinstance(e.event, Token))
        for side in ("without", "with")
    }
    assert tokens == {"without": "It is 300 m tall.", "with": "It is 330 m tall [1]."}
    stages = [e.event.stage for e in sides if e.side == "with" and isinstance(e.event, Status)]
    assert "fetching" in stages and "ranking" in stages
    assert not any(isinstance(e.event, SourcesReady) for e in sides if e.side == "without")
    summary = done.summary
    assert (summary.sources_used, summary.sources_cited) == (2, 1)
    # The two heights contradict each other: a conflict, with the backing source.
    assert summary.unique_facts == ()
    assert [(c.without, c.with_search, c.backed) for c in summary.conflicts] == [
        ("300 m", "330 m", "with")
    ]
    assert summary.without.total_s is not None and summary.with_search.ttft_s is not None
    assert summary.with_search.ttft_s >= summary.without.total_s  # one model, in turn
    assert summary.retrieval_s is not None


def test_a_compare_is_saved_in_the_conversation_and_reopens(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "db.sqlite")
    session = session_with(["Offline.", "Grounded [1]."], StubRetriever(), store)
    conversation = Conversation()
    collect(run_compare(session, conversation, "Q?", threading.Event()))
    reopened = store.load(conversation.id)
    assert [(m.role, m.compare_side, m.search_used) for m in reopened.messages] == [
        ("user", None, False),
        ("assistant", "without", False),
        ("assistant", "with", True),
    ]
    grounded = reopened.messages[2]
    assert grounded.context == CONTEXT and [s.n for s in grounded.sources] == [1, 2]
    assert grounded.timings["compare_ttft_s"] > 0 and "retrieval_wall_s" in grounded.timings
    store.close()


def test_comparing_the_last_question_again_replaces_its_answers(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "db.sqlite")
    session = session_with(["First.", "Offline.", "Grounded [1]."], StubRetriever(), store)
    conversation = Conversation()
    list(session.respond(conversation, "Q?", False, threading.Event()))
    _, done, _ = collect(run_compare(session, conversation, None, threading.Event()))
    assert done is not None and done.question == "Q?"
    texts = [m.text for m in store.load(conversation.id).messages]
    assert texts == ["Q?", "Offline.", "Grounded [1]."]
    store.close()


def test_a_follow_up_after_a_compare_continues_from_the_grounded_answer() -> None:
    session = session_with(["Offline.", "Grounded [1].", "Follow-up."], None)
    conversation = Conversation()
    collect(run_compare(session, conversation, "Q?", threading.Event()))
    list(session.respond(conversation, "And then?", False, threading.Event()))
    model = session.model
    assert isinstance(model, ScriptedModel)
    history = [m["content"] for m in model.prompts[-1][1:-1]]
    assert history == ["Q?", "Grounded [1]."]


def test_without_a_retriever_the_search_side_says_so_and_answers_anyway() -> None:
    session = session_with(["Offline.", "Also offline."], None)
    sides, done, _ = collect(run_compare(session, Conversation(), "Q?", threading.Event()))
    details = [e.event.detail for e in sides if isinstance(e.event, Status)]
    assert any("search is not available" in d for d in details)
    assert done is not None and done.with_search is not None
    assert done.with_search.text == "Also offline." and done.with_search.sources == []


def test_a_failed_search_fails_only_the_search_side() -> None:
    retriever = StubRetriever(error=SearchUnavailable("the search engine timed out"))
    session = session_with(["Offline."], retriever)
    sides, done, failed = collect(run_compare(session, Conversation(), "Q?", threading.Event()))
    assert failed == []
    errors = [e.event.error for e in sides if isinstance(e.event, Failed)]
    assert [e.side for e in sides if isinstance(e.event, Failed)] == ["with"]
    assert errors == ["the search engine timed out"]
    assert done is not None and done.without is not None and done.with_search is None


def test_stopping_keeps_the_partial_first_answer_and_skips_the_second() -> None:
    stop = threading.Event()

    def reply_then_stop(messages: list[ChatMessage]) -> str:
        stop.set()
        return "cut"

    session = session_with([reply_then_stop, "never"], StubRetriever())
    sides, done, _ = collect(run_compare(session, Conversation(), "Q?", stop))
    assert done is not None and done.with_search is None
    assert done.without is not None and done.without.stopped
    assert any(isinstance(e.event, Failed) and e.side == "with" for e in sides)


def test_an_empty_question_fails_at_once() -> None:
    session = session_with(["x"], StubRetriever())
    _, done, failed = collect(run_compare(session, Conversation(), "  ", threading.Event()))
    assert done is None and [f.error for f in failed] == ["the message is empty"]


def test_pinned_sources_answer_a_new_question_without_searching_again(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "db.sqlite")
    retriever = StubRetriever()
    session = session_with(["Offline.", "Grounded [1].", "Pinned [2]."], retriever, store)
    conversation = Conversation()
    collect(run_compare(session, conversation, "How tall?", threading.Event()))
    # Reopen from disk, as after a restart: the kept context is what gets pinned.
    reopened = store.load(conversation.id)
    message = last_pinnable(reopened.messages)
    assert message is not None and message.compare_side == "with"
    pinned = pinned_retrieval(message)
    assert pinned is not None and pinned.context_text == CONTEXT
    events = list(
        session.respond(
            reopened, "How much are tickets?", False, threading.Event(), pinned_sources=pinned
        )
    )
    assert retriever.queries == ["How tall?"]  # no second search
    done = next(e for e in events if isinstance(e, Done)).message
    assert done.grounded and [s.n for s in done.sources] == [1, 2] and done.context == CONTEXT
    model = session.model
    assert isinstance(model, ScriptedModel)
    assert CONTEXT in model.prompts[-1][-1]["content"]
    store.close()


def test_an_answer_saved_without_its_context_is_pinned_from_its_passages() -> None:
    old = Message(role="assistant", text="x [1]", sources=list(SOURCES), query="q")
    pinned = pinned_retrieval(old)
    assert pinned is not None and pinned.query == "q"
    assert 'n="1"' in pinned.context_text and "330 m tall" in pinned.context_text
    assert pinned_retrieval(Message(role="assistant", text="no sources")) is None


def test_migration_3_upgrades_a_database_from_migration_2(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path, isolation_level=None)
    apply_migrations(old, MIGRATIONS[:2])
    old.execute("INSERT INTO conversations VALUES ('c1', 'old', 1.0, 2.0)")
    old.execute(
        "INSERT INTO messages (id, conversation_id, position, role, text, created_at) "
        "VALUES ('m1', 'c1', 1, 'assistant', 'kept', 1.0)"
    )
    old.close()
    with ConversationStore(path) as store:
        [message] = store.load("c1").messages
        assert (message.text, message.context, message.compare_side) == ("kept", "", None)


@pytest.mark.parametrize("side", ["without", "with"])
def test_compare_side_round_trips_through_the_store(tmp_path: Path, side: str) -> None:
    with ConversationStore(tmp_path / "db.sqlite") as store:
        conversation = Conversation()
        message = Message(role="assistant", text="a", compare_side=side, context="ctx")
        store.save_message(conversation, message)
        [loaded] = store.load(conversation.id).messages
        assert (loaded.compare_side, loaded.context) == (side, "ctx")


def test_the_markdown_export_labels_both_sides_of_a_compare() -> None:
    from phichat.features.export.markdown import to_markdown

    session = session_with(["Offline.", "Grounded [1]."], StubRetriever())
    conversation = Conversation(title="Q")
    collect(run_compare(session, conversation, "Q?", threading.Event()))
    text = to_markdown(conversation)
    assert "## Assistant — compare: without search\n\nOffline." in text
    assert "## Assistant — compare: with search `search`" in text
    assert "Grounded [^1]." in text


def test_a_compare_with_pinned_sources_does_not_search_again() -> None:
    retriever = StubRetriever()
    session = session_with(["Offline.", "From the pins [1]."], retriever)
    pinned = Retrieval(query="earlier query", sources=list(SOURCES), context_text=CONTEXT)
    sides, done, _ = collect(
        run_compare(session, Conversation(), "Q?", threading.Event(), pinned=pinned)
    )
    assert retriever.queries == []
    assert done is not None and done.query == "earlier query"
    assert done.with_search is not None and done.with_search.context == CONTEXT
    assert "retrieval_wall_s" not in pinned.timings
    notes = [e.event.detail for e in sides if isinstance(e.event, Status) and e.side == "with"]
    assert "using 2 pinned sources, no new search" in notes
