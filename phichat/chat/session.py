"""The chat session: the model, the retriever and the store a conversation's turns use.

``Session.respond`` (ask), ``regenerate`` and ``answer_again`` each say what to answer
and hand it to a ``Turn`` (chat/turn.py), which owns the answer's life. They are plain
generators of events, so the caller decides the threading: the TUI runs them in a thread
worker, the CLI in the main thread. Compare builds its two turns from the same parts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from phichat.chat import prompt as prompt_builder
from phichat.chat.events import Event, Failed, Status
from phichat.chat.model_handle import ModelHandle
from phichat.chat.presets import Preset
from phichat.chat.query import turn_query
from phichat.chat.turn import Turn, TurnRequest
from phichat.domain import Conversation, Message
from phichat.errors import PhichatError
from phichat.models.base import ChatModel, GenerationOptions
from phichat.retrieval.searchproblems import without_sources_line
from phichat.retrieval.types import PackBudget, Retrieval, RetrievalProgress
from phichat.threads import Sink, Stream

T = TypeVar("T")

# How often a streaming answer is checkpointed to the store (a save is one small SQLite
# write; once a second costs nothing next to generation).
PARTIAL_SAVE_INTERVAL_S = 1.0
SEARCH_UNAVAILABLE = "search is not available; answering without sources"


class Retriever(Protocol):
    def retrieve(
        self, query: str, budget: PackBudget, progress: RetrievalProgress, stop: threading.Event
    ) -> Retrieval: ...


class MessageStore(Protocol):
    """Where finished and in-progress messages are persisted (``storage`` implements it)."""

    def save_message(self, conversation: Conversation, message: Message) -> None: ...

    def delete_message(self, conversation: Conversation, message: Message) -> None: ...


@dataclass(frozen=True)
class TurnOptions:
    generation: GenerationOptions
    context_chars: int = 2000
    preset: Preset | None = None


@dataclass(frozen=True)
class SearchPlan:
    """A search about to run: its query (and how long building it took), its budget."""

    query: str
    budget: PackBudget
    query_s: float


class Session:
    """``model`` may be given as a ``ModelHandle`` to share one load (the TUI does)."""

    def __init__(
        self,
        model: ChatModel | ModelHandle,
        options: TurnOptions,
        retriever: Retriever | None = None,
        store: MessageStore | None = None,
    ) -> None:
        self.handle = model if isinstance(model, ModelHandle) else ModelHandle(model)
        self.options = options
        self.retriever = retriever
        self.store = store

    @property
    def model(self) -> ChatModel:
        return self.handle.model

    # ---- the ways to build a turn ----------------------------------------------------------
    def respond(
        self,
        conversation: Conversation,
        user_text: str,
        search: bool,
        stop: threading.Event,
        *,
        pinned_sources: Retrieval | None = None,
    ) -> Iterator[Event]:
        """Add the user's message to ``conversation`` and answer it, yielding events.

        The user message is saved before any slow work starts, and the answer as soon as
        it ends, fails or is stopped (a stopped answer keeps its partial text).
        """
        history = list(conversation.messages)
        problem = self.ask(conversation, user_text)
        if problem is not None:
            yield problem
            return
        question = conversation.messages[-1].text
        request = TurnRequest(conversation, history, question, search, pinned_sources)
        yield from self.turn(request, stop).events()

    def ask(self, conversation: Conversation, user_text: str) -> Failed | None:
        """Add and save the user's question; a ``Failed`` (and nothing kept) if it cannot be."""
        text = user_text.strip()
        if not text:
            return Failed("the message is empty")
        user_message = Message(role="user", text=text)
        conversation.messages.append(user_message)
        if not conversation.title:
            conversation.title = conversation.title_from(text)
        try:
            self.save(conversation, user_message)
        except PhichatError as exc:
            conversation.messages.pop()
            return Failed(f"could not save the message: {exc}")
        return None

    def regenerate(
        self, conversation: Conversation, search: bool, stop: threading.Event
    ) -> Iterator[Event]:
        """Answer the last user message again, replacing the answer that followed it.

        The old answer is deleted only once the new one has its first words: a regenerate
        that fails or is stopped before then keeps it (in ``conversation`` and the store).
        """
        replaced = take_trailing_answers(conversation)
        if not conversation.messages:
            conversation.messages.extend(replaced)
            yield Failed("there is no message to answer again")
            return
        request = self.again(conversation, search, replacing=replaced)
        try:
            yield from self.turn(request, stop).events()
        finally:
            # Still here: a bug raised, or the caller closed the stream, before new words.
            conversation.messages.extend(replaced)

    def answer_again(
        self,
        conversation: Conversation,
        search: bool,
        stop: threading.Event,
        *,
        pinned_sources: Retrieval | None = None,
    ) -> Iterator[Event]:
        """Add one more answer to the last user message, keeping the answers it has.

        A compare answers one question twice, without and then with search.
        """
        if not any(m.role == "user" for m in conversation.messages):
            yield Failed("there is no message to answer")
            return
        request = self.again(conversation, search, pinned_sources)
        yield from self.turn(request, stop).events()

    def again(
        self,
        conversation: Conversation,
        search: bool,
        sources: Retrieval | None = None,
        replacing: list[Message] | None = None,
    ) -> TurnRequest:
        """A turn that answers the last user message (which must exist) once more."""
        asked = max(i for i, m in enumerate(conversation.messages) if m.role == "user")
        question = conversation.messages[asked].text
        history = conversation.messages[:asked]
        return TurnRequest(conversation, history, question, search, sources, replacing or [])

    def turn(self, request: TurnRequest, stop: threading.Event) -> Turn:
        return Turn(self, request, stop, checkpoint_s=PARTIAL_SAVE_INTERVAL_S)

    # ---- searching -------------------------------------------------------------------------
    def retrieval_query(self, history: list[Message], question: str, stop: threading.Event) -> str:
        """The web query for ``question``: shaped for trip planning when the preset says so.

        A follow-up carries the subject of the earlier user messages (no model call, so
        ``stop`` has nothing to interrupt; it stays for callers of the old signature).
        """
        earlier = [m.text for m in history if m.role == "user" and not m.error]
        return turn_query(earlier, question, self.options.preset)

    def plan_search(
        self, history: list[Message], question: str, stop: threading.Event
    ) -> SearchPlan | None:
        """The query and budget for a search about ``question`` (None: no retriever)."""
        if self.retriever is None:
            return None
        started = time.perf_counter()
        query = self.retrieval_query(history, question, stop)
        query_s = time.perf_counter() - started
        return SearchPlan(query, self.pack_budget(question), query_s)

    def search(self, plan: SearchPlan, stop: threading.Event) -> Generator[Event, None, Retrieval]:
        """Run the planned search, yielding its progress and, when it found nothing to
        use, the line that says why; returns the ``Retrieval``."""
        retriever = self.retriever
        assert retriever is not None, "plan_search returns no plan without a retriever"
        yield Status("searching", plan.query)
        retrieval: Retrieval = yield from self._pump(
            lambda progress: retriever.retrieve(plan.query, plan.budget, progress, stop), stop
        )
        problem = without_sources_line(retrieval, stop.is_set())
        if problem is not None:
            yield Status("searching", problem)
        return retrieval

    @staticmethod
    def search_unavailable() -> Iterator[Event]:
        yield Status("searching", SEARCH_UNAVAILABLE)

    def pack_budget(self, question: str) -> PackBudget:
        """What is left of the window for sources once the rest of the prompt is counted.

        Sources outrank old history: history is trimmed afterwards to fit what remains.
        """
        generation = self.options.generation
        preset = self.options.preset
        skeleton = [
            prompt_builder.system_message(preset),
            {"role": "user", "content": prompt_builder.user_turn(question, " ", preset)},
        ]
        fixed = self.model.count_tokens(skeleton)  # type: ignore[arg-type]
        free = prompt_builder.prompt_budget(self.model, generation.max_new_tokens) - fixed
        return PackBudget(
            max_chars=self.options.context_chars,
            max_tokens=max(free, 0),
            count_tokens=self.model.count_text_tokens,
        )

    def _pump(
        self, work: Callable[[RetrievalProgress], T], stop: threading.Event
    ) -> Generator[Event, None, T]:
        """Run blocking ``work`` in a thread, turning its progress calls into Status events.

        It runs to its end (``work`` has the stop of its own), so its result is always there.
        """

        def report(sink: Sink[Status]) -> T:
            return work(lambda stage, detail: sink.put(Status(stage, detail)))

        stream: Stream[Status, T] = Stream(report, name="phichat-turn-step")
        return (yield from stream.items())

    # ---- saving: the one path turn data takes to the store ------------------------------
    def save(self, conversation: Conversation, message: Message) -> None:
        """Save ``message`` (a failure raises: the caller says what was not kept)."""
        if self.store is not None:
            self.store.save_message(conversation, message)

    def checkpoint(self, conversation: Conversation, answer: Message, text: str) -> None:
        """Checkpoint a streaming answer, so a crash or kill keeps what was already shown.

        It is saved as stopped (it has not finished yet); the final save corrects that.
        A failed checkpoint is not fatal: the final save reports any lasting problem.
        """
        self.save_quietly(conversation, dataclasses.replace(answer, text=text, stopped=True))

    def forget(self, conversation: Conversation, messages: list[Message]) -> None:
        """Delete replaced ``messages`` from the store, and empty the list: they are gone."""
        if self.store is not None:
            for message in messages:
                self.store.delete_message(conversation, message)
        messages.clear()

    def save_quietly(self, conversation: Conversation, message: Message) -> None:
        """Save ``message`` where it can (a label on an answer whose failure is shown)."""
        with contextlib.suppress(PhichatError):
            self.save(conversation, message)

    def drop_quietly(self, conversation: Conversation, messages: list[Message]) -> None:
        """Delete ``messages`` from the store where it can (they are being discarded)."""
        if self.store is not None:
            for message in messages:
                with contextlib.suppress(PhichatError):
                    self.store.delete_message(conversation, message)


def take_trailing_answers(conversation: Conversation) -> list[Message]:
    """Take the answers after the last user message out of ``conversation`` (memory only)."""
    taken: list[Message] = []
    while conversation.messages and conversation.messages[-1].role == "assistant":
        taken.insert(0, conversation.messages.pop())
    return taken
