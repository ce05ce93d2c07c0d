"""One line at the bottom: the model's state (loading, device and dtype, failed) and the turn's."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from phichat.textsafe import one_line

# What the user is waiting for in each stage of a turn (chat.events.Stage).
STAGE_LABELS = {
    "loading": "waiting for the model",
    "query": "writing the search query",
    "searching": "searching",
    "fetching": "fetching pages",
    "reading": "reading pages",
    "ranking": "ranking passages",
    "thinking": "thinking: reading the prompt",
    "writing": "writing",
}


class StatusBar(Horizontal):
    # Where the seconds on screen come from; snapshot tests pin it.
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._stage = ""
        self._stage_started = 0.0

    def on_mount(self) -> None:
        # Ticks only while a stage is shown: an idle app does no work.
        self._ticker = self.set_interval(0.2, self._show_stage_time, pause=True)

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
        """A fixed note about the turn ("stopped", "stopping…"), or nothing."""
        self._stage = ""
        self._ticker.pause()
        self.query_one("#turn-status", Static).update(Text(one_line(text, 120)))

    def show_stage(self, stage: str) -> None:
        """The turn's current stage and the seconds spent in it so far, kept ticking."""
        label = STAGE_LABELS.get(stage, stage)
        if label != self._stage:
            self._stage, self._stage_started = label, self.clock()
        self._show_stage_time()
        self._ticker.resume()

    def _show_stage_time(self) -> None:
        if not self._stage:
            return
        elapsed = max(self.clock() - self._stage_started, 0.0)
        text = Text(one_line(self._stage, 60), style="bold")
        text.append(f" {elapsed:.1f} s · Esc stops", style="dim")
        self.query_one("#turn-status", Static).update(text)

    def _model_status(self, text: Text, state: str) -> None:
        widget = self.query_one("#model-status", Static)
        widget.update(text)
        widget.set_classes(state)
