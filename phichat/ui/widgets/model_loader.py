"""A non-visual widget that loads the model in a thread worker and reports how it went."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from textual import work
from textual.message import Message
from textual.widget import Widget
from textual.worker import Worker, WorkerState, get_current_worker

from phichat import threads
from phichat.errors import PhichatError
from phichat.models.base import ChatModel
from phichat.textsafe import one_line


class ModelLoader(Widget):
    DEFAULT_CSS = "ModelLoader { display: none; }"

    @dataclass
    class Progressed(Message):
        description: str
        fraction: float | None

        def can_replace(self, message: Message) -> bool:
            # Only the newest progress line matters; older ones still queued can go.
            return isinstance(message, ModelLoader.Progressed)

    @dataclass
    class Loaded(Message):
        facts: dict[str, str]

    @dataclass
    class Failed(Message):
        error: str

    def __init__(self) -> None:
        super().__init__()
        self.ready = threading.Event()
        self.failed = threading.Event()
        self.error: str | None = None

    def start(self, model: ChatModel) -> None:
        self.ready.clear()
        self.failed.clear()
        self.error = None
        if model.loaded:
            self.ready.set()
            self.post_message(self.Loaded(model.describe()))
            return
        self._load(model)

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="model",
        description="load the chat model",
    )
    def _load(self, model: ChatModel) -> None:
        worker = get_current_worker()

        def progress(description: str, fraction: float | None) -> None:
            if not worker.is_cancelled:
                self.post_message(self.Progressed(description, fraction))

        # A load cannot be interrupted: quitting walks away from its daemon thread.
        threads.call(
            lambda: model.load(progress),
            name="phichat-model-load",
            stop=lambda: worker.is_cancelled,
        )
        if worker.is_cancelled:
            return
        self.ready.set()
        self.post_message(self.Loaded(model.describe()))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a failed load is turned into a message for the user."""
        if event.worker.group != "model" or event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, PhichatError):
            text = str(error)
        else:
            text = f"unexpected error while loading: {type(error).__name__}: {error}"
        self.error = one_line(text, 1000)
        self.failed.set()
        self.post_message(self.Failed(self.error))
