"""The message box: multi-line, Enter sends, and Up/Down walk through earlier prompts."""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.widgets import TextArea

from phichat.textsafe import replace_lone_surrogates
from phichat.ui.keys import bindings
from phichat.ui.pastesafe import clean_paste

BUSY = "Still answering: Esc stops it. Your text stays here; Enter sends it once the answer ends."


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
        self._held: str | None = None  # why Enter does not send now, or None

    def remember(self, prompts: list[str]) -> None:
        """Seed the recall history (oldest first), e.g. from the open conversation."""
        self._history = [p for p in prompts if p.strip()]
        self._recall_index = len(self._history)

    # ---- sending ----------------------------------------------------------------------------
    # Enter and Shift+Enter are priority bindings: they run as soon as the app reads the key,
    # while the characters typed just before them may still wait in this widget's queue (a
    # fast typist, a terminal macro, tmux send-keys). Their actions are queued behind those
    # characters, so what is sent, and where a new line goes, follow the order of typing.
    def action_submit(self) -> None:
        self.call_later(self._submit)

    def _submit(self) -> None:
        text = replace_lone_surrogates(self.text).strip()
        if not text:
            return
        if self._held is not None:
            # Not sent: the text stays as it is, and typing carries on at its end.
            self.move_cursor(self.document.end)
            self.notify(self._held, severity="warning", markup=False)
            return
        if not self._history or self._history[-1] != text:
            self._history.append(text)
        self._recall_index = len(self._history)
        self._draft = ""
        self.clear()
        # Until the app says otherwise, a second Enter must not send: the app may not have
        # started this message's turn yet.
        self._held = BUSY
        self.post_message(self.Submitted(text))

    def hold(self, reason: str = "") -> None:
        """Refuse to send (the text stays in the box) until ``release``; say ``reason``."""
        self._held = reason or BUSY

    def release(self) -> None:
        """Enter sends again."""
        self._held = None

    def give_back(self, text: str) -> None:
        """``text`` was not sent: put it back before anything typed since, cursor at the end."""
        typed = self.text
        self.load_text(f"{text}\n{typed}" if typed.strip() else text)
        self.move_cursor(self.document.end)
        self.release()

    async def _on_paste(self, event: events.Paste) -> None:
        """A paste is inserted as text with its escape sequences removed: never keys."""
        event.prevent_default()  # TextArea's own handler would insert it as it came
        if self.read_only:
            return
        result = self.replace(clean_paste(event.text), *self.selection)
        self.move_cursor(result.end_location)
        self.focus()

    def action_newline(self) -> None:
        self.call_later(self.insert, "\n")

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
