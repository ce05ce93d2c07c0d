"""A non-visual widget that shows the session's one model load (``chat.ModelHandle``).

The handle does the loading; this widget starts it after the first frame, turns its
progress into messages for the status bar, and says once how it ended.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from textual import work
from textual.message import Message
from textual.widget import Widget
from textual.worker import Worker, WorkerState, get_current_worker

from phichat.chat.model_handle import ModelHandle, load_error_line


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

    def __init__(self, handle: ModelHandle) -> None:
        super().__init__()
        self.handle = handle

    @property
    def ready(self) -> threading.Event:
        return self.handle.ready

    @property
    def error(self) -> str | None:
        return self.handle.error

    def start(self) -> None:
        if self.handle.ready.is_set():
            self.post_message(self.Loaded(self.handle.model.describe()))
            return
        self._watch()

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="model",
        description="load the chat model",
    )
    def _watch(self) -> None:
        worker = get_current_worker()

        def progress(description: str, fraction: float | None) -> None:
            if not worker.is_cancelled:
                self.post_message(self.Progressed(description, fraction))

        if self.handle.wait(lambda: worker.is_cancelled, progress):
            self.post_message(self.Loaded(self.handle.model.describe()))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a failed load is turned into a message for the user."""
        if event.worker.group != "model" or event.state != WorkerState.ERROR:
            return
        error = self.handle.error
        if error is None:  # a bug here rather than in the load
            error = load_error_line(event.worker.error or RuntimeError("unknown"))
        self.post_message(self.Failed(error))
