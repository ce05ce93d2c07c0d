"""One answer's life: wait for the model, retrieve or not, build the prompt, stream, save.

A ``Turn`` is built by ``Session`` (ask, regenerate, answer again) and by compare (two
turns that share one retrieval); each of those only says what to answer (a
``TurnRequest``). The question is saved before a turn starts; the turn saves its answer
as it streams (a checkpoint a second) and once more when it ends, fails or is stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from phichat.chat import prompt as prompt_builder
from phichat.chat.events import Done, Event, Failed, SourcesReady, Status, Token
from phichat.chat.window import check_answer_fits
from phichat.domain import Conversation, Message, TurnStats
from phichat.errors import PhichatError
from phichat.models.base import GenerationStats
from phichat.retrieval.types import Retrieval
from phichat.threads import Sink, Stream

if TYPE_CHECKING:
    from phichat.chat.session import Session


@dataclass
class TurnRequest:
    """What one turn answers.

    ``sources``: a retrieval to answer from instead of searching (pinned sources, or the
    search a compare shares between its two turns). ``replacing``: answers already taken
    out of ``conversation`` that this one replaces; they are deleted from the store when
    its first words arrive, or put back into ``conversation`` if it ends without any
    (before the last event, which a UI reads the conversation on); emptied either way.
    """

    conversation: Conversation
    history: list[Message]
    question: str
    search: bool
    sources: Retrieval | None = None
    replacing: list[Message] = field(default_factory=list)


class Turn:
    """``checkpoint_s``: how often the streaming answer is saved (``Session`` says)."""

    def __init__(
        self,
        session: Session,
        request: TurnRequest,
        stop: threading.Event,
        checkpoint_s: float,
    ) -> None:
        self.session = session
        self.checkpoint_s = checkpoint_s
        self.request = request
        self.stop = stop
        self.started = time.perf_counter()
        self.answer = Message(
            role="assistant", text="", search_used=request.search or request.sources is not None
        )
        self.stats: TurnStats = self.answer.timings
        self.pieces: list[str] = []

    def events(self) -> Iterator[Event]:
        """Run the turn, yielding its progress, its words, then one ``Done`` or ``Failed``."""
        try:
            yield from self._wait_for_model()
            options = self.session.options
            check_answer_fits(self.session.model, options.generation.max_new_tokens, options.preset)
            retrieval = yield from self._sources()
            if self.stop.is_set():
                self.answer.stopped = True
            else:
                yield from self._generate(retrieval)
        except PhichatError as exc:
            self.answer.error = str(exc)
        self.answer.text = "".join(self.pieces)
        self.stats.total_s = time.perf_counter() - self.started
        yield from self._finish()

    # ---- the steps, in order -----------------------------------------------------------
    def _wait_for_model(self) -> Iterator[Event]:
        """Wait on the session's one model load (starting it when nobody has)."""
        handle = self.session.handle
        if not handle.ready.is_set():
            yield Status("loading", "waiting for the model to load")

            def wait(sink: Sink[Status]) -> bool:
                return handle.wait(progress=lambda line, _done: sink.put(Status("loading", line)))

            yield from Stream(wait, name="phichat-model-wait").items()
        self.stats.load_s = handle.take_load_s()

    def _sources(self) -> Generator[Event, None, Retrieval | None]:
        """The sources this turn answers from: given, searched for, or none."""
        retrieval = self.request.sources
        if self.request.search and retrieval is None and not self.stop.is_set():
            retrieval = yield from self._search()
        if retrieval is not None:
            self._use_sources(retrieval)
            yield SourcesReady(
                tuple(retrieval.sources), retrieval.query, len(retrieval.context_text)
            )
        return retrieval

    def _search(self) -> Generator[Event, None, Retrieval | None]:
        request = self.request
        plan = self.session.plan_search(request.history, request.question, self.stop)
        if plan is None:
            yield from self.session.search_unavailable()
            return None
        self.stats.query_s = plan.query_s
        searched = time.perf_counter()
        retrieval = yield from self.session.search(plan, self.stop)
        self.stats.sources_s = time.perf_counter() - searched
        return retrieval

    def _use_sources(self, retrieval: Retrieval) -> None:
        answer = self.answer
        answer.query = retrieval.query
        answer.sources = list(retrieval.sources)
        answer.grounded = bool(retrieval.sources)
        answer.context = retrieval.context_text if retrieval.sources else ""
        # The pipeline's own total is not the turn's: the turn's is set when it ends.
        self.stats.stages.update((k, v) for k, v in retrieval.timings.items() if k != "total_s")

    def _generate(self, retrieval: Retrieval | None) -> Iterator[Event]:
        """Build the prompt and stream the answer, checkpointing it as it grows."""
        session, request = self.session, self.request
        generation = session.options.generation
        messages, dropped = prompt_builder.build_messages(
            session.model,
            request.history,
            request.question,
            retrieval.context_text if retrieval and retrieval.sources else None,
            generation.max_new_tokens,
            session.options.preset,
        )
        self.stats.history_dropped = dropped
        yield Status("thinking", "")
        stats = GenerationStats()
        last_saved = prompt_started = time.perf_counter()
        for piece in session.model.stream(messages, generation, self.stop, stats):
            if not self.pieces:
                yield from self._first_words(prompt_started)
            self.pieces.append(piece)
            yield Token(piece)
            if time.perf_counter() - last_saved >= self.checkpoint_s:
                session.checkpoint(request.conversation, self.answer, "".join(self.pieces))
                last_saved = time.perf_counter()
        self.answer.stopped = self.stop.is_set()
        self._count(stats)

    def _first_words(self, prompt_started: float) -> Iterator[Event]:
        # As the user waits: from sending, and from handing the prompt to the model.
        now = time.perf_counter()
        self.stats.first_token_s = now - self.started
        self.stats.prefill_s = now - prompt_started
        if self.request.replacing:
            self.session.forget(self.request.conversation, self.request.replacing)
        yield Status("writing", "")

    def _count(self, stats: GenerationStats) -> None:
        self.stats.ttft_s = stats.ttft_s
        self.stats.prompt_tokens = stats.prompt_tokens
        self.stats.reused_tokens = stats.reused_tokens
        self.stats.new_tokens = stats.new_tokens
        self.stats.tokens_per_s = stats.tokens_per_s

    def _finish(self) -> Iterator[Event]:
        """Keep the answer (or the one it was to replace) and say how the turn ended."""
        answer, conversation = self.answer, self.request.conversation
        replacing = self.request.replacing
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
                self.session.save(conversation, answer)
            except PhichatError as exc:
                answer.error = f"could not save the answer: {exc}"
        if answer.error is not None:
            yield Failed(answer.error)
        else:
            yield Done(answer)
