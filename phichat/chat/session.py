"""One chat turn: retrieve (when search is on), build the prompt, stream the answer.

``Session.respond`` is the single entry point for the TUI and the CLI. It is a plain
generator of events, so the caller decides the threading: the TUI runs it in a thread
worker, the CLI in the main thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from phichat.chat import prompt as prompt_builder
from phichat.chat.events import Done, Event, Failed, SourcesReady, Status, Token
from phichat.chat.presets import Preset
from phichat.chat.query import turn_query
from phichat.chat.window import check_answer_fits
from phichat.domain import Conversation, Message
from phichat.errors import PhichatError
from phichat.models.base import ChatModel, GenerationOptions, GenerationStats
from phichat.retrieval.searchproblems import without_sources_line
from phichat.retrieval.types import PackBudget, Retrieval, RetrievalProgress

T = TypeVar("T")

# How often a streaming answer is checkpointed to the store (a save is one small SQLite
# write; once a second costs nothing next to generation).
PARTIAL_SAVE_INTERVAL_S = 1.0


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


class Session:
    def __init__(
        self,
        model: ChatModel,
        options: TurnOptions,
        retriever: Retriever | None = None,
        store: MessageStore | None = None,
    ) -> None:
        self.model = model
        self.options = options
        self.retriever = retriever
        self.store = store

    # ---- public entry points -----------------------------------------------------------
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
        text = user_text.strip()
        if not text:
            yield Failed("the message is empty")
            return
        history = list(conversation.messages)
        user_message = Message(role="user", text=text)
        conversation.messages.append(user_message)
        if not conversation.title:
            conversation.title = conversation.title_from(text)
        try:
            self._save(conversation, user_message)
        except PhichatError as exc:
            conversation.messages.pop()
            yield Failed(f"could not save the message: {exc}")
            return
        yield from self._answer(conversation, history, text, search, stop, pinned_sources)

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
        question = conversation.messages[-1].text
        history = conversation.messages[:-1]
        try:
            yield from self._answer(
                conversation, history, question, search, stop, None, replacing=replaced
            )
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
        asked = [i for i, m in enumerate(conversation.messages) if m.role == "user"]
        if not asked:
            yield Failed("there is no message to answer")
            return
        question = conversation.messages[asked[-1]].text
        history = conversation.messages[: asked[-1]]
        yield from self._answer(conversation, history, question, search, stop, pinned_sources)

    def retrieval_query(self, history: list[Message], question: str, stop: threading.Event) -> str:
        """The web query for ``question``: shaped for trip planning when the preset says so.

        A follow-up carries the subject of the earlier user messages (no model call, so
        ``stop`` has nothing to interrupt; it stays for callers of the old signature).
        """
        earlier = [m.text for m in history if m.role == "user" and not m.error]
        return turn_query(earlier, question, self.options.preset)

    # ---- the turn ------------------------------------------------------------------------
    def _answer(
        self,
        conversation: Conversation,
        history: list[Message],
        question: str,
        search: bool,
        stop: threading.Event,
        pinned: Retrieval | None,
        *,
        replacing: list[Message] | None = None,
    ) -> Iterator[Event]:
        """One answer, saved as it streams.

        ``replacing``: answers already taken out of ``conversation`` that this one replaces.
        They are deleted from the store when its first words arrive, or put back into
        ``conversation`` if it ends without any (before the last event, which a UI reads
        the conversation on); the list is emptied either way.
        """
        started = time.perf_counter()
        answer = Message(role="assistant", text="", search_used=search or pinned is not None)
        timings = answer.timings
        pieces: list[str] = []
        try:
            if not self.model.loaded:
                yield Status("loading", "waiting for the model to load")
                load_started = time.perf_counter()
                yield from self._pump(
                    lambda progress: self.model.load(
                        lambda description, _fraction: progress("loading", description)
                    ),
                    stop,
                )
                timings["load_s"] = time.perf_counter() - load_started
            check_answer_fits(
                self.model, self.options.generation.max_new_tokens, self.options.preset
            )
            retrieval = pinned
            if search and pinned is None and not stop.is_set():
                retrieval = yield from self._retrieve(history, question, stop)
            if retrieval is not None:
                answer.query = retrieval.query
                answer.sources = list(retrieval.sources)
                answer.grounded = bool(retrieval.sources)
                answer.context = retrieval.context_text if retrieval.sources else ""
                timings.update(retrieval.timings)
                yield SourcesReady(
                    tuple(retrieval.sources), retrieval.query, len(retrieval.context_text)
                )
            if stop.is_set():
                answer.stopped = True
            else:
                messages, dropped = prompt_builder.build_messages(
                    self.model,
                    history,
                    question,
                    retrieval.context_text if retrieval and retrieval.sources else None,
                    self.options.generation.max_new_tokens,
                    self.options.preset,
                )
                timings["history_dropped"] = float(dropped)
                yield Status("thinking", "")
                stats = GenerationStats()
                last_saved = prompt_started = time.perf_counter()
                for piece in self.model.stream(messages, self.options.generation, stop, stats):
                    if not pieces:
                        # As the user waits: from sending, and from handing the prompt to the model.
                        timings["first_token_s"] = time.perf_counter() - started
                        timings["prefill_s"] = time.perf_counter() - prompt_started
                        if replacing:
                            self.forget(conversation, replacing)
                        yield Status("writing", "")
                    pieces.append(piece)
                    yield Token(piece)
                    if time.perf_counter() - last_saved >= PARTIAL_SAVE_INTERVAL_S:
                        self._save_partial(conversation, answer, pieces)
                        last_saved = time.perf_counter()
                answer.stopped = stop.is_set()
                timings.update(
                    ttft_s=stats.ttft_s,
                    prompt_tokens=float(stats.prompt_tokens),
                    reused_tokens=float(stats.reused_tokens),
                    new_tokens=float(stats.new_tokens),
                    tokens_per_s=stats.tokens_per_s,
                )
        except PhichatError as exc:
            answer.error = str(exc)
        answer.text = "".join(pieces)
        timings["total_s"] = time.perf_counter() - started
        if replacing and not answer.text:
            conversation.messages.extend(replacing)
            replacing.clear()
            yield Failed(
                f"{answer.error or 'stopped before the new answer began'}; "
                "the previous answer is kept"
            )
            return
        if answer.text or answer.error is None:
            conversation.messages.append(answer)
            try:
                self._save(conversation, answer)
            except PhichatError as exc:
                answer.error = f"could not save the answer: {exc}"
        if answer.error is not None:
            yield Failed(answer.error)
        else:
            yield Done(answer)

    def _retrieve(
        self, history: list[Message], question: str, stop: threading.Event
    ) -> Generator[Event, None, Retrieval | None]:
        """Run retrieval, yielding its progress; returns the ``Retrieval`` (or None)."""
        retriever = self.retriever
        if retriever is None:
            yield Status("searching", "search is not available; answering without sources")
            return None
        query_started = time.perf_counter()
        query = self.retrieval_query(history, question, stop)
        query_s = time.perf_counter() - query_started
        yield Status("searching", query)
        budget = self.pack_budget(question)
        retrieval: Retrieval = yield from self._pump(
            lambda progress: retriever.retrieve(query, budget, progress, stop), stop
        )
        retrieval.timings["query_s"] = query_s
        retrieval.timings["sources_s"] = time.perf_counter() - query_started - query_s
        problem = without_sources_line(retrieval, stop.is_set())
        if problem is not None:
            yield Status("searching", problem)
        return retrieval

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
        self, work: Callable[[Callable[[str, str], None]], T], stop: threading.Event
    ) -> Generator[Event, None, T]:
        """Run blocking ``work`` in a thread, turning its progress calls into Status events."""
        updates: queue.Queue[Status] = queue.Queue()
        outcome: list[T] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                outcome.append(work(lambda stage, detail: updates.put(Status(stage, detail))))  # type: ignore[arg-type]
            except BaseException as exc:
                failure.append(exc)

        worker = threading.Thread(target=run, name="phichat-turn-step", daemon=True)
        worker.start()
        while worker.is_alive() or not updates.empty():
            try:
                yield updates.get(timeout=0.05)
            except queue.Empty:
                continue
        worker.join()
        if failure:
            raise failure[0]
        return outcome[0]

    def _save_partial(self, conversation: Conversation, answer: Message, pieces: list[str]) -> None:
        """Checkpoint a streaming answer, so a crash or kill keeps what was already shown.

        It is saved as stopped (it has not finished yet); the final save corrects that.
        A failed checkpoint is not fatal: the final save reports any lasting problem.
        """
        if self.store is None:
            return
        checkpoint = dataclasses.replace(answer, text="".join(pieces), stopped=True)
        with contextlib.suppress(PhichatError):
            self.store.save_message(conversation, checkpoint)

    def forget(self, conversation: Conversation, messages: list[Message]) -> None:
        """Delete replaced ``messages`` from the store, and empty the list: they are gone."""
        if self.store is not None:
            for message in messages:
                self.store.delete_message(conversation, message)
        messages.clear()

    def _save(self, conversation: Conversation, message: Message) -> None:
        if self.store is not None:
            self.store.save_message(conversation, message)


def take_trailing_answers(conversation: Conversation) -> list[Message]:
    """Take the answers after the last user message out of ``conversation`` (memory only)."""
    taken: list[Message] = []
    while conversation.messages and conversation.messages[-1].role == "assistant":
        taken.insert(0, conversation.messages.pop())
    return taken
