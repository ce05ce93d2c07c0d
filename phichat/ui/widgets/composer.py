"""The message box: multi-line, Enter sends, and Up/Down walk through earlier prompts."""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.widgets import TextArea

from phichat.ui.keys import bindings
from phichat.ui.pastesafe import clean_paste


class Composer(TextArea):
    BINDINGS = bindings("composer")

    @dataclass
    class Submitted(Message):
        """The user sent ``text`` (already stripped, never empty)."""

        text: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        self.placeholder = "Ask anything. Enter sends, Shift+Enter adds a line."
        self._history: list[str] = []
        # Index into _history while recalling; len(_history) means "the draft".
        self._recall_index = 0
        self._draft = ""

    def remember(self, prompts: list[str]) -> None:
        """Seed the recall history (oldest first), e.g. from the open conversation."""
        self._history = [p for p in prompts if p.strip()]
        self._recall_index = len(self._history)

    def action_submit(self) -> None:
        text = self.text.strip()
        if not text:
            return
        if not self._history or self._history[-1] != text:
            self._history.append(text)
        self._recall_index = len(self._history)
        self._draft = ""
        self.clear()
        self.post_message(self.Submitted(text))

    async def _on_paste(self, event: events.Paste) -> None:
        """A paste is inserted as text with its escape sequences removed: never keys."""
        event.prevent_default()  # TextArea's own handler would insert it as it came
        if self.read_only:
            return
        result = self.replace(clean_paste(event.text), *self.selection)
        self.move_cursor(result.end_location)
        self.focus()

    def action_newline(self) -> None:
        self.insert("\n")

    def action_recall_previous(self) -> None:
        if self.cursor_location[0] > 0 or self._recall_index == 0:
            self.action_cursor_up()
            return
        if self._recall_index == len(self._history):
            self._draft = self.text
        self._recall_index -= 1
        self._show(self._history[self._recall_index])

    def action_recall_next(self) -> None:
        last_row = self.document.line_count - 1
        if self.cursor_location[0] < last_row or self._recall_index >= len(self._history):
            self.action_cursor_down()
            return
        self._recall_index += 1
        if self._recall_index == len(self._history):
            self._show(self._draft)
        else:
            self._show(self._history[self._recall_index])

    def _show(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)
