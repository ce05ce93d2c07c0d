"""F12: pick the answer preset for the next messages (or none)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from phichat.chat.presets import Preset
from phichat.textsafe import one_line

NO_PRESET = "-"  # the option id meaning "plain answers"


class PresetScreen(ModalScreen[str | None]):
    """Dismisses with a preset name, NO_PRESET, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="cancel_preset", tooltip="Keep the preset")
    ]

    def __init__(self, presets: list[Preset], current: str | None, problems: list[str]) -> None:
        super().__init__()
        self._presets = presets
        self._current = current
        self._problems = problems

    def compose(self) -> ComposeResult:
        options = [Option(Text("No preset: plain answers"), id=NO_PRESET)]
        for preset in self._presets:
            label = Text(preset.name, style="bold")
            if preset.description:
                label.append(f"  {one_line(preset.description, 70)}", style="dim")
            if preset.origin != "built-in":
                label.append("  (yours)", style="italic")
            options.append(Option(label, id=preset.name))
        with Vertical(classes="dialog small-dialog", id="preset-dialog"):
            yield Static(Text("Answer preset", style="bold"))
            yield OptionList(*options, id="preset-options")
            for problem in self._problems:
                yield Static(Text(one_line(problem, 200), style="red"))
            yield Static(Text("Enter picks, Esc cancels.", style="dim"))

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        wanted = self._current or NO_PRESET
        for index in range(options.option_count):
            if options.get_option_at_index(index).id == wanted:
                options.highlighted = index
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
