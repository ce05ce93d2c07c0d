"""Answer one question twice, without and with web search, for a side-by-side compare.

Retrieval waits on the network and generation on the CPU, so they overlap: the search-off
answer streams while the pages are fetched and ranked. The grounded answer follows, from
the sources already found (the same model cannot usefully run two generations at once on
a CPU). Every event is tagged with its side, so a UI can stream two columns.

Both answers are saved in the conversation after the one question, marked with their
``compare_side``; a follow-up continues from the grounded one.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from phichat.chat.compare_summary import CompareSummary, Side, summarize
from phichat.chat.events import Done, Event, Failed, Status, Token
from phichat.chat.session import Session, take_trailing_answers
from phichat.domain import Conversation, Message
from phichat.errors import PhichatError
from phichat.retrieval.searchproblems import without_sources_line
from phichat.retrieval.types import Retrieval
from phichat.textsafe import one_line

SIDES: tuple[Side, Side] = ("without", "with")


@dataclass(frozen=True)
class SideEvent:
    """One event of one side's answer."""

    side: Side
    event: Event


@dataclass(frozen=True)
class CompareDone:
    question: str
    without: Message | None
    with_search: Message | None
    query: str | None
    summary: CompareSummary


CompareEvent = SideEvent | CompareDone | Failed

_END = object()


class _Clock:
    """Seconds since the compare started: both sides are timed from the same moment."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._start = now()

    def __call__(self) -> float:
        return self._now() - self._start


def _in_thread(
    name: str,
    side: Side,
    work: Callable[[Callable[[SideEvent], None]], None],
    out: queue.Queue[object],
) -> threading.Thread:
    """Run ``work(emit)`` in a daemon thread; its events, then an end marker, go to ``out``.

    An exception becomes a ``Failed`` event of ``side``: a bug in one side must not hang
    the other or the caller.
    """

    def run() -> None:
        try:
            work(out.put)
        except PhichatError as exc:
            out.put(SideEvent(side, Failed(one_line(str(exc), 500))))
        except Exception as exc:
            text = f"unexpected error: {type(exc).__name__}: {exc}"
            out.put(SideEvent(side, Failed(one_line(text, 500))))
        finally:
            out.put((_END, name))

    thread = threading.Thread(target=run, name=f"phichat-compare-{name}", daemon=True)
    thread.start()
    return thread


def run_compare(
    session: Session,
    conversation: Conversation,
    question: str | None,
    stop: threading.Event,
    *,
    pinned: Retrieval | None = None,
    now: Callable[[], float] = time.perf_counter,
) -> Iterator[CompareEvent]:
    """Answer ``question`` without and with search (``None``: the last question again).

    With ``pinned`` sources, the search side uses them instead of searching again.

    Yields ``SideEvent``s as both sides progress, then one ``CompareDone``; a compare that
    cannot start at all (an empty question, a failed save) yields one ``Failed``.

    Answering the last question again replaces its answers only once either side has its
    first words: a compare that fails or is stopped before then keeps them.
    """
    if question is None and not any(m.role == "user" for m in conversation.messages):
        yield Failed("there is no question to compare yet")
        return
    replaced = take_trailing_answers(conversation) if question is None else []
    try:
        yield from _compare(session, conversation, question, stop, pinned, now, replaced)
    finally:
        if replaced:
            _restore(session, conversation, replaced)


def _restore(session: Session, conversation: Conversation, replaced: list[Message]) -> None:
    """Put back the answers a compare was to replace, dropping its empty (stopped) ones."""
    asked = max(i for i, m in enumerate(conversation.messages) if m.role == "user")
    for empty in conversation.messages[asked + 1 :]:
        if session.store is not None:
            with contextlib.suppress(PhichatError):
                session.store.delete_message(conversation, empty)
    del conversation.messages[asked + 1 :]
    conversation.messages.extend(replaced)
    replaced.clear()


def _compare(
    session: Session,
    conversation: Conversation,
    question: str | None,
    stop: threading.Event,
    pinned: Retrieval | None,
    now: Callable[[], float],
    replaced: list[Message],
) -> Iterator[CompareEvent]:
    clock = _Clock(now)
    if question is None:
        asked = conversation.messages[-1].text
        history = conversation.messages[:-1]
        first_side = session.answer_again(conversation, False, stop)
    else:
        asked = question.strip()
        if not asked:
            yield Failed("the message is empty")
            return
        history = list(conversation.messages)
        first_side = session.respond(conversation, asked, False, stop)
    messages_before = len(history)

    retriever = session.retriever if pinned is None else None
    query: str | None = pinned.query if pinned is not None else None
    if retriever is not None:
        try:
            query = session.retrieval_query(history, asked, stop)
            budget = session.pack_budget(asked)
        except PhichatError as exc:
            yield Failed(one_line(str(exc), 500))
            return

    events: queue.Queue[object] = queue.Queue()
    found: list[Retrieval] = [pinned] if pinned is not None else []
    running = {"without"}
    retrieval_started = 0.0

    def answer_without(emit: Callable[[SideEvent], None]) -> None:
        for event in first_side:
            emit(SideEvent("without", event))

    _in_thread("without", "without", answer_without, events)
    if pinned is not None:
        count = len(pinned.sources)
        yield SideEvent("with", Status("searching", f"using {count} pinned sources, no new search"))
    if retriever is not None and query is not None:
        running.add("retrieval")
        yield SideEvent("with", Status("searching", query))
        retrieval_started = clock()

        def retrieve(emit: Callable[[SideEvent], None]) -> None:
            def progress(stage: str, detail: str) -> None:
                emit(SideEvent("with", Status(stage, detail)))  # type: ignore[arg-type]

            found.append(retriever.retrieve(query, budget, progress, stop))

        _in_thread("retrieval", "with", retrieve, events)

    answers: dict[Side, Message | None] = {"without": None, "with": None}
    first_token: dict[Side, float] = {}
    retrieval_failed: str | None = None
    while running:
        item = events.get()
        if isinstance(item, tuple) and item[0] is _END:
            running.discard(item[1])
            continue
        assert isinstance(item, SideEvent)
        if item.side == "with" and isinstance(item.event, Failed):
            retrieval_failed = item.event.error  # raised by the retriever: shown once, below
            continue
        never_saved = question is not None and len(conversation.messages) == messages_before
        if item.side == "without" and isinstance(item.event, Failed) and never_saved:
            # The question itself was never saved: nothing to compare.
            stop.set()
            yield Failed(item.event.error)
            return
        yield from _tracked(item, clock, first_token, answers, session, conversation, replaced)

    retrieval = found[0] if found else None
    if retrieval is not None and pinned is None:
        retrieval.timings.setdefault("retrieval_wall_s", clock() - retrieval_started)
        problem = without_sources_line(retrieval, stop.is_set())
        if problem is not None:
            yield SideEvent("with", Status("searching", problem))
    if retrieval_failed is not None:
        yield SideEvent("with", Failed(retrieval_failed))
    elif stop.is_set():
        yield SideEvent("with", Failed("stopped before the answer with search began"))
    else:
        second_side = session.answer_again(conversation, True, stop, pinned_sources=retrieval)
        for event in second_side:
            yield from _tracked(
                SideEvent("with", event),
                clock,
                first_token,
                answers,
                session,
                conversation,
                replaced,
            )
    if replaced:  # neither side wrote a word: keep the old answers (before the UI looks)
        _restore(session, conversation, replaced)
    yield CompareDone(
        question=asked,
        without=answers["without"],
        with_search=answers["with"],
        query=query,
        summary=summarize(answers["without"], answers["with"], asked),
    )


def _tracked(
    item: SideEvent,
    clock: _Clock,
    first_token: dict[Side, float],
    answers: dict[Side, Message | None],
    session: Session,
    conversation: Conversation,
    replaced: list[Message],
) -> Iterator[SideEvent]:
    """Time the side's first token and end; label and re-save its finished answer.

    The first token of either side also deletes the ``replaced`` answers.
    """
    event = item.event
    if isinstance(event, Token) and item.side not in first_token:
        first_token[item.side] = clock()
        if replaced:
            try:
                session.forget(conversation, replaced)
            except PhichatError as exc:
                yield SideEvent(item.side, Failed(f"could not replace the old answer: {exc}"))
    if isinstance(event, Done):
        message = event.message
        message.compare_side = item.side
        if item.side in first_token:
            message.timings["compare_ttft_s"] = first_token[item.side]
        message.timings["compare_total_s"] = clock()
        answers[item.side] = message
        if session.store is not None:
            try:
                session.store.save_message(conversation, message)
            except PhichatError as exc:
                yield SideEvent(item.side, Failed(f"could not save the answer: {exc}"))
                return
    elif isinstance(event, Failed):
        # A failed answer may still have been kept (with its partial text): label it too.
        kept = conversation.messages[-1] if conversation.messages else None
        if kept is not None and kept.role == "assistant" and kept.compare_side is None:
            kept.compare_side = item.side
            answers[item.side] = kept
            if session.store is not None:
                with contextlib.suppress(PhichatError):
                    session.store.save_message(conversation, kept)
    yield item
