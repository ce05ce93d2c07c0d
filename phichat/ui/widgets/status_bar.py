"""One line at the bottom: the model's state (loading, device and dtype, failed) and the turn's."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from phichat.textsafe import one_line


class StatusBar(Horizontal):
    def compose(self) -> ComposeResult:
        yield Static("", id="model-status", markup=False)
        yield Static("", id="mode-status", markup=False)
        yield Static("", id="turn-status", markup=False)

    def show_loading(self, model_name: str, description: str, fraction: float | None) -> None:
        percent = f" {fraction:.0%}" if fraction is not None else ""
        text = Text("⏳ loading ", style="bold")
        text.append(one_line(model_name, 60))
        if description:
            text.append(f" · {one_line(description, 80)}{percent}", style="dim")
        self._model_status(text, "loading")

    def show_ready(self, facts: Mapping[str, str]) -> None:
        text = Text("● ", style="bold green")
        text.append(one_line(facts.get("model", "model"), 60))
        device = one_line(facts.get("device", "?"), 20)
        dtype = one_line(facts.get("dtype", "?"), 20)
        text.append(f" · {device} · {dtype}", style="dim")
        self._model_status(text, "ready")

    def show_failed(self) -> None:
        self._model_status(Text("✖ model not loaded", style="bold red"), "failed")

    def show_mode(self, preset: str | None, pinned: int | None) -> None:
        """The answer preset and pinned sources that the next message will use."""
        text = Text()
        if preset:
            text.append(f"preset {one_line(preset, 30)}  ", style="bold")
        if pinned is not None:
            text.append(f"📌 {pinned} sources pinned  ", style="bold")
        self.query_one("#mode-status", Static).update(text)

    def show_turn(self, text: str) -> None:
        self.query_one("#turn-status", Static).update(Text(one_line(text, 120)))

    def _model_status(self, text: Text, state: str) -> None:
        widget = self.query_one("#model-status", Static)
        widget.update(text)
        widget.set_classes(state)
