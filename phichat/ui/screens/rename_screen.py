"""Ask for a conversation's new title."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from phichat.textsafe import strip_control
from phichat.ui.widgets.plain_input import PlainInput


class RenameScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="cancel_rename", tooltip="Keep the title")
    ]

    def __init__(self, title: str) -> None:
        super().__init__()
        self._title = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog small-dialog"):
            yield Static(Text("Rename the conversation", style="bold"))
            yield PlainInput(self._title, id="title-input", select_on_focus=True)
            yield Static(Text("Enter saves, Esc cancels.", style="dim"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        # Typed keys are printable, but a value can come from anywhere: keep the title text.
        title = " ".join(strip_control(event.value).split())
        self.dismiss(title or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
