"""The visible search switch: whether the next message is grounded in web search."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Label, Switch


class SearchToggle(Horizontal):
    @dataclass
    class Toggled(Message):
        enabled: bool

    def __init__(self, enabled: bool, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._initial = enabled

    def compose(self) -> ComposeResult:
        yield Label("Web search", id="search-label")
        switch = Switch(self._initial, id="search-switch")
        switch.tooltip = "Ground the next answer in web search (Ctrl+T)"
        yield switch

    @property
    def enabled(self) -> bool:
        return self.query_one(Switch).value

    def toggle(self) -> None:
        switch = self.query_one(Switch)
        switch.value = not switch.value

    def on_switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self.post_message(self.Toggled(event.value))
