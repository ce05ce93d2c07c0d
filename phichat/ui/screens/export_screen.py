"""Ask where to write an export: Markdown, or a trip plan as an iCalendar file."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from phichat.ui.widgets.plain_input import PlainInput


class ExportScreen(ModalScreen[Path | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="cancel_export", tooltip="Do not export")
    ]

    def __init__(
        self, default_path: Path, title: str = "Export the conversation to Markdown"
    ) -> None:
        super().__init__()
        self._default = default_path
        self._title = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog small-dialog"):
            yield Static(Text(self._title, style="bold"))
            yield PlainInput(str(self._default), id="path-input")
            yield Static(Text("Enter writes the file, Esc cancels.", style="dim"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value.strip()
        if not value:
            self.dismiss(None)
            return
        try:
            path = Path(value).expanduser()
        except RuntimeError:  # "~someone/..." for a user that does not exist
            self.app.notify(f"No such home folder in {value}", severity="error", markup=False)
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
