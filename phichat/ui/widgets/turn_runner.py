"""A non-visual widget that runs one chat turn in a thread worker and reports its events.

Every message carries the turn's id: the app ignores messages from a turn it has moved on
from, so an abandoned stream can never write into the next turn. A compare turn tags each
message with its ``side`` ("without" or "with" search); a plain turn leaves it empty.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from textual import work
from textual.message import Message
from textual.widget import Widget
from textual.worker import Worker, WorkerState, get_current_worker

from phichat import threads
from phichat.chat.compare import CompareDone, CompareEvent, SideEvent
from phichat.chat.events import Done, Event, Failed, SourcesReady, Status, Token
from phichat.domain import Message as ChatMessage
from phichat.domain import Source
from phichat.textsafe import one_line


class TurnRunner(Widget):
    DEFAULT_CSS = "TurnRunner { display: none; }"

    @dataclass
    class StepChanged(Message):
        turn_id: int
        stage: str
        detail: str
        side: str = ""

        def can_replace(self, message: Message) -> bool:
            # "reading 3 of 6" supersedes a queued "reading 2 of 6" of the same turn.
            return (
                isinstance(message, TurnRunner.StepChanged)
                and message.turn_id == self.turn_id
                and message.stage == self.stage
                and message.side == self.side
            )

    @dataclass
    class SourcesFound(Message):
        turn_id: int
        sources: list[Source]
        query: str
        side: str = ""

    @dataclass
    class TokenArrived(Message):
        turn_id: int
        text: str
        side: str = ""

    @dataclass
    class Finished(Message):
        turn_id: int
        message: ChatMessage
        side: str = ""

    @dataclass
    class Failed(Message):
        turn_id: int
        error: str
        never_started: bool = False  # the model never became ready: the text was not sent
        side: str = ""  # set: only that side of a compare failed; the compare goes on

    @dataclass
    class CompareFinished(Message):
        """Both sides of a compare are over; ``done`` holds the answers and the summary."""

        turn_id: int
        done: CompareDone

    def __init__(self) -> None:
        super().__init__()
        self._ids = itertools.count(1)
        self.turn_id = 0
        self.stop = threading.Event()
        self.running = False
        self._previous: threading.Thread | None = None
        self._worker_turns: dict[Worker[None], int] = {}

    def start(
        self,
        events: Callable[[threading.Event], Iterator[Event | CompareEvent]],
        model_ready: threading.Event,
        model_failed: Callable[[], str | None],
    ) -> int:
        """Start a turn; ``events(stop)`` is ``session.respond`` or ``regenerate``, bound."""
        self.turn_id = next(self._ids)
        self.stop = threading.Event()
        self.running = True
        self._run(self.turn_id, events, self.stop, model_ready, model_failed)
        return self.turn_id

    def cancel(self) -> bool:
        """Ask the running turn to stop at the next step; True if one was running."""
        if not self.running:
            return False
        self.stop.set()
        return True

    def ended(self, turn_id: int) -> None:
        """The app saw the turn's last message."""
        if turn_id == self.turn_id:
            self.running = False

    def wait_for_saves(self, timeout: float) -> None:
        """Give a stopping turn up to ``timeout`` seconds to save its partial answer."""
        if self._previous is not None:
            self._previous.join(timeout)

    def abandon(self) -> None:
        """Stop the turn and ignore anything it still reports (switching conversation)."""
        self.stop.set()
        self.turn_id = next(self._ids)
        self.running = False

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="turn",
        description="answer a message",
    )
    def _run(
        self,
        turn_id: int,
        events: Callable[[threading.Event], Iterator[Event | CompareEvent]],
        stop: threading.Event,
        model_ready: threading.Event,
        model_failed: Callable[[], str | None],
    ) -> None:
        worker = get_current_worker()
        self._worker_turns[worker] = turn_id

        def gone() -> bool:
            return worker.is_cancelled or turn_id != self.turn_id

        # A stopped turn may still be saving its partial answer into the same
        # conversation: let it finish first, so the messages keep their order.
        previous = self._previous
        while previous is not None and previous.is_alive() and not gone():
            previous.join(0.05)

        if not model_ready.is_set():
            self.post_message(self.StepChanged(turn_id, "loading", "waiting for the model to load"))
            while not model_ready.wait(0.05):
                error = model_failed()
                if error is not None or stop.is_set() or gone():
                    reason = f"not sent: {error}" if error else "not sent: stopped while waiting"
                    self.post_message(self.Failed(turn_id, reason, never_started=True))
                    return

        stream = threads.iterate(lambda: events(stop), name=f"phichat-turn-{turn_id}", stop=gone)
        self._previous = stream.producer.thread
        for event in stream:
            self.post_message(self._translate(turn_id, event))

    @classmethod
    def _translate(cls, turn_id: int, event: Event | CompareEvent, side: str = "") -> Message:
        if isinstance(event, SideEvent):
            return cls._translate(turn_id, event.event, event.side)
        if isinstance(event, CompareDone):
            return cls.CompareFinished(turn_id, event)
        if isinstance(event, Token):
            return cls.TokenArrived(turn_id, event.text, side)
        if isinstance(event, Status):
            return cls.StepChanged(turn_id, event.stage, event.detail, side)
        if isinstance(event, SourcesReady):
            return cls.SourcesFound(turn_id, list(event.sources), event.query, side)
        if isinstance(event, Done):
            return cls.Finished(turn_id, event.message, side)
        assert isinstance(event, Failed)
        return cls.Failed(turn_id, event.error, side=side)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A bug in a turn becomes an error under the answer, never a crash."""
        if event.worker.group == "turn" and event.state == WorkerState.ERROR:
            error = event.worker.error
            text = one_line(f"unexpected error: {type(error).__name__}: {error}", 500)
            turn_id = self._worker_turns.get(event.worker, -1)
            self.post_message(self.Failed(turn_id, text))
        if event.worker.is_finished:
            self._worker_turns.pop(event.worker, None)
