"""F1: every key, from the same table that builds the bindings and the README."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from phichat.ui.keys import SCOPE_TITLES, effective_keys, key_label


def key_table(keymap: Mapping[str, str]) -> Table:
    table = Table(expand=True, show_edge=False, box=None, padding=(0, 1))
    table.add_column("Key", style="bold", no_wrap=True)
    table.add_column("Where", style="dim", no_wrap=True)
    table.add_column("Action")
    for spec in effective_keys(keymap):
        table.add_row(
            Text(key_label(spec.key)), Text(SCOPE_TITLES[spec.scope]), Text(spec.description)
        )
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,q", "dismiss", "Close", id="close_help", tooltip="Close")
    ]

    def __init__(self, keymap: Mapping[str, str]) -> None:
        super().__init__()
        self._keymap = dict(keymap)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-panel", classes="dialog"):
            yield Static(Text("Keys", style="bold"), classes="dialog-title")
            yield Static(key_table(self._keymap), id="key-table")
            yield Static(
                Text(
                    "Remap any key in config.toml, under [keys], by its id. Esc closes.",
                    style="dim",
                )
            )

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
