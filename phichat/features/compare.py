"""Answer one question twice, without and with web search, for a side-by-side compare.

Retrieval waits on the network and generation on the CPU, so they overlap: the search-off
answer streams while the pages are fetched and ranked. The grounded answer follows, from
the sources already found (the same model cannot usefully run two generations at once on
a CPU). Every event is tagged with its side, so a UI can stream two columns.

Both answers are saved in the conversation after the one question, marked with their
``compare_side``; a follow-up continues from the grounded one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from phichat.chat.events import Done, Event, Failed, Status, Token
from phichat.chat.session import SearchPlan, Session, take_trailing_answers
from phichat.chat.turn import TurnRequest
from phichat.domain import CompareTimes, Conversation, Message, Side
from phichat.errors import PhichatError
from phichat.features.compare_summary import CompareSummary, summarize
from phichat.retrieval.types import Retrieval
from phichat.textsafe import one_line
from phichat.threads import Channel, Sink

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


class _Clock:
    """Seconds since the compare started: both sides are timed from the same moment."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._start = now()

    def __call__(self) -> float:
        return self._now() - self._start


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
    compare = _Compare(session, conversation, stop, pinned, _Clock(now), replaced)
    try:
        yield from compare.run(question)
    finally:
        if replaced:
            compare.restore()


class _Compare:
    """One compare: two turns of one question, the first beside the search the second
    answers from. Its steps are the methods below, in the order ``run`` takes them."""

    def __init__(
        self,
        session: Session,
        conversation: Conversation,
        stop: threading.Event,
        pinned: Retrieval | None,
        clock: _Clock,
        replaced: list[Message],
    ) -> None:
        self.session = session
        self.conversation = conversation
        self.stop = stop
        self.pinned = pinned
        self.clock = clock
        self.replaced = replaced
        # Both sides' events, as they come: the first answer's and the search's.
        self.events: Channel[SideEvent] = Channel()
        self.found: Retrieval | None = pinned
        self.retrieval_wall_s: float | None = None
        self.retrieval_failed: str | None = None
        self.answers: dict[Side, Message | None] = {"without": None, "with": None}
        self.first_token: dict[Side, float] = {}

    def run(self, question: str | None) -> Iterator[CompareEvent]:
        asked = self.conversation.messages[-1].text if question is None else question.strip()
        if not asked:
            yield Failed("the message is empty")
            return
        history = self._history(question)
        try:
            plan = None if self.pinned else self.session.plan_search(history, asked, self.stop)
        except PhichatError as exc:
            yield Failed(one_line(str(exc), 500))
            return
        if question is not None:
            problem = self.session.ask(self.conversation, asked)
            if problem is not None:
                yield problem
                return
        self._start_without(TurnRequest(self.conversation, history, asked, search=False))
        yield from self._start_search(plan)
        yield from self._while_both_run()
        yield from self._answer_with_search()
        if self.replaced:  # neither side wrote a word: keep the old answers (before the UI looks)
            self.restore()
        yield CompareDone(
            question=asked,
            without=self.answers["without"],
            with_search=self.answers["with"],
            query=self.pinned.query if self.pinned is not None else plan.query if plan else None,
            summary=summarize(self.answers["without"], self.answers["with"], asked),
        )

    def _history(self, question: str | None) -> list[Message]:
        messages = self.conversation.messages
        return list(messages) if question is not None else messages[:-1]

    def _start_without(self, request: TurnRequest) -> None:
        turn = self.session.turn(request, self.stop)

        def answer(emit: Callable[[SideEvent], None]) -> None:
            for event in turn.events():
                emit(SideEvent("without", event))

        self._in_thread("without", "without", answer)

    def _start_search(self, plan: SearchPlan | None) -> Iterator[SideEvent]:
        """Search beside the first answer (the pinned sources need none)."""
        if self.pinned is not None:
            count = len(self.pinned.sources)
            note = f"using {count} pinned sources, no new search"
            yield SideEvent("with", Status("searching", note))
        if plan is None:
            return
        started = self.clock()

        def search(emit: Callable[[SideEvent], None]) -> None:
            steps = self.session.search(plan, self.stop)
            try:
                while True:
                    emit(SideEvent("with", next(steps)))
            except StopIteration as end:
                self.found = end.value
            finally:
                self.retrieval_wall_s = self.clock() - started

        self._in_thread("retrieval", "with", search)

    def _while_both_run(self) -> Iterator[CompareEvent]:
        for item in self.events:
            if item.side == "with" and isinstance(item.event, Failed):
                self.retrieval_failed = item.event.error  # raised by the search: shown once, below
                continue
            yield from self._tracked(item)

    def _answer_with_search(self) -> Iterator[SideEvent]:
        if self.retrieval_failed is not None:
            yield SideEvent("with", Failed(self.retrieval_failed))
        elif self.stop.is_set():
            yield SideEvent("with", Failed("stopped before the answer with search began"))
        else:
            request = self.session.again(self.conversation, True, self.found)
            for event in self.session.turn(request, self.stop).events():
                yield from self._tracked(SideEvent("with", event))

    def _tracked(self, item: SideEvent) -> Iterator[SideEvent]:
        """Time the side's first token and end; label and re-save its finished answer.

        The first token of either side also deletes the ``replaced`` answers.
        """
        event = item.event
        if isinstance(event, Token) and item.side not in self.first_token:
            self.first_token[item.side] = self.clock()
            if self.replaced:
                try:
                    self.session.forget(self.conversation, self.replaced)
                except PhichatError as exc:
                    yield SideEvent(item.side, Failed(f"could not replace the old answer: {exc}"))
        if isinstance(event, Done):
            self._label(item.side, event.message, finished=True)
            try:
                self.session.save(self.conversation, event.message)
            except PhichatError as exc:
                yield SideEvent(item.side, Failed(f"could not save the answer: {exc}"))
                return
        elif isinstance(event, Failed):
            # A failed answer may still have been kept (with its partial text): label it too.
            messages = self.conversation.messages
            kept = messages[-1] if messages else None
            if kept is not None and kept.role == "assistant" and kept.compare_side is None:
                self._label(item.side, kept, finished=False)
                self.session.save_quietly(self.conversation, kept)
        yield item

    def _label(self, side: Side, message: Message, *, finished: bool) -> None:
        """Mark ``message`` as ``side``'s answer, with the compare's clock on a finished one."""
        message.compare_side = side
        times = CompareTimes(retrieval_wall_s=self.retrieval_wall_s if side == "with" else None)
        if finished:
            times.ttft_s = self.first_token.get(side)
            times.total_s = self.clock()
        message.timings.compare = times
        self.answers[side] = message

    def restore(self) -> None:
        """Put back the answers the compare was to replace, dropping its empty (stopped) ones."""
        messages = self.conversation.messages
        asked = max(i for i, m in enumerate(messages) if m.role == "user")
        self.session.drop_quietly(self.conversation, messages[asked + 1 :])
        del messages[asked + 1 :]
        messages.extend(self.replaced)
        self.replaced.clear()

    def _in_thread(
        self, name: str, side: Side, work: Callable[[Callable[[SideEvent], None]], None]
    ) -> None:
        """Run ``work(emit)`` in a daemon thread that feeds the compare's events. An
        exception becomes a ``Failed`` event of ``side``: a bug in one side must not hang
        the other or the caller."""

        def guarded(sink: Sink[SideEvent]) -> None:
            try:
                work(sink.put)
            except PhichatError as exc:
                sink.put(SideEvent(side, Failed(one_line(str(exc), 500))))
            except Exception as exc:
                text = f"unexpected error: {type(exc).__name__}: {exc}"
                sink.put(SideEvent(side, Failed(one_line(text, 500))))

        self.events.start(guarded, name=f"phichat-compare-{name}")
