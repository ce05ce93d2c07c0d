"""A message the user sent, shown exactly as typed (never parsed as markup)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from phichat.domain import Message
from phichat.textsafe import strip_control


class UserMessage(Vertical):
    def __init__(self, message: Message) -> None:
        super().__init__(classes="user-message")
        self.message = message

    def compose(self) -> ComposeResult:
        yield Static("You", classes="role", markup=False)
        yield Static(strip_control(self.message.text), classes="body", markup=False)
