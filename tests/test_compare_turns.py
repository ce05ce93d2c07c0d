"""A compare is two turns sharing one search: what each side records, on the compare's clock."""

from __future__ import annotations

import threading

from phichat.chat.events import Status
from phichat.chat.factory import turn_options
from phichat.chat.session import Session
from phichat.config import Settings
from phichat.domain import CompareTimes, Conversation, Source
from phichat.features.compare import CompareDone, SideEvent, run_compare
from phichat.models.base import ChatMessage
from phichat.models.scripted import ScriptedModel
from phichat.retrieval.types import PackBudget, Retrieval, RetrievalProgress

CONTEXT = '<source n="1" title="Tides">The Moon pulls the sea.</source>'


class HandClock:
    """The compare's clock, moved by hand: seconds pass only where the test says."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class QuickRetriever:
    def __init__(self) -> None:
        self.done = threading.Event()

    def retrieve(
        self, query: str, budget: PackBudget, progress: RetrievalProgress, stop: threading.Event
    ) -> Retrieval:
        progress("fetching", "fetching 1 page")
        self.done.set()
        sources = [Source(1, "Tides", "https://tides.example.org/")]
        return Retrieval(query=query, sources=sources, context_text=CONTEXT)


def test_the_search_time_is_the_search_not_the_first_answer_beside_it() -> None:
    clock = HandClock()
    retriever = QuickRetriever()

    def slow_offline_answer(messages: list[ChatMessage]) -> str:
        # Once the search has ended, this answer still takes ten seconds of the compare's clock.
        retriever.done.wait(10)
        for thread in threading.enumerate():
            if thread.name == "phichat-compare-retrieval":
                thread.join(10)
        clock.now += 10.0
        return "The wind."

    model = ScriptedModel([slow_offline_answer, "The Moon [1]."])
    session = Session(model, turn_options(Settings()), retriever)
    events = list(run_compare(session, Conversation(), "Tides?", threading.Event(), now=clock))
    done = events[-1]
    assert isinstance(done, CompareDone) and done.with_search is not None
    assert done.summary.retrieval_s is not None and done.summary.retrieval_s < 10.0
    times = done.with_search.timings.compare
    assert isinstance(times, CompareTimes) and times.total_s == 10.0
    assert done.without is not None and done.without.timings.compare is not None
    assert done.without.timings.compare.retrieval_wall_s is None  # compare-only, one side


def test_both_turns_answer_from_one_search_and_every_event_names_its_side() -> None:
    retriever = QuickRetriever()
    session = Session(
        ScriptedModel(["Offline.", "Grounded [1]."]), turn_options(Settings()), retriever
    )
    events = list(run_compare(session, Conversation(), "Tides?", threading.Event()))
    sides = [e for e in events if isinstance(e, SideEvent)]
    assert {e.side for e in sides} == {"without", "with"}
    searching = [e for e in sides if isinstance(e.event, Status) and e.event.stage == "fetching"]
    assert [e.side for e in searching] == ["with"]
    done = events[-1]
    assert isinstance(done, CompareDone) and done.with_search is not None
    assert done.with_search.context == CONTEXT and done.query == "Tides?"
    # The grounded turn took the search's sources: the turn did not search again.
    assert done.with_search.timings.query_s is None
